"""Core's own routes: the spec, its browsable docs, liveness and readiness."""

from __future__ import annotations

import asyncio
import os
import weakref
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from quart import Blueprint, Response, current_app, request, send_from_directory
from tortoise.connection import get_connection

from core.endpoints import declared_endpoint, endpoint

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
    error: str | None = None
    detail: str | None = None


class PluginReadiness(BaseModel):
    ok: bool
    checks: dict[str, CheckResult]


class Readiness(BaseModel):
    ready: bool
    database: CheckResult
    auth: CheckResult = Field(
        description="Whether signed-in routes can verify Firebase ID tokens: `emulator` "
        "(the Firebase Auth Emulator), ok with Google credentials, or not ready with "
        "`not configured` (those routes answer 503 auth_unavailable). A deployment "
        "without signed-in routes is ready either way."
    )
    plugins: dict[str, PluginReadiness]


def core_blueprint() -> Blueprint:
    blueprint = Blueprint("core", __name__)

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
    async def readiness() -> tuple[Readiness, int]:
        """The database, token verification and every enabled family's readiness checks."""
        runtime = current_app.extensions["imperfect"]
        timeout = runtime.core.readiness_timeout
        database = await _run_check(_database_check, timeout)
        auth = await _run_check(_auth_check, timeout)
        if not auth.ok and not _takes_tokens():
            auth = CheckResult(ok=True, detail="not needed: no route takes a token")
        plugins = {}
        for name, checks in runtime.readiness.items():
            results = {check: await _run_check(fn, timeout) for check, fn in sorted(checks.items())}
            plugins[name] = PluginReadiness(ok=all(r.ok for r in results.values()), checks=results)
        for name, reason in runtime.failed_at_start.items():
            plugins[name] = PluginReadiness(
                ok=False, checks={"startup": CheckResult(ok=False, error=reason)}
            )
        ready = database.ok and auth.ok and all(p.ok for p in plugins.values())
        report = Readiness(ready=ready, database=database, auth=auth, plugins=plugins)
        return report, 200 if ready else 503

    return blueprint


async def _database_check() -> None:
    await get_connection("default").execute_query("SELECT 1")


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


async def _run_check(check, timeout: float) -> CheckResult:  # type: ignore[no-untyped-def]
    try:
        result = await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return CheckResult(ok=False, error=f"no answer within {timeout:g}s")
    except Exception as error:
        return CheckResult(ok=False, error=str(error) or type(error).__name__)
    return CheckResult(ok=True, detail=result if isinstance(result, str) else None)
