"""A fake hare: the contract of docs/services/hare.md, in memory, on a real socket.

It checks the service key, the size limits and the body, stores each source event once per
idempotency key (a repeat with the same content answers ``200`` with the original result,
other content ``409``), and erases a user's events.

Tests control it: ``fail_with`` (answer every ``/v1`` call with this status, ``503`` for
"down"; ``/health`` too when ``health_fails``), ``fail_after`` (store this many events,
then answer ``503``), ``refuse`` (``{idempotency_key: status}``: answer that key with a
4xx), ``malformed`` (answer with a body that is not JSON, after storing), ``delay``
(seconds before each ``/v1`` answer: a slow or hanging hare), ``retry_after`` (for a 429).
It records every call in arrival order (``calls``); ``stored`` holds the events by key,
``accepted(key)`` the statuses it answered a key with.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from quart import Quart, Response, request

from tests.fakes.server import FakeServer

API_KEY = "test-hare-service-key"
MAX_TEXT_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
_FIELDS = ("idempotency_key", "user_id", "surface", "text", "written_at", "reference")
_SURFACE = re.compile(r"^[a-z][a-z0-9_]{0,39}(:[a-z0-9][a-z0-9_.\-]{0,39})?$")


@dataclass
class Call:
    method: str
    path: str
    key: str | None  # the idempotency key of a record, when the body had one
    body: Any
    status: int = 0


@dataclass
class FakeHare:
    api_key: str = API_KEY
    fail_with: int | None = None
    health_fails: bool = False
    fail_after: int | None = None
    refuse: dict[str, int] = field(default_factory=dict)
    malformed: bool = False
    delay: float = 0.0
    retry_after: int = 1
    calls: list[Call] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    erased: list[str] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.app = _build_app(self)
        self._server = FakeServer(self.app)

    def start(self) -> FakeHare:
        self._server.start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        self._server.stop()

    # --- what tests look at --------------------------------------------------------------

    def records(self) -> list[Call]:
        """Every ``POST /v1/source-events``, in arrival order."""
        return [c for c in self.calls if c.method == "POST" and c.path == "/v1/source-events"]

    def accepted(self, key: str) -> list[int]:
        """The statuses hare answered the records of ``key`` with, in order."""
        return [c.status for c in self.records() if c.key == key]

    def stored_keys_of(self, user_id: int | str) -> list[str]:
        """The keys hare stored for a user, in the order it stored them."""
        return [k for k, e in self.stored.items() if e["body"]["user_id"] == str(user_id)]


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return Response(
        json.dumps({"error": code, "message": message}),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _invalid(body: Any) -> str | None:
    """What is wrong with a record body, or ``None``."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    missing = [name for name in _FIELDS if name not in body]
    if missing:
        return f"required: {', '.join(missing)}"
    for name in ("idempotency_key", "user_id", "surface", "text", "written_at"):
        if not isinstance(body[name], str) or not body[name]:
            return f"{name} must be a non-empty string"
    if not body["user_id"].isdigit():
        return "user_id must be a decimal string"
    if not _SURFACE.match(body["surface"]):
        return "surface is not a surface name"
    if not body["text"].strip():
        return "text must not be empty"
    try:
        written = datetime.fromisoformat(body["written_at"].replace("Z", "+00:00"))
    except ValueError:
        return "written_at must be RFC 3339"
    if written.utcoffset() is None:
        return "written_at needs an offset"
    reference = body["reference"]
    if not isinstance(reference, dict) or not all(
        isinstance(reference.get(k), str) and reference.get(k) for k in ("type", "id")
    ):
        return "reference must be {type, id}, both strings"
    if body.get("language") is not None and not isinstance(body["language"], str):
        return "language must be a string or null"
    return None


def _build_app(hare: FakeHare) -> Quart:
    app = Quart("fake_hare")

    def answer(call: Call, response: Response) -> Response:
        call.status = response.status_code
        return response

    @app.get("/health")
    async def health() -> Response:
        if hare.health_fails:
            return _error(503, "unavailable", "told to fail")
        return Response(json.dumps({"status": "ok"}), content_type="application/json")

    @app.post("/v1/source-events")
    async def record() -> Response:
        raw = await request.get_data()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        key = body.get("idempotency_key") if isinstance(body, dict) else None
        call = Call("POST", request.path, key if isinstance(key, str) else None, body)
        hare.calls.append(call)
        if hare.delay:
            await asyncio.sleep(hare.delay)
        if request.headers.get("Authorization") != f"Bearer {hare.api_key}":
            return answer(call, _error(401, "unauthorized", "a valid service key is required"))
        if hare.fail_with:
            return answer(call, _told_to_fail(hare))
        if len(raw) > MAX_BODY_BYTES:
            return answer(call, _error(413, "too_large", "the body is over 64 KiB"))
        if body is None:
            return answer(call, _error(400, "invalid_json", "the body is not JSON"))
        problem = _invalid(body)
        if problem:
            return answer(call, _error(400, "invalid_request", problem))
        if len(body["text"].encode()) > MAX_TEXT_BYTES:
            return answer(call, _error(413, "too_large", "text is over 16 KiB"))
        if key in hare.refuse:
            status = hare.refuse[key]
            return answer(call, _error(status, "refused", f"told to refuse {key}"))
        if status := _already(hare, key, body):
            if status == 409:
                return answer(
                    call, _error(409, "idempotency_conflict", "this key has other content")
                )
            return answer(call, _recorded(hare, key, 200))
        if hare.fail_after is not None and len(hare.stored) >= hare.fail_after:
            return answer(call, _error(503, "unavailable", "told to fail after N"))
        with hare.lock:
            hare.stored[key] = {
                "id": f"se_{len(hare.stored) + 1}",
                "recorded_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "body": body,
            }
        return answer(call, _recorded(hare, key, 201))

    @app.delete("/v1/users/<user_id>/source-events")
    async def erase(user_id: str) -> Response:
        call = Call("DELETE", request.path, None, None)
        hare.calls.append(call)
        if hare.delay:
            await asyncio.sleep(hare.delay)
        if request.headers.get("Authorization") != f"Bearer {hare.api_key}":
            return answer(call, _error(401, "unauthorized", "a valid service key is required"))
        if hare.fail_with:
            return answer(call, _told_to_fail(hare))
        if not user_id.isdigit():
            return answer(call, _error(400, "invalid_request", "user_id must be decimal"))
        with hare.lock:
            keys = [k for k, e in hare.stored.items() if e["body"]["user_id"] == user_id]
            for key in keys:
                del hare.stored[key]
        hare.erased.append(user_id)
        body = json.dumps({"user_id": user_id, "deleted": len(keys)})
        return answer(call, Response(body, content_type="application/json"))

    return app


def _told_to_fail(hare: FakeHare) -> Response:
    status = hare.fail_with or 503
    if status == 429:
        return _error(429, "rate_limited", "slow down", **{"Retry-After": str(hare.retry_after)})
    return _error(status, "failure", "told to fail")


def _already(hare: FakeHare, key: str, body: dict[str, Any]) -> int | None:
    known = hare.stored.get(key)
    if known is None:
        return None
    return 200 if known["body"] == body else 409


def _recorded(hare: FakeHare, key: str, status: int) -> Response:
    known = hare.stored[key]
    if hare.malformed:
        return Response(b'{"id": "se_', status=status, content_type="application/json")
    body = {
        "id": known["id"],
        "idempotency_key": key,
        "user_id": known["body"]["user_id"],
        "recorded_at": known["recorded_at"],
    }
    return Response(json.dumps(body), status=status, content_type="application/json")
