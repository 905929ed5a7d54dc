"""A fake WhatsApp Cloud API: Meta's webhook sender and the Graph send endpoint, on a real socket.

The sender side builds webhook bodies the way Meta does (the ``whatsapp_business_account``
envelope, non-ASCII escaped as ``\\uXXXX``) and signs them with ``X-Hub-Signature-256:
sha256=<hex HMAC-SHA256(app secret, body)>``. The Graph side serves
``POST /{version}/{phone_number_id}/messages``: it checks the bearer token, answers
``{"messages": [{"id": "wamid..."}]}`` and records each accepted body in ``sent``; tests
script failures with ``errors`` (a queue of Graph error codes, one per coming send, each
answered with Graph's error body and the HTTP status Meta uses for it).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, Response, request

from tests.fakes.server import FakeServer

APP_SECRET = "test-meta-app-secret-0123456789abcdef"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-system-user-token"
PHONE_NUMBER_ID = "106540352242922"
BUSINESS_NUMBER = "15550001111"
GRAPH_VERSION = "v21.0"
ERROR_STATUS = {190: 401, 100: 400, 131047: 400, 131026: 400, 130429: 429, 131056: 429}
_ids = itertools.count(1)


def wamid() -> str:
    """A fresh message id shaped like Meta's."""
    return f"wamid.HBgLMTU1NTAwMDExMTEVAgARGBI{next(_ids):020d}"


def sign(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """The headers Meta sends with ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def envelope(
    messages: list[dict[str, Any]] | None = None, statuses: list[dict[str, Any]] | None = None
) -> bytes:
    """A webhook body as Meta serialises it (ASCII only: others escaped)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
    }
    if messages:
        value["contacts"] = [{"profile": {"name": "Ann"}, "wa_id": m["from"]} for m in messages]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


def text_message(
    sender: str, text: str, *, id: str | None = None, reply_to: str | None = None, at: int = 0
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "from": sender,
        "id": id or wamid(),
        "timestamp": str(at or 1_760_000_000),
        "type": "text",
        "text": {"body": text},
    }
    if reply_to:
        message["context"] = {"from": BUSINESS_NUMBER, "id": reply_to}
    return message


def reaction(sender: str, to: str, emoji: str) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid(),
        "timestamp": "1760000100",
        "type": "reaction",
        "reaction": {"message_id": to, "emoji": emoji},
    }


def status(message_id: str, state: str, recipient: str, at: int) -> dict[str, Any]:
    return {"id": message_id, "status": state, "timestamp": str(at), "recipient_id": recipient}


@dataclass
class FakeWhatsApp:
    access_token: str = ACCESS_TOKEN
    errors: list[int] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._server = FakeServer(_build_app(self))

    def start(self) -> FakeWhatsApp:
        self._server.start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        self._server.stop()

    def texts_to(self, number: str) -> list[str]:
        """What was delivered to ``number``: free text bodies and template parameters."""
        out = []
        for body in self.sent:
            if body["to"] != number:
                continue
            if body["type"] == "text":
                out.append(body["text"]["body"])
            else:
                out.append(body["template"]["components"][0]["parameters"][0]["text"])
        return out


def _graph_error(code: int) -> Response:
    body = {
        "error": {
            "message": f"(#{code}) scripted by the test",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": "scripted"},
            "fbtrace_id": "AbCdEf",
        }
    }
    return Response(
        json.dumps(body), status=ERROR_STATUS.get(code, 400), content_type="application/json"
    )


def _build_app(fake: FakeWhatsApp) -> Quart:
    app = Quart("fake-whatsapp")

    @app.post("/<version>/<phone_number_id>/messages")
    async def send(version: str, phone_number_id: str) -> Response:
        if request.headers.get("Authorization") != f"Bearer {fake.access_token}":
            return _graph_error(190)
        body = await request.get_json()
        if version != GRAPH_VERSION or phone_number_id != PHONE_NUMBER_ID or not body:
            return _graph_error(100)
        if body.get("messaging_product") != "whatsapp" or body.get("type") not in (
            "text",
            "template",
        ):
            return _graph_error(100)
        with fake.lock:
            code = fake.errors.pop(0) if fake.errors else None
            if code is not None:
                fake.refused.append((code, body))
                return _graph_error(code)
            fake.sent.append(body)
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": wamid()}],
        }
        return Response(json.dumps(answer), content_type="application/json")

    return app
