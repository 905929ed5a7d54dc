"""Postbox, a chat channel from an installed package, through the ``channels`` family's hook.

Its webhook (``POST /channel_webhooks/postbox``) is signed with ``X-Postbox-Signature:
<hex HMAC-SHA256(secret, raw body)>`` and carries ``{"messages": [{"id", "from", "text",
"sent_at"}]}``; it sends with ``POST {postbox_url}/deliveries`` ``{"to", "text"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime

from core import ServiceClient
from imperfect_example.schemas import ExampleSettings
from plugins.channels.hookspecs import (
    Channel,
    Inbound,
    InboundMessage,
    OutboundText,
    RetryLater,
    SendFailure,
    WebhookRefused,
)


class Postbox(Channel):
    name = "postbox"
    display_name = "Postbox"
    capabilities = frozenset({"receive", "send"})

    def __init__(self, settings: ExampleSettings) -> None:
        self.secret = settings.postbox_secret.get_secret_value().encode()
        self.url = settings.postbox_url
        self.http: ServiceClient | None = None

    def configured(self) -> bool:
        return bool(self.secret)

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        given = headers.get("X-Postbox-Signature", "")
        expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRefused(401, "bad_signature", "X-Postbox-Signature does not match.")

    def parse(self, body: bytes) -> Inbound:
        try:
            messages = tuple(
                InboundMessage(
                    external_id=str(m["id"]),
                    sender=str(m["from"]),
                    kind="text",
                    text=str(m["text"]),
                    sent_at=datetime.fromisoformat(m["sent_at"]),
                )
                for m in json.loads(body)["messages"]
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a Postbox body: {error!r}") from error
        return Inbound(messages=messages)

    async def open(self) -> None:
        if self.url:
            self.http = ServiceClient(
                "postbox", self.url, connect_timeout=2, read_timeout=5, retries=0
            )

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def send(self, message: OutboundText, *, as_template: bool = False) -> str:
        if self.http is None:
            raise RetryLater("no postbox_url")
        response = await self.http.request(
            "POST", "/deliveries", json={"to": message.to, "text": message.text}
        )
        if response.status_code == 429:
            raise RetryLater("postbox is busy", code=429)
        if response.status_code >= 400:
            raise SendFailure(f"postbox refused: HTTP {response.status_code}")
        return str(response.json()["id"])
