"""Core's own routes: the spec, its browsable docs, liveness and readiness."""

from __future__ import annotations

import asyncio
import functools
import os
import time
import weakref
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from quart import Blueprint, Response, current_app, request, send_from_directory

from core import db
from core.endpoints import declared_endpoint, endpoint
from core.errors import OUTAGES, RETRY_AFTER_SECONDS, public_failure, scrub

DETAIL_ENV = "IMPERFECT_READINESS_DETAIL"
MIGRATIONS_INTERVAL = 10.0  # seconds between two looks for pending migrations

SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>imperfect-api</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""


class Health(BaseModel):
    status: Literal["ok"]


class CheckResult(BaseModel):
    ok: bool
    error: str | None = Field(
        None,
        description="Why the check failed: a short fixed phrase (`unreachable`, `timed out`, "
        "`refused: HTTP 503`, `read-only`...) or the family's own sentence, without "
        "hostnames, ports, paths or raw exception text; the raw error in detail mode.",
    )
    detail: str | None = None


class PluginReadiness(BaseModel):
    ok: bool
    checks: dict[str, CheckResult]


class Readiness(BaseModel):
    ready: bool = Field(
        description="Whether to keep this instance in rotation: the database answers and "
        "takes writes, no migration is pending and ID tokens can be verified. A family's "
        "failing check never makes an instance not ready: it is `degraded`."
    )
    status: Literal["ready", "degraded", "not_ready"] = Field(
        description="`ready`; `degraded`: ready, with a family's check failing (a sibling "
        "such as alice down, whose routes answer 502/503/504 naming it); `not_ready` (503)."
    )
    database: CheckResult
    migrations: CheckResult = Field(
        description="No migration of an enabled family is unapplied (checked at most every "
        f"{MIGRATIONS_INTERVAL:g}s)."
    )
    auth: CheckResult = Field(
        description="Whether signed-in routes can verify Firebase ID tokens: `emulator` "
        "(the Firebase Auth Emulator), ok with Google credentials, or not ready with "
        "`not configured` (those routes answer 503 auth_unavailable). A deployment "
        "without signed-in routes is ready either way."
    )
    degraded: list[str] = Field(description="The families with a failing check, by name.")
    plugins: dict[str, PluginReadiness]
    raw_errors: bool = Field(
        description="Whether errors are shown raw (a token with the admin claim, or "
        "IMPERFECT_READINESS_DETAIL=1 on this instance) rather than as short phrases."
    )


