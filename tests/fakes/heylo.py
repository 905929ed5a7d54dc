"""A fake Heylo: our signed webhook's sender (docs/services/heylo.md) and Heylo's admin API.

The admin API is ``POST /apiv1-fetch``, ``/apiv1-remove`` and ``/apiv1-update`` with a bearer
key, at most ``rate`` requests per second per key: more answer 429 with ``Retry-After``
(every answer carries ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``). ``members`` is
the community; ``calls`` records each request with the status answered.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, Response, request

from tests.fakes.server import FakeServer

WEBHOOK_SECRET = "test-heylo-webhook-secret-0123456789abcdef"
API_KEY = "test-heylo-api-key"
COMMUNITY_ID = "community-1"
_ids = itertools.count(1)


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> dict[str, str]:
    """The headers of a delivery of ``body`` sent at ``at`` (default now)."""
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Heylo-Timestamp": stamp,
        "X-Heylo-Signature": f"v1={digest}",
    }


def message_event(sender: str, text: str, *, id: str | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{next(_ids)}",
        "type": "message.created",
        "communityId": COMMUNITY_ID,
        "message": {
            "id": id or f"msg_{next(_ids)}",
            "senderId": sender,
            "text": text,
            "sentAt": "2026-11-30T10:00:00+00:00",
        },
    }


def body_of(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


@dataclass
class Call:
    path: str
    body: Any
    status: int


@dataclass
class FakeHeylo:
    api_key: str = API_KEY
    rate: int = 5
    retry_after: int = 1
    members: set[str] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._window: list[float] = []
        self._server = FakeServer(_build_app(self))

    def start(self) -> FakeHeylo:
        self._server.start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        self._server.stop()

    def allow(self) -> int:
        """Count a request in the one-second window; how many remain (-1: over the limit)."""
        now = time.monotonic()
        with self.lock:
            self._window = [t for t in self._window if now - t < 1.0]
            if len(self._window) >= self.rate:
                return -1
            self._window.append(now)
            return self.rate - len(self._window)


def _build_app(fake: FakeHeylo) -> Quart:
    app = Quart("fake-heylo")

    def answer(path: str, body: Any, status: int, payload: Any, remaining: int) -> Response:
        fake.calls.append(Call(path, body, status))
        headers = {
            "X-RateLimit-Limit": str(fake.rate),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
        }
        if status == 429:
            headers["Retry-After"] = str(fake.retry_after)
        return Response(
            json.dumps(payload), status=status, headers=headers, content_type="application/json"
        )

    @app.post("/<any('apiv1-fetch', 'apiv1-remove', 'apiv1-update'):operation>")
    async def admin(operation: str) -> Response:
        body = await request.get_json(silent=True)
        if request.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return answer(operation, body, 401, {"error": "unauthorized"}, 0)
        remaining = fake.allow()
        if remaining < 0:
            return answer(operation, body, 429, {"error": "rate limited"}, 0)
        if not isinstance(body, dict) or body.get("communityId") != COMMUNITY_ID:
            return answer(operation, body, 400, {"error": "bad request"}, remaining)
        if operation == "apiv1-remove" and body.get("type") == "member":
            member = str(body.get("userId"))
            with fake.lock:
                if member not in fake.members:
                    return answer(operation, body, 404, {"error": "not a member"}, remaining)
                fake.members.discard(member)
            return answer(operation, body, 200, {"removed": member}, remaining)
        if operation == "apiv1-fetch" and body.get("type") == "communityEvents":
            return answer(operation, body, 200, {"events": []}, remaining)
        return answer(operation, body, 400, {"error": "unknown type"}, remaining)

    return app
