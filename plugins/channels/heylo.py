"""Heylo: our own signed webhook in (docs/services/heylo.md), Heylo's admin API out.

Heylo publishes no inbound events, so ``/heylo_webhooks`` follows the contract we define:
``X-Heylo-Timestamp`` (Unix seconds) and ``X-Heylo-Signature: v1=<hex HMAC-SHA256(secret,
"<timestamp>." + raw body)>``, refused outside the replay window. Heylo cannot send chat
messages, so the channel only receives; the admin API (5 requests/s per key, 429 with
``Retry-After``) removes a member whose account is deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core import ServiceClient
from plugins.channels.hookspecs import (
    Channel,
    ChannelUnauthorized,
    Inbound,
    InboundMessage,
    RetryLater,
    SendFailure,
    WebhookRefused,
)
from plugins.channels.schemas import HeyloSettings

SIGNATURE_HEADER = "X-Heylo-Signature"
TIMESTAMP_HEADER = "X-Heylo-Timestamp"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Heylo-Signature`` value of ``body`` sent at ``timestamp``."""
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Heylo(Channel):
    name = "heylo"
    display_name = "Heylo"
    capabilities = frozenset({"receive", "reply"})

    def __init__(self, settings: HeyloSettings) -> None:
        self.settings = settings
        self.admin: ServiceClient | None = None

    def configured(self) -> bool:
        return bool(self.settings.webhook_secret.get_secret_value())

    def admin_configured(self) -> bool:
        return bool(self.settings.api_key.get_secret_value() and self.settings.community_id)

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        stamp, given = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
        if not stamp or not given:
            raise WebhookRefused(
                401, "missing_signature", f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required."
            )
        if not stamp.isdigit() or len(stamp) > 12:
            raise WebhookRefused(401, "bad_signature", f"{TIMESTAMP_HEADER} is not Unix seconds.")
        secret = self.settings.webhook_secret.get_secret_value().encode()
        if not hmac.compare_digest(given.encode(), signature(secret, stamp, body).encode()):
            raise WebhookRefused(401, "bad_signature", f"{SIGNATURE_HEADER} does not match.")
        if abs(now.timestamp() - int(stamp)) > self.settings.replay_window_seconds:
            raise WebhookRefused(
                401, "stale_webhook", "The delivery's timestamp is outside the replay window."
            )

    def parse(self, body: bytes) -> Inbound:
        try:
            events = json.loads(body)["events"]
            messages = tuple(
                _message(event) for event in events if event["type"] == "message.created"
            )
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"not a Heylo webhook body: {error!r}") from error
        return Inbound(messages=messages)

    def ready(self) -> str:
        if not self.configured():
            return "off: no webhook_secret"
        return "configured" + ("" if self.admin_configured() else "; admin API off: no api_key")

    async def open(self) -> None:
        key = self.settings.api_key.get_secret_value()
        self.admin = ServiceClient(
            "heylo",
            str(self.settings.api_url).rstrip("/"),
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            retries=0,
            headers={"Authorization": f"Bearer {key}"} if key else None,
        )

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.aclose()
            self.admin = None

    async def remove_member(self, member_id: str) -> None:
        """Remove a member from our community (``POST /apiv1-remove``)."""
        if self.admin is None or not self.admin_configured():
            raise RetryLater("the Heylo admin API is not configured")
        body = {"communityId": self.settings.community_id, "type": "member", "userId": member_id}
        response = await self.admin.request("POST", "/apiv1-remove", json=body)
        if response.status_code < 300 or response.status_code == 404:
            return  # removed, or not a member (any more)
        if response.status_code == 429:
            after = response.headers.get("Retry-After", "")
            raise RetryLater(
                "Heylo rate limit", code=429, retry_after=float(after) if after.isdigit() else None
            )
        if response.status_code in (401, 403):
            raise ChannelUnauthorized(f"Heylo refused our key (HTTP {response.status_code})")
        raise SendFailure(f"Heylo answered HTTP {response.status_code}: {response.text[:200]}")


def _message(event: Mapping[str, Any]) -> InboundMessage:
    message = event["message"]
    text = str(message["text"])
    return InboundMessage(
        external_id=str(message["id"]),
        sender=str(message["senderId"]),
        kind="text" if text.strip() else "other",
        text=text,
        sent_at=_aware(datetime.fromisoformat(str(message["sentAt"]))),
        reply_to=str(message["replyToId"]) if message.get("replyToId") else None,
    )


def _aware(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError("sentAt needs a UTC offset")
    return moment