def core_blueprint() -> Blueprint:
    blueprint = Blueprint("core", __name__)
    detail_for_everyone = os.environ.get(DETAIL_ENV, "").strip().lower() in {"1", "true", "yes"}

    @blueprint.get("/openapi.json")
    @endpoint(auth="public", include_in_schema=False)
    async def openapi_document() -> Response:
        spec = current_app.extensions["imperfect"].spec
        if request.if_none_match.contains_raw(spec.etag):
            return Response(b"", status=304, headers={"ETag": spec.etag})
        return Response(
            spec.body,
            content_type="application/json",
            headers={"ETag": spec.etag, "Cache-Control": "no-cache"},
        )

    @blueprint.get("/docs")
    @endpoint(auth="public", include_in_schema=False)
    async def docs_page() -> Response:
        return Response(DOCS_PAGE, content_type="text/html; charset=utf-8")

    @blueprint.get("/docs/assets/<path:filename>")
    @endpoint(auth="public", include_in_schema=False)
    async def docs_asset(filename: str) -> Response:
        response = await send_from_directory(SWAGGER_UI, filename)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    @blueprint.get("/healthz")
    @endpoint(auth="public", response=Health, tags=["core"])
    async def liveness() -> Health:
        """The process is up and serving (no dependency is checked)."""
        return Health(status="ok")

    @blueprint.get("/readyz")
    @endpoint(auth="public", response=Readiness, responses={503: Readiness}, tags=["core"])
    async def readiness() -> tuple[Readiness, int] | Response:
        """Whether to route traffic here: 503 only for what this instance cannot serve
        without (its database, its migrations, token verification); each family's checks
        (siblings such as alice, hare, Terra, Redis events) are reported, and a failing one
        makes the instance `degraded`, still 200.

        The body names no host, port or path and shows no raw error; a token with the
        admin claim (or `IMPERFECT_READINESS_DETAIL=1` on the instance) shows them."""
        runtime = current_app.extensions["imperfect"]
        report = await readiness_report(raw=detail_for_everyone or await _is_admin(runtime))
        if report.ready:
            return report, 200
        return Response(
            report.model_dump_json(),
            status=503,
            content_type="application/json",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    return blueprint


_MIGRATION_CHECKS: weakref.WeakKeyDictionary[Any, _MigrationsCheck] = weakref.WeakKeyDictionary()


async def readiness_report(raw: bool = False) -> Readiness:
    """What ``/readyz`` answers for the app serving this request: core's checks (database,
    migrations, token verification) and every family's, each within the readiness timeout.
    Errors are short phrases unless ``raw``."""
    runtime = current_app.extensions["imperfect"]
    timeout = runtime.core.readiness_timeout
    migrations = _MIGRATION_CHECKS.setdefault(runtime, _MigrationsCheck())

    async def run(check: Any) -> CheckResult:
        return await _run_check(check, timeout, raw)

    database = await run(_database_check)
    pending = await run(functools.partial(migrations.check, runtime.tortoise_config))
    auth = await run(_auth_check)
    if not auth.ok and not _takes_tokens():
        auth = CheckResult(ok=True, detail="not needed: no route takes a token")
    plugins = {}
    for name, checks in runtime.readiness.items():
        results = {check: await run(fn) for check, fn in sorted(checks.items())}
        plugins[name] = PluginReadiness(ok=all(r.ok for r in results.values()), checks=results)
    for name, reason in runtime.failed_at_start.items():
        error = reason if raw else scrub(reason)
        plugins[name] = PluginReadiness(
            ok=False, checks={"startup": CheckResult(ok=False, error=error)}
        )
    ready = database.ok and pending.ok and auth.ok
    degraded = sorted(name for name, plugin in plugins.items() if not plugin.ok)
    status: Literal["ready", "degraded", "not_ready"] = (
        "not_ready" if not ready else "degraded" if degraded else "ready"
    )
    return Readiness(
        ready=ready,
        status=status,
        database=database,
        migrations=pending,
        auth=auth,
        degraded=degraded,
        plugins=plugins,
        raw_errors=raw,
    )


async def _database_check() -> str | None:
    """A round trip (and, for SQLite, a write it rolls back); a write refused lately fails."""
    await db.probe()
    refused = OUTAGES.recent_write_refusal()
    if refused is not None:
        raise RuntimeError(
            f"writes refused within the last {OUTAGES.WRITE_REFUSED_WINDOW:g}s: {refused}"
        )
    return None


class _MigrationsCheck:
    """Pending migrations, looked for at most every ``MIGRATIONS_INTERVAL`` seconds."""

    def __init__(self) -> None:
        self.checked_at = -MIGRATIONS_INTERVAL
        self.pending: list[str] = []

    async def check(self, config: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.checked_at >= MIGRATIONS_INTERVAL:
            self.pending = await db.pending_migrations(config)
            self.checked_at = now
        if self.pending:
            raise RuntimeError(
                f"{len(self.pending)} unapplied migration(s): {', '.join(self.pending)}; "
                "run `imperfect db migrate`"
            )


async def _is_admin(runtime: Any) -> bool:
    """Whether the request carries a valid ID token with the admin claim (never a 401)."""
    header = request.headers.get("Authorization")
    if not header or runtime.auth is None:
        return False
    try:
        identity = await runtime.auth.identify(header)
    except Exception:
        return False
    return identity.claims.get(runtime.core.admin_claim) is True


_CREDENTIAL_PROBES: weakref.WeakKeyDictionary[Any, asyncio.Future[Any]] = (
    weakref.WeakKeyDictionary()
)


async def _auth_check() -> str:
    """Can ID tokens be verified: the emulator, or a Google credential to verify them with."""
    auth = current_app.extensions["imperfect"].auth
    if auth is None:
        raise RuntimeError("not started")
    host = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
    if host:
        return f"emulator at {host} (tokens are not signature-checked)"
    # Looking for credentials may wait on a metadata server: one lookup at a time per app,
    # shared by concurrent probes (and cached by firebase-admin once it succeeds).
    probe = _CREDENTIAL_PROBES.get(auth)
    if probe is None or probe.done():
        probe = asyncio.ensure_future(asyncio.to_thread(auth.google_credentials))
        probe.add_done_callback(lambda done: done.cancelled() or done.exception())
        _CREDENTIAL_PROBES[auth] = probe
    try:
        await asyncio.shield(probe)
    except Exception as error:
        raise RuntimeError(
            "not configured: no Google credentials to verify Firebase ID tokens with "
            f"({type(error).__name__}); set GOOGLE_APPLICATION_CREDENTIALS, run where "
            "Application Default Credentials exist, or use FIREBASE_AUTH_EMULATOR_HOST"
        ) from error
    return f"ok: Google credentials for project '{auth.project_id}'"


def _takes_tokens() -> bool:
    """Whether any route this app serves needs a Firebase ID token."""
    for view in current_app.view_functions.values():
        declared = declared_endpoint(view)
        if declared is not None and declared.auth != "public":
            return True
    return False


async def _run_check(check, timeout: float, raw: bool) -> CheckResult:  # type: ignore[no-untyped-def]
    """Run one check within ``timeout``; its failure as a public phrase unless ``raw``."""
    try:
        result = await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return CheckResult(ok=False, error=f"timed out (no answer within {timeout:g}s)")
    except Exception as error:
        if raw:
            text = " ".join(str(error).split())
            return CheckResult(
                ok=False, error=f"{type(error).__name__}: {text}" if text else type(error).__name__
            )
        return CheckResult(ok=False, error=public_failure(error))
    detail = result if isinstance(result, str) else None
    return CheckResult(ok=True, detail=detail if raw or detail is None else scrub(detail))
