"""The one declaration per handler that drives validation, auth and the spec.

::

    @bp.post("/users_profiles")
    @endpoint(body=ProfileIn, response=ProfileOut, status=201, auth="user", errors=(409,))
    async def create_profile(body: ProfileIn, user: User) -> ProfileOut: ...

The wrapper authenticates (``auth``), validates the query string (``query``)
and JSON body (``body``) with pydantic, calls the handler with the validated
objects, and serialises what it returns through ``response``, so no field the
response model does not declare ever leaves the server. Everything is prepared
once, when the decorator runs; nothing is computed per request that need not be.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from quart import Request, Response, current_app, request

from core.auth import Identity, require_admin
from core.errors import ApiError, RequestValidationError, pydantic_errors
from core.ratelimit import Per, RateLimit, declared_limits
from core.sse import EventStream, respond

AuthLevel = Literal["public", "user", "admin"]
JSON = "application/json"


@dataclass(frozen=True)
class RequirementContext:
    """What a route requirement's check sees of the request it guards."""

    route: Endpoint
    identity: Identity | None
    user: Any  # the resolved local user when the handler takes ``user``, else None
    request: Request


@dataclass(frozen=True)
class RouteRequirement:
    """A per-route requirement a family defines and other families declare on routes.

    A family returns these from its ``route_requirements`` hook; any route declares
    ``@endpoint(requires=("<name>",))``. Core runs ``check`` in its one request pipeline,
    after authentication and user resolution and before the body is read; ``check``
    refuses the request by raising :class:`~core.errors.ApiError`. ``security_scheme``
    (an OpenAPI security scheme object, for example a header ``apiKey``) is added to the
    spec as ``name`` and required, together with the bearer token, on every route that
    declares it; ``errors`` are the statuses ``check`` may answer, documented on those routes.
    """

    name: str
    check: Callable[[RequirementContext], Awaitable[None]]
    description: str
    security_scheme: Mapping[str, Any] | None = None
    errors: tuple[int, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """What a handler declares; read by the request wrapper and by the spec builder."""

    name: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    auth: AuthLevel
    recent_sign_in: int | Callable[[], int] | None
    errors: tuple[int, ...]
    responses: tuple[tuple[int, Any], ...]
    tags: tuple[str, ...]
    summary: str | None
    description: str | None
    operation_id: str | None
    deprecated: bool
    include_in_schema: bool
    media_type: str
    resolves_user: bool
    requires: tuple[str, ...] = ()
    raw_body: bool = False
    raw_body_media_type: str | None = None
    rate_limits: tuple[RateLimit, ...] = ()  # shortest window first; empty: not limited
    stream: EventStream | None = field(default=None, compare=False)
    headers: tuple[tuple[str, str], ...] = ()  # success response headers: (name, description)
    response_adapter: TypeAdapter[Any] | None = field(default=None, compare=False)
    status_adapters: Mapping[int, TypeAdapter[Any]] = field(default_factory=dict, compare=False)


def endpoint(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    auth: AuthLevel = "user",
    recent_sign_in: int | Callable[[], int] | None = None,
    errors: Iterable[int] = (),
    responses: Mapping[int, Any] | None = None,
    tags: Iterable[str] = (),
    summary: str | None = None,
    description: str | None = None,
    operation_id: str | None = None,
    deprecated: bool = False,
    include_in_schema: bool = True,
    media_type: str = JSON,
    requires: Iterable[str] = (),
    raw_body: bool | str = False,
    rate_limits: Iterable[RateLimit | str] = (),
    rate_limit_by: Per = "user",
    stream: EventStream | None = None,
    headers: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]:
    """Declare a handler's contract.

    ``auth`` is ``"user"`` (a valid Firebase ID token; the default),
    ``"admin"`` (plus the admin custom claim) or ``"public"``.
    ``recent_sign_in`` (seconds) additionally requires a recent sign-in, for
    destructive routes; a function returning the seconds is called per request, so
    the window can come from the family's settings. ``errors`` lists the error
    statuses the handler itself raises (with :class:`core.errors.ApiError`), so
    the spec documents them; ``responses`` documents other statuses whose body
    is not an error (for example ``{503: Readiness}``), each with its model; on a
    route whose ``media_type`` is not JSON, a status core also answers there (429 for
    a rate limit, 503 for an outage) is documented with both bodies, core's JSON and
    the route's own.
    The handler receives ``body``, ``query``, ``user`` (the resolved current
    user) and ``identity`` when its signature names them, plus path parameters.
    It returns a value for ``response``, a ``(value, status)`` pair, or a
    :class:`quart.Response` that is passed through untouched (streams,
    redirects, files). ``media_type`` documents what a passed-through response
    carries when it is not JSON. ``requires`` names route requirements other families
    define (``route_requirements`` hook), run by core before the handler. ``raw_body=True``
    (or the media type the route takes, such as ``"application/json"``) gives the handler
    the body's bytes, unparsed and read once within the platform's size limit, as
    ``raw_body``: for webhooks whose signature covers exactly what was sent.
    ``rate_limits`` lists the route's windows, each a :class:`~core.RateLimit` or a string
    such as ``"10/minute"`` counted per ``rate_limit_by`` (``"user"``, the default, ``"ip"``
    or ``"route"``); over any of them the request is refused with 429 ``rate_limited``
    before its body is read, and the spec documents the 429.
    ``stream`` (an :class:`~core.EventStream`) makes the route answer Server-Sent Events:
    the handler is an async generator yielding :class:`~core.ServerSentEvent` objects
    (see :mod:`core.sse`), and it receives ``last_event_id`` (the ``Last-Event-ID``
    header, or None) when its signature names it. ``headers`` documents the headers the
    handler sets on its success response (name -> description, for example
    ``{"Content-Language": "The language served."}``); the spec lists them as always sent.
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        where = f"@endpoint handler {handler.__qualname__}"
        if stream is not None:
            if not inspect.isasyncgenfunction(handler):
                raise TypeError(f"{where} declares stream=, so it must be an async generator")
            if response is not None or status != 200:
                raise TypeError(
                    f"{where} declares stream=, which answers 200: no response=/status="
                )
        elif not inspect.iscoroutinefunction(handler):
            raise TypeError(f"{where} must be async def")
        adapter = TypeAdapter(response) if response is not None else None
        wanted = set(inspect.signature(handler).parameters)
        _check_signature(handler, wanted, body=body, query=query, auth=auth, raw_body=raw_body)
        if "last_event_id" in wanted and stream is None:
            raise TypeError(f"{where} takes 'last_event_id' but declares no stream=")
        windows = declared_limits(rate_limits, rate_limit_by, where)
        if auth == "public" and any(w.per == "user" for w in windows):
            raise TypeError(
                f"{where} is public, so it cannot be rate limited per user; "
                "limit it per 'ip' or per 'route'"
            )
        error_statuses = {*errors, 429} if windows else set(errors)
        declared = Endpoint(
            name=handler.__name__,
            body=body,
            query=query,
            response=response,
            status=status,
            auth=auth,
            recent_sign_in=recent_sign_in,
            errors=tuple(sorted(error_statuses)),
            responses=tuple(sorted((responses or {}).items())),
            tags=tuple(tags),
            summary=summary,
            description=description or inspect.getdoc(handler),
            operation_id=operation_id,
            deprecated=deprecated,
            include_in_schema=include_in_schema,
            media_type=media_type,
            resolves_user="user" in wanted,
            requires=tuple(dict.fromkeys(requires)),
            raw_body=bool(raw_body),
            raw_body_media_type=raw_body if isinstance(raw_body, str) else None,
            rate_limits=windows,
            response_adapter=adapter,
            status_adapters={code: TypeAdapter(model) for code, model in (responses or {}).items()},
            stream=stream,
            headers=tuple((headers or {}).items()),
        )
        wants_user, wants_identity = "user" in wanted, "identity" in wanted
        wants_last_event_id = "last_event_id" in wanted
        query_lists = _list_fields(query) if query else frozenset()
        route_key = f"{handler.__module__}.{handler.__qualname__}"

        async def serve(identity: Identity | None, kwargs: dict[str, Any]) -> Any:
            user = None
            if identity is not None:
                if wants_identity:
                    kwargs["identity"] = identity
                if wants_user:
                    user = kwargs["user"] = await current_app.extensions["imperfect"].resolve_user(
                        identity
                    )
            if declared.requires:
                await _check_requirements(declared, identity, user)
            if declared.raw_body:
                kwargs["raw_body"] = await request.get_data(cache=False)
            if query is not None:
                kwargs["query"] = _parse_query(query, query_lists)
            if body is not None:
                kwargs["body"] = await _parse_body(body)
            if stream is None:
                return _respond(declared, await handler(**kwargs))
            if wants_last_event_id:
                kwargs["last_event_id"] = request.headers.get("Last-Event-ID")
            heartbeat = current_app.extensions["imperfect"].core.sse_heartbeat_seconds
            return await respond(stream, handler(**kwargs), heartbeat)

        @functools.wraps(handler)
        async def wrapper(**kwargs: Any) -> Any:
            identity = await _authenticate(declared) if auth != "public" else None
            if not windows:
                return await serve(identity, kwargs)
            # after authentication (per-user budgets need the uid), before anything costly
            headers = await _rate_limit(route_key, windows, identity)
            if not headers:
                return await serve(identity, kwargs)
            try:
                response = await serve(identity, kwargs)
            except ApiError as error:
                error.headers = {**headers, **error.headers}
                raise
            response.headers.update(headers)
            return response

        wrapper.__endpoint__ = declared  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _check_signature(
    handler: Callable[..., Any],
    wanted: set[str],
    *,
    body: Any,
    query: Any,
    auth: AuthLevel,
    raw_body: bool | str,
) -> None:
    """Catch declaration mistakes when the module loads, not as a 500 per request."""
    where = f"@endpoint handler {handler.__qualname__}"
    if bool(raw_body) != ("raw_body" in wanted):
        raise TypeError(f"{where} must take 'raw_body' exactly when it declares raw_body=")
    if raw_body and body is not None:
        raise TypeError(f"{where} declares both body= and raw_body=; parse the raw body itself")
    for name, model in (("body", body), ("query", query)):
        if model is not None and name not in wanted:
            raise TypeError(f"{where} declares {name}= but takes no '{name}' parameter")
        if model is None and name in wanted:
            raise TypeError(f"{where} takes '{name}' but declares no {name}= model")
    if auth == "public" and wanted & {"user", "identity"}:
        raise TypeError(f"{where} is public, so it cannot take 'user' or 'identity'")


def declared_endpoint(view: Callable[..., Any]) -> Endpoint | None:
    """The :class:`Endpoint` a view function was declared with, if any."""
    return getattr(view, "__endpoint__", None)


async def _authenticate(declared: Endpoint) -> Any:
    """The caller's identity. A route that needs a recent sign-in also has the user's
    revocation state looked up live (after the ``auth_time`` check, so a stale token costs
    no lookup); any other route takes it from the auth path's per-user cache."""
    runtime = current_app.extensions["imperfect"]
    window = declared.recent_sign_in
    if callable(window):
        window = window()
    identity = await runtime.auth.identify(
        request.headers.get("Authorization"), recent_sign_in=window
    )
    if declared.auth == "admin":
        require_admin(identity, runtime.core.admin_claim)
    return identity


async def _rate_limit(
    route: str, windows: tuple[RateLimit, ...], identity: Identity | None
) -> dict[str, str] | None:
    limiter = current_app.extensions["imperfect"].rate_limiter
    if limiter is None:  # the app is not serving (no limiter before start-up)
        return None
    uid = identity.uid if identity is not None else None
    return await limiter.acquire(route, windows, uid, request)


async def _check_requirements(declared: Endpoint, identity: Identity | None, user: Any) -> None:
    requirements = current_app.extensions["imperfect"].requirements
    context = RequirementContext(declared, identity, user, request)
    for name in declared.requires:
        await requirements[name].check(context)


def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    names = set()
    for name, info in model.model_fields.items():
        origin = typing.get_origin(info.annotation)
        args = typing.get_args(info.annotation)
        if origin in (list, set, tuple) or any(typing.get_origin(a) is list for a in args):
            names.add(info.alias or name)
    return frozenset(names)


def _parse_query(model: type[BaseModel], list_fields: frozenset[str]) -> BaseModel:
    args = request.args
    data = {key: (args.getlist(key) if key in list_fields else args[key]) for key in args}
    try:
        return model.model_validate(data)
    except PydanticValidationError as error:
        raise RequestValidationError(
            pydantic_errors(error.errors(include_url=False), "query")
        ) from error


async def _parse_body(model: type[BaseModel]) -> BaseModel:
    mimetype = request.mimetype
    if mimetype != JSON and not mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"This route takes a JSON body (Content-Type: {JSON}), not {mimetype or 'none'}.",
        )
    raw = await request.get_data()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    try:
        return model.model_validate_json(raw)
    except PydanticValidationError as error:
        raise RequestValidationError(
            pydantic_errors(error.errors(include_url=False), "body")
        ) from error


def _respond(declared: Endpoint, result: Any) -> Any:
    if isinstance(result, Response):
        return result
    status = declared.status
    if isinstance(result, tuple):
        result, status = result
    adapter = declared.status_adapters.get(status, declared.response_adapter)
    if adapter is None:
        if result is not None:
            raise TypeError(f"{declared.name} declares no response model but returned a value")
        return Response(b"", status=status)
    value = adapter.validate_python(result, from_attributes=True)
    return Response(adapter.dump_json(value), status=status, content_type=JSON)
