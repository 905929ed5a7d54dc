"""A fake Terra API (shared/reference/external-services.md section 2) on a real socket.

``POST /auth/generateWidgetSession`` and ``POST /auth/generateAuthToken`` with the
``dev-id`` / ``x-api-key`` headers. Errors come in Terra's two shapes: missing
headers get the current ``application/problem+json`` body, wrong credentials and
bad input the older ``{"status": "error", "message"}`` body. ``fail_next`` makes
the next call answer with a given status and body, ``delay`` slows every answer;
``calls`` records every call.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, Response, request

from tests.fakes.server import FakeServer

_WIDGET_FIELDS = {
    "reference_id",
    "providers",
    "language",
    "auth_success_redirect_url",
    "auth_failure_redirect_url",
}


@dataclass
class TerraCall:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeTerra:
    dev_id: str = "dev-imperfect"
    api_key: str = "terra-secret-key"
    calls: list[TerraCall] = field(default_factory=list)
    fail_next: tuple[int, str, Any] | None = None  # (status, content type, body)
    delay: float = 0.0
    url: str = ""

    def __post_init__(self) -> None:
        self.app = _build_app(self)
        self._server = FakeServer(self.app)

    def start(self) -> FakeTerra:
        self._server.start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        self._server.stop()


def problem(status: int, title: str, detail: str, instance: str) -> tuple[int, str, dict[str, Any]]:
    """Terra's current error shape."""
    body = {"type": "about:blank", "title": title, "instance": instance, "detail": detail}
    return status, "application/problem+json", body


def legacy_error(status: int, message: str) -> tuple[int, str, dict[str, Any]]:
    """Terra's older error shape, still used by the widget endpoints."""
    return status, "application/json", {"status": "error", "message": message}


def _answer(status: int, content_type: str, body: Any) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, content_type=content_type)


def _build_app(terra: FakeTerra) -> Quart:
    app = Quart("fake_terra")

    @app.before_request
    async def _record_and_authenticate() -> Response | None:
        body = await request.get_json(silent=True)
        headers = {key.lower(): value for key, value in request.headers.items()}
        terra.calls.append(TerraCall(request.path, headers, body))
        if terra.delay:
            await asyncio.sleep(terra.delay)
        if terra.fail_next is not None:
            failure, terra.fail_next = terra.fail_next, None
            return _answer(*failure)
        dev_id, api_key = request.headers.get("dev-id"), request.headers.get("x-api-key")
        if not dev_id or not api_key:
            return _answer(
                *problem(
                    401, "Unauthorized", "dev-id or x-api-key headers are missing", request.path
                )
            )
        if (dev_id, api_key) != (terra.dev_id, terra.api_key):
            return _answer(*legacy_error(403, "Invalid dev-id or x-api-key"))
        return None

    @app.post("/auth/generateWidgetSession")
    async def widget_session() -> Response:
        if request.mimetype != "application/json":
            return _answer(*legacy_error(400, "Content-Type must be application/json"))
        body = await request.get_json(silent=True)
        if not isinstance(body, dict) or set(body) - _WIDGET_FIELDS:
            return _answer(*legacy_error(400, "Invalid request body"))
        if "providers" in body and not isinstance(body["providers"], str):
            return _answer(*legacy_error(400, "providers must be a comma-separated string"))
        session_id = str(uuid.uuid4())
        return _answer(
            200,
            "application/json",
            {
                "status": "success",
                "session_id": session_id,
                "url": f"https://widget.tryterra.co/session/{session_id}",
                "expires_in": 900,
            },
        )

    @app.post("/auth/generateAuthToken")
    async def auth_token() -> Response:
        return _answer(
            200,
            "application/json",
            {"status": "success", "token": secrets.token_hex(32), "expires_in": 180},
        )

    return app
