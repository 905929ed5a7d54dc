"""The app factory: plugins in, one Quart app and one OpenAPI document out.

``create_app`` does all the wiring once: it loads the enabled families, asks
each for its blueprints, models and spec fragments (leaving out a ``skip``
family whose hook fails), refuses conflicts, registers the routes, prepares
the Tortoise config and builds the spec. Database, Firebase and each plugin's
``startup`` run when the app starts serving. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from time import perf_counter
from typing import Any, NoReturn
from urllib.parse import urlsplit

from quart import Blueprint, Quart, Request, Response, request
from quart.ctx import RequestContext
from quart.globals import request_ctx
from quart.routing import QuartMap
from quart.signals import request_tearing_down
from quart.typing import ResponseReturnValue, ResponseTypes
from quart.wrappers import BaseRequestWebsocket
from werkzeug.datastructures import ImmutableDict
from werkzeug.exceptions import BadHost, BadRequest, HTTPException
from werkzeug.routing import IntegerConverter, Map, MapAdapter, RequestRedirect

from core import accounts, db, logs, metrics, tracing
from core.auth import FirebaseAuth, Identity
from core.config import CoreSettings, check_emulator_allowed
from core.endpoints import RouteRequirement, declared_endpoint
from core.errors import (
    ApiError,
    ConfigError,
    ConflictError,
    ContributionError,
    StartupError,
    error_response,
    install_error_handlers,
)
from core.families import User
from core.openapi import BuiltSpec, build_spec
from core.outbox import Dispatcher, OutboxHandler, OutboxPolicy
from core.plugins import LoadedPlugin, Platform, Registry, load_platform
from core.ratelimit import RateLimiter

log = logging.getLogger("imperfect.app")

SERVICE_TITLE = "imperfect-api"
SERVICE_DESCRIPTION = (
    "The user-facing backend of an endurance-coaching app. Every route family is a plugin; "
    "this document is merged from the families enabled on this deployment."
)
CORE_TAG = {"name": "core", "description": "Platform routes: liveness and readiness."}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_RULE_ARGUMENT = re.compile(r"<[^>]+>")


@functools.cache
def service_version() -> str:
    """The installed distribution's version (read once: metadata lookups are slow)."""
    try:
        return package_version("imperfect-api")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass
class Contribution:
    """What one family adds to the app, gathered before anything is registered."""

    blueprints: list[Blueprint] = field(default_factory=list)
    models: db.PluginModels | None = None
    fragment: dict[str, Any] = field(default_factory=dict)
    outbox_handlers: dict[str, OutboxHandler] = field(default_factory=dict)


class Runtime:
    """Everything the running app shares: the platform, Firebase, the spec, the database."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.core = platform.core
        self.auth: FirebaseAuth | None = None
        self.spec: BuiltSpec | None = None
        self.tortoise_config: dict[str, Any] = {}
        self.tables: dict[str, tuple[str, ...]] = {}
        self.routes: list[tuple[str, str, str]] = []  # (rule, methods, plugin)
        self.readiness: dict[str, dict[str, Any]] = {}
        self.started: list[LoadedPlugin] = []
        self.unavailable: dict[str, str] = {}  # blueprint name -> reason
        self.failed_at_start: dict[str, str] = {}  # family -> reason
        # resolve_user implementations, fixed once start-up has settled which families serve
        self.user_resolvers: list[tuple[LoadedPlugin, Any]] = []
        self.blueprint_owners: dict[str, str] = {}
        self.outbox_handlers: dict[str, tuple[str, OutboxHandler]] = {}  # kind -> (owner, handler)
        self.outbox: Dispatcher | None = None  # while serving
        self.requirements: dict[str, RouteRequirement] = {}  # by name, from route_requirements
        self.start_failure: BaseException | None = None  # why the last start-up failed
        self.rate_limiter: RateLimiter | None = None  # while serving

    async def resolve_user(self, identity: Identity) -> Any:
        """The first non-None ``resolve_user`` result, else the identity itself."""
        for plugin, impl in self.user_resolvers:
            result = self.platform.call_one(plugin, impl, identity=identity)
            if asyncio.iscoroutine(result):
                result = await result
            if result is not None:
                return result
        return identity

    async def find_user(self, identity: Identity) -> User | None:
        """The local user of ``identity``, or ``None`` when no family has one for it."""
        try:
            found = await self.resolve_user(identity)
        except ApiError:
            return None
        return None if found is identity else found


def runtime_of(app: Quart) -> Runtime:
    return app.extensions["imperfect"]


# --- routing: what Werkzeug cannot bind, redirects, integer path segments ----------------


class AsciiIntegerConverter(IntegerConverter):
    """``<int:...>`` that matches 1 to 32 ASCII digits (or ``fixed_digits``, or ``max``'s).

    Werkzeug's own converter matches ``\\d+``: every Unicode digit (``/profiles/%EF%BC%91``
    was profile 1), at any length (thousands of digits reached ``int()``). Anything else is
    no match, so a 404. The range of a value within 32 digits is the handler's to check
    (the families' ids are 32-bit columns), unless the rule gives ``max``.
    """

    MAX_DIGITS = 32

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
        longest = len(str(abs(max))) if max is not None else self.MAX_DIGITS
        digits = f"{{{fixed_digits}}}" if fixed_digits else f"{{1,{longest}}}"
        self.regex = ("-?" if signed else "") + f"[0-9]{digits}"


class _RefusedAdapter(MapAdapter):
    """Bound in place of a request Werkzeug cannot bind: every match raises ``error``."""

    def __init__(self, url_map: Map, request: BaseRequestWebsocket, error: HTTPException) -> None:
        super().__init__(url_map, "invalid", "/", url_map.default_subdomain, "http", "/", "GET")
        self.error = error

    def match(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


class _RouteMap(QuartMap):
    """Quart's URL map with ASCII integer ids, no slash merging, and a bad Host as a 400."""

    default_converters = ImmutableDict(
        {**QuartMap.default_converters, "int": AsciiIntegerConverter}
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Werkzeug would answer `//a//b` with a redirect to an absolute URL built from the
        # Host header; unmerged, such a path simply matches no rule.
        self.merge_slashes = False

    def bind_to_request(
        self, request: BaseRequestWebsocket, subdomain: str | None, server_name: str | None
    ) -> MapAdapter:
        # Binding IDNA-encodes the Host header and decodes the query string; both raise on
        # input a client controls, before any error handler could answer. Bind a refusing
        # adapter instead, so the refusal is routed through the one request pipeline.
        try:
            return super().bind_to_request(request, subdomain, server_name)
        except BadHost as error:
            return _RefusedAdapter(self, request, error)
        except UnicodeDecodeError:
            return _RefusedAdapter(self, request, BadRequest())


class ImperfectQuart(Quart):
    """The platform's Quart: its URL map, and routing refusals in core's JSON contract."""

    url_map_class = _RouteMap
    _starting = False
    request_metrics: metrics.RequestMetrics | None = None  # set once the routes are known
    cors: CorsPolicy | None = None  # None: CORS is off
    unavailable: Mapping[str, str] = {}  # blueprint -> why it answers 503 (the runtime's)

    async def handle_request(self, request: Request) -> ResponseTypes:
        """Every request: its id (for its logs too), then metrics and the trace when done.

        The request runs in a task of its own (Quart's ASGI handler), so the request id set
        here is seen by everything the request does, its streamed body included, and by
        nothing else.
        """
        incoming = _incoming_request_id(request.scope["headers"])
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        logs.REQUEST_ID.set(request_id)
        tracer = tracing.active()
        span = tracer.start_request(request.method, request.headers) if tracer else None
        started = perf_counter()
        status = 500
        try:
            response = await super().handle_request(request)
            status = response.status_code
            response.headers["X-Request-ID"] = request_id
            return response
        finally:
            rule = request.url_rule
            endpoint = rule.endpoint if rule is not None else None
            observed = self.request_metrics
            if observed is not None:
                observed.observe(endpoint, request.method, status, perf_counter() - started)
            if tracer is not None and span is not None:
                route, family = (
                    observed.route(endpoint) if observed else (metrics.UNMATCHED, metrics.NO_FAMILY)
                )
                tracer.end_request(span, request.method, route, family, status, request_id)

    async def preprocess_request(
        self, request_context: RequestContext | None = None
    ) -> ResponseReturnValue | None:
        """Core's checks before routing errors, auth or any handler; then any hooks.

        A preflight is answered here; a route of a family left out at start-up is refused.
        Quart's own pass over the blueprint chain is skipped when no request hook exists
        (families may not add any, so that is the common case).
        """
        request = (request_context or request_ctx).request
        if request.method == "OPTIONS" and _is_preflight(request):
            return _preflight(self.cors, request)
        if self.unavailable and (blueprint := request.blueprint) in self.unavailable:
            raise ApiError(503, "plugin_unavailable", self.unavailable[blueprint or ""])
        if not _any_hook(self.before_request_funcs) and not _any_hook(self.url_value_preprocessors):
            return None
        return await super().preprocess_request(request_context)

    async def process_response(
        self, response: ResponseTypes, request_context: RequestContext | None = None
    ) -> ResponseTypes:
        """Quart's after-request pass, skipped when it has nothing to do (no hook, no session)."""
        context = request_context or request_ctx
        if (
            not context._after_request_functions
            and not _any_hook(self.after_request_funcs)
            and self.session_interface.is_null_session(context.session)
        ):
            return response
        return await super().process_response(response, request_context)

    async def do_teardown_request(
        self, exc: BaseException | None, request_context: RequestContext | None = None
    ) -> None:
        """Quart's teardown; its pass over the blueprint chain only when a teardown hook exists."""
        if _any_hook(self.teardown_request_funcs):
            await super().do_teardown_request(exc, request_context)
            return
        await request_tearing_down.send_async(
            self,
            _sync_wrapper=self.ensure_async,  # type: ignore[arg-type]
            exc=exc,
        )

    def raise_routing_exception(self, request: BaseRequestWebsocket) -> NoReturn:
        error = request.routing_exception
        if isinstance(error, RequestRedirect):
            # Only strict-slash redirects remain (`/notes` for a rule `/notes/`): answer
            # JSON, with a Location relative to this host, never one built from its Host.
            parts = urlsplit(error.new_url)
            location = "/" + parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
            raise ApiError(
                error.code,
                "redirect",
                "This resource lives at the URL in the Location header; repeat the request there.",
                headers={"Location": location},
            )
        if isinstance(error, BadHost):
            raise ApiError(400, "bad_host", "The Host header is not a valid host name.")
        super().raise_routing_exception(request)

    async def startup(self) -> None:
        self._starting = True
        try:
            await super().startup()
        finally:
            self._starting = False

    def log_exception(self, exception_info: Any) -> None:
        # A start-up refused with a message of ours is reported as that one line (by
        # `imperfect serve`, or to the caller of test_app); a traceback adds nothing.
        if self._starting and isinstance(exception_info[1], ConfigError | StartupError):
            return
        super().log_exception(exception_info)


def create_app(core: CoreSettings | None = None, platform: Platform | None = None) -> Quart:
    """Build the app for ``core`` settings (the environment when omitted)."""
    core = core or CoreSettings.from_env()
    check_emulator_allowed(core.environment)  # again: the variable may be set since
    platform = platform or load_platform(core)
    app = ImperfectQuart("imperfect")
    app.config["MAX_CONTENT_LENGTH"] = core.max_body_bytes
    app.config["PROPAGATE_EXCEPTIONS"] = False
    runtime = Runtime(platform)
    app.extensions["imperfect"] = runtime
    install_error_handlers(app)
    _install_request_pipeline(app)

    contributions, requirements = _collect(platform)
    runtime.requirements = dict(requirements)
    all_models = [db.core_models(), *(c.models for c in contributions.values() if c.models)]
    db.check_table_conflicts(all_models)
    runtime.outbox_handlers = _outbox_handlers(contributions)
    runtime.outbox_handlers[accounts.DELETION_KIND] = (
        "core",
        functools.partial(accounts.handle_deletion, runtime),
    )

    from core.routes import core_blueprint

    _register(app, runtime, "core", [core_blueprint(), metrics.metrics_blueprint()])
    for name, contribution in contributions.items():
        _register(app, runtime, name, contribution.blueprints)

    _check_requirements(app, runtime)
    app.request_metrics = metrics.RequestMetrics(app, runtime.blueprint_owners)
    runtime.tortoise_config = db.tortoise_config(core.database_url, all_models)
    runtime.tables = {m.plugin: m.tables for m in all_models}
    runtime.spec = build_spec(
        app,
        title=SERVICE_TITLE,
        version=service_version(),
        description=SERVICE_DESCRIPTION,
        owners=runtime.blueprint_owners,
        tags=[CORE_TAG]
        + [{"name": p.name, "description": p.info.description} for p in platform.plugins.values()],
        fragments=[(name, c.fragment) for name, c in contributions.items() if c.fragment],
        requirements=runtime.requirements,
    )

    @app.before_serving
    async def _serve_start() -> None:
        await _start(app, runtime)

    @app.after_serving
    async def _serve_stop() -> None:
        await _stop(app, runtime)

    return app


def _collect(
    platform: Platform,
) -> tuple[dict[str, Contribution], Registry[RouteRequirement]]:
    """Ask each family for its parts; a ``skip`` family that fails is left out.

    A conflict is always fatal. A bad contribution to another family's registry is the
    fault of the family that made it, which is left out (or aborts) in its place.
    """
    while True:
        contributions: dict[str, Contribution] = {}
        try:
            for name, plugin in list(platform.plugins.items()):
                contributions[name] = _contribution(platform, plugin)
            requirements = platform.collect(
                "route_requirements", RouteRequirement, key=lambda r: r.name
            )
            return contributions, requirements
        except _HookFailed as failure:
            platform.leave_out(failure.plugin, failure.reason)
        except ContributionError as error:
            platform.leave_out(error.plugin, error.cause)


class _HookFailed(Exception):
    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(reason)
        self.plugin, self.reason = plugin, reason


def _contribution(platform: Platform, plugin: LoadedPlugin) -> Contribution:
    contribution = Contribution()
    hook_name = ""
    try:
        hook_name = "blueprints"
        contribution.blueprints = list(platform.call_plugin_sync(plugin, hook_name) or [])
        hook_name = "model_modules"
        modules = list(platform.call_plugin_sync(plugin, hook_name) or [])
        if modules:
            contribution.models = db.describe_models(plugin.name, modules)
        hook_name = "spec_fragments"
        contribution.fragment = dict(platform.call_plugin_sync(plugin, hook_name) or {})
        hook_name = "outbox_handlers"
        handlers = platform.call_plugin_sync(plugin, hook_name)
        contribution.outbox_handlers = _checked_handlers(handlers or {})
    except ConflictError:
        raise
    except ContributionError as error:
        raise _HookFailed(error.plugin, error.cause) from error
    except Exception as error:
        raise _HookFailed(plugin.name, f"hook {hook_name} failed: {error!r}") from error
    return contribution


def _checked_handlers(handlers: Any) -> dict[str, OutboxHandler]:
    checked = dict(handlers)
    for kind, handler in checked.items():
        if not isinstance(kind, str) or not kind or not callable(handler):
            raise TypeError(f"outbox kind {kind!r} must be a non-empty string mapped to a callable")
    return checked


def _outbox_handlers(
    contributions: dict[str, Contribution],
) -> dict[str, tuple[str, OutboxHandler]]:
    """Every outbox kind with its one owner; a kind two families claim stops start-up."""
    handlers: dict[str, tuple[str, OutboxHandler]] = {}
    for name, contribution in contributions.items():
        for kind, handler in contribution.outbox_handlers.items():
            if kind in handlers:
                raise ConflictError(
                    f"outbox kind '{kind}' is handled by both plugin '{handlers[kind][0]}' "
                    f"and plugin '{name}'"
                )
            handlers[kind] = (name, handler)
    return handlers


def _register(app: Quart, runtime: Runtime, owner: str, blueprints: list[Blueprint]) -> None:
    """Register one family's blueprints, refusing any rule another family serves."""
    taken = {
        (_RULE_ARGUMENT.sub("<>", rule), method): plugin
        for rule, methods, plugin in runtime.routes
        for method in methods.split(",")
    }
    hooks_before = _request_hook_counts(app)
    before = set(app.blueprints)
    for blueprint in blueprints:
        if blueprint.name in runtime.blueprint_owners:
            raise ConflictError(
                f"blueprint '{blueprint.name}' is registered by both plugin "
                f"'{runtime.blueprint_owners[blueprint.name]}' and plugin '{owner}'"
            )
        app.register_blueprint(blueprint)
        for name in set(app.blueprints) - before:
            runtime.blueprint_owners[name] = owner
        before = set(app.blueprints)
    if owner != "core":
        added = [
            name
            for name, count in _request_hook_counts(app).items()
            if count > hooks_before.get(name, 0)
        ]
        if added:
            raise ConfigError(
                f"plugin '{owner}' adds per-request hooks ({', '.join(sorted(added))}); "
                "the request path is core's: do the work in the handler or its service"
            )
    new_rules = [
        r
        for r in app.url_map.iter_rules()
        if runtime.blueprint_owners.get(r.endpoint.rpartition(".")[0]) == owner
    ]
    for rule in new_rules:
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            key = (_RULE_ARGUMENT.sub("<>", rule.rule), method)
            if key in taken and taken[key] != owner:
                raise ConflictError(
                    f"{method} {rule.rule} is served by both plugin '{taken[key]}' "
                    f"and plugin '{owner}'"
                )
            taken[key] = owner
        runtime.routes.append((rule.rule, ",".join(methods), owner))


def _check_requirements(app: Quart, runtime: Runtime) -> None:
    """Every requirement a route declares is defined by an enabled family (fail closed)."""
    for rule in app.url_map.iter_rules():
        declared = declared_endpoint(app.view_functions[rule.endpoint])
        for name in declared.requires if declared else ():
            if name not in runtime.requirements:
                owner = runtime.blueprint_owners.get(rule.endpoint.rpartition(".")[0], "core")
                raise ConfigError(
                    f"plugin '{owner}': {rule.rule} requires '{name}', which no enabled family "
                    "defines (route_requirements); enable that family or list it in requires"
                )


_REQUEST_HOOKS = (
    "before_request_funcs",
    "after_request_funcs",
    "teardown_request_funcs",
    "url_value_preprocessors",
    "url_default_functions",
)


def _incoming_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` (the first one), read from the ASGI scope's headers.

    ``request.headers.get`` would build (and catch) a Werkzeug error for the common request
    that sends none; ASGI header names are lower case.
    """
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode("latin-1")
    return ""


def _any_hook(funcs: Mapping[Any, list[Any]]) -> bool:
    """Whether any app- or blueprint-wide function of one per-request kind is registered."""
    return any(funcs.values())


def _request_hook_counts(app: Quart) -> dict[str, int]:
    """How many per-request functions of each kind are registered, app- and blueprint-wide."""
    return {
        kind: sum(len(funcs) for funcs in getattr(app, kind).values()) for kind in _REQUEST_HOOKS
    }


def _install_request_pipeline(app: ImperfectQuart) -> None:
    runtime = runtime_of(app)
    cors = CorsPolicy.from_settings(runtime.core)
    # The request id, metrics and the trace are ImperfectQuart.handle_request's, preflights
    # and unavailable families its preprocess_request's: one pipeline, no hook per concern.
    app.cors = cors
    app.unavailable = runtime.unavailable
    logs.install()

    if cors is not None:

        @app.after_request
        async def _cors_headers(response: Response) -> Response:
            if _is_preflight(request):
                response.vary.add("Origin")  # answered (or refused) by ImperfectQuart
            else:
                cors.decorate(response, request.headers.get("Origin"))
            return response


@dataclass(frozen=True)
class CorsPolicy:
    """CORS from the core settings: exact origins; preflights answered by core itself."""

    origins: frozenset[str]
    methods: frozenset[str]
    headers: frozenset[str]  # lower case
    preflight_headers: tuple[tuple[str, str], ...]
    response_headers: tuple[tuple[str, str], ...]

    @classmethod
    def from_settings(cls, core: CoreSettings) -> CorsPolicy | None:
        """The policy, or ``None`` when ``IMPERFECT_CORS_ORIGINS`` is empty (CORS off)."""
        if not core.cors_origin_set:
            return None
        credentials = (
            (("Access-Control-Allow-Credentials", "true"),) if core.cors_credentials else ()
        )
        expose = (
            (("Access-Control-Expose-Headers", core.cors_expose_headers.replace(",", ", ")),)
            if core.cors_expose_headers
            else ()
        )
        return cls(
            origins=core.cors_origin_set,
            methods=frozenset(core.cors_methods.split(",")) - {""},
            headers=frozenset(core.cors_headers.lower().split(",")) - {""},
            preflight_headers=(
                ("Access-Control-Allow-Methods", core.cors_methods.replace(",", ", ")),
                ("Access-Control-Allow-Headers", core.cors_headers.replace(",", ", ")),
                ("Access-Control-Max-Age", str(core.cors_max_age)),
                *credentials,
            ),
            response_headers=(*credentials, *expose),
        )

    def preflight(self, origin: str, method: str, requested: str) -> Response:
        """204 with the allowed methods and headers, or a 403 JSON refusal."""
        if origin.lower() not in self.origins:
            return _cors_refusal("Cross-origin requests from this origin are not allowed.")
        if method not in self.methods:
            return _cors_refusal(f"Cross-origin {method[:16]!r} requests are not allowed.")
        asked = {name.strip().lower() for name in requested.split(",") if name.strip()}
        if not asked <= self.headers:
            return _cors_refusal("A requested header is not allowed in cross-origin requests.")
        response = Response(b"", status=204)
        response.headers["Access-Control-Allow-Origin"] = origin.lower()
        for name, value in self.preflight_headers:
            response.headers[name] = value
        response.vary.update(("Origin", "Access-Control-Request-Method"))
        response.vary.add("Access-Control-Request-Headers")
        return response

    def decorate(self, response: Response, origin: str | None) -> None:
        """Let an allowed origin read ``response``; every response varies by Origin."""
        response.vary.add("Origin")
        if origin is None or origin.lower() not in self.origins:
            return
        response.headers["Access-Control-Allow-Origin"] = origin.lower()
        for name, value in self.response_headers:
            response.headers[name] = value


def _is_preflight(request: BaseRequestWebsocket) -> bool:
    headers = request.headers
    return (
        request.method == "OPTIONS"
        and "Origin" in headers
        and "Access-Control-Request-Method" in headers
    )


def _preflight(cors: CorsPolicy | None, request: BaseRequestWebsocket) -> Response:
    """A preflight's answer, before routing errors, auth or any handler."""
    origin = request.headers["Origin"]
    if cors is None:
        return _cors_refusal("Cross-origin requests are not enabled on this deployment.")
    return cors.preflight(
        origin,
        request.headers["Access-Control-Request-Method"],
        request.headers.get("Access-Control-Request-Headers", ""),
    )


def _cors_refusal(detail: str) -> Response:
    response = error_response(403, "cors_refused", detail)
    response.vary.add("Origin")
    return response


async def _start(app: Quart, runtime: Runtime) -> None:
    """Open everything; if any step fails, close what was opened, then re-raise."""
    runtime.start_failure = None
    try:
        await _open(app, runtime)
    except BaseException as error:
        runtime.start_failure = error
        await _stop(app, runtime)
        raise
    # Everything built so far lives as long as the process: keep it out of the
    # collector's full passes, whose pauses otherwise set the p99 latency.
    gc.collect()
    gc.freeze()


async def _open(app: Quart, runtime: Runtime) -> None:
    """Firebase, database, migrations check, each family's ``startup``, the outbox."""
    core = runtime.core
    tracing.configure_from_env()  # once per process; nothing unless an exporter is configured
    runtime.auth = FirebaseAuth(core)
    runtime.rate_limiter = RateLimiter.from_env()
    await runtime.rate_limiter.start()
    config = runtime.tortoise_config
    await db.init(config)
    async with db.migration_lock(config):
        pending = await db.pending_migrations(config)
        if pending:
            if not core.auto_migrate:
                raise StartupError(
                    "unapplied migrations: "
                    + ", ".join(pending)
                    + ". Run `imperfect db migrate`, or set IMPERFECT_AUTO_MIGRATE=1."
                )
            applied = await db.migrate(config)
            log.info("applied migrations: %s", ", ".join(applied))
    platform = runtime.platform
    for plugin in list(platform.plugins.values()):
        if plugin.name not in platform.plugins:
            continue  # left out below because a family it requires failed
        try:
            await platform.call_plugin(plugin, "startup", app=app)
            runtime.started.append(plugin)
            checks = await platform.call_plugin(plugin, "readiness_checks")
            runtime.readiness[plugin.name] = dict(checks or {})
        except Exception as error:
            reason = f"start-up failed: {error!r}"
            if plugin.entry.on_failure == "abort":
                raise StartupError(f"plugin '{plugin.name}': {reason}") from error
            log.exception("plugin '%s' %s", plugin.name, reason)
            if runtime.started and runtime.started[-1] is plugin:
                # it started, then failed: close it while its hooks are still registered
                runtime.started.pop()
                await _shut_down(app, runtime, plugin)
            _leave_out_at_start(runtime, plugin.name, reason)
    runtime.user_resolvers = platform.impls("resolve_user")
    # A family left out at start-up keeps its messages queued until it runs again.
    handlers = {
        kind: handler
        for kind, (owner, handler) in runtime.outbox_handlers.items()
        if owner == "core" or owner in platform.plugins
    }
    runtime.outbox = Dispatcher(
        handlers, OutboxPolicy.from_settings(core), context=lambda: app.app_context()
    )
    if core.outbox_dispatcher and handlers:
        runtime.outbox.start()


def _leave_out_at_start(runtime: Runtime, name: str, reason: str) -> None:
    """Leave a failed ``skip`` family (and its dependents) out; their routes answer 503.

    Routes cannot be removed from a Quart app once it serves, so they stay
    registered and refuse every request instead; ``GET /`` and ``/readyz``
    report the family as skipped with the reason.
    """
    platform = runtime.platform
    before = set(platform.left_out)
    platform.leave_out(name, reason)
    for left in set(platform.left_out) - before:
        runtime.readiness.pop(left, None)
        runtime.failed_at_start[left] = platform.left_out[left].reason
        for blueprint, owner in runtime.blueprint_owners.items():
            if owner == left:
                runtime.unavailable[blueprint] = f"The '{left}' family is unavailable."


async def _shut_down(app: Quart, runtime: Runtime, plugin: LoadedPlugin) -> None:
    """One family's ``shutdown``; errors are logged so every family gets its turn."""
    try:
        await runtime.platform.call_plugin(plugin, "shutdown", app=app)
    except Exception:
        log.exception("plugin '%s' failed to shut down", plugin.name)


async def _stop(app: Quart, runtime: Runtime) -> None:
    """The outbox, each started family's ``shutdown`` in reverse order, database, Firebase."""
    if runtime.outbox is not None:
        await runtime.outbox.stop()
        runtime.outbox = None
    for plugin in reversed(runtime.started):
        await _shut_down(app, runtime, plugin)
    runtime.started.clear()
    await db.close()
    if runtime.rate_limiter is not None:
        await runtime.rate_limiter.close()
        runtime.rate_limiter = None
    if runtime.auth is not None:
        await runtime.auth.aclose()
        runtime.auth = None
    metrics.worker_stopped()  # its live gauges stop counting (several workers)
