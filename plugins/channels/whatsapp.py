"""WhatsApp through Meta's Cloud API (docs/services/whatsapp.md).

Webhooks: the ``GET`` handshake echoes ``hub.challenge`` when ``hub.verify_token`` is ours;
a ``POST`` is accepted only with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app
secret, raw body)>``, compared in constant time over the exact bytes Meta sent. Sending
posts to ``/{version}/{phone_number_id}/messages`` and turns Graph error codes into the
failures the sending outbox handler acts on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core import ServiceClient
from plugins.channels.hookspecs import (
    Channel,
    ChannelUnauthorized,
    Inbound,
    InboundKind,
    InboundMessage,
    OutboundText,
    RetryLater,
    SendFailure,
    StatusUpdate,
    TemplateRequired,
    Undeliverable,
    WebhookRefused,
)
from plugins.channels.schemas import WhatsAppSettings

log = logging.getLogger("imperfect.channels.whatsapp")

SIGNATURE_HEADER = "X-Hub-Signature-256"
THROTTLED = frozenset({4, 80007, 130429, 131056})  # app, account, throughput, pair rate
RETRYABLE = frozenset({1, 2, 131000, 131016})  # unknown, service, something went wrong, down
STATUSES = frozenset({"sent", "delivered", "read", "failed"})


class WhatsApp(Channel):
    name = "whatsapp"
    display_name = "WhatsApp"
    capabilities = frozenset({"receive", "send", "reply", "reactions", "statuses", "templates"})

    def __init__(self, settings: WhatsAppSettings) -> None:
        self.settings = settings
        self.http: ServiceClient | None = None
        self.refused_token: str | None = None  # set by a 190, cleared by the next success

    def configured(self) -> bool:
        s = self.settings
        return bool(s.app_secret.get_secret_value() and s.verify_token.get_secret_value())

    def can_send(self) -> bool:
        return bool(self.settings.access_token.get_secret_value() and self.settings.phone_number_id)

    def handshake(self, args: Mapping[str, str]) -> str:
        expected = self.settings.verify_token.get_secret_value().encode()
        given = args.get("hub.verify_token", "").encode()
        if (
            args.get("hub.mode") != "subscribe"
            or not expected
            or not hmac.compare_digest(given, expected)
        ):
            raise WebhookRefused(403, "verification_failed", "The verify token does not match.")
        return args.get("hub.challenge", "")

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        header = headers.get(SIGNATURE_HEADER, "")
        if not header:
            raise WebhookRefused(401, "missing_signature", f"{SIGNATURE_HEADER} is missing.")
        scheme, _, given = header.partition("=")
        secret = self.settings.app_secret.get_secret_value().encode()
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if scheme != "sha256" or not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise WebhookRefused(401, "bad_signature", f"{SIGNATURE_HEADER} does not match.")

    def parse(self, body: bytes) -> Inbound:
        try:
            envelope = json.loads(body)
            messages: list[InboundMessage] = []
            statuses: list[StatusUpdate] = []
            if envelope.get("object") != "whatsapp_business_account":
                raise ValueError("object is not whatsapp_business_account")
            for entry in envelope.get("entry") or []:
                for change in entry.get("changes") or []:
                    if change.get("field") != "messages":
                        continue
                    value = change.get("value") or {}
                    messages.extend(_message(m) for m in value.get("messages") or [])
                    statuses.extend(
                        _status(s) for s in value.get("statuses") or [] if s["status"] in STATUSES
                    )
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"not a WhatsApp webhook body: {error!r}") from error
        return Inbound(tuple(messages), tuple(statuses))

    async def open(self) -> None:
        token = self.settings.access_token.get_secret_value()
        self.http = ServiceClient(
            "whatsapp",
            str(self.settings.graph_url).rstrip("/"),
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            retries=0,  # the outbox retries, with its backoff
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    def ready(self) -> str:
        if self.refused_token is not None:
            raise RuntimeError(f"the Cloud API refused our access token ({self.refused_token})")
        if not self.configured():
            return "off: no app_secret or verify_token"
        return "configured" if self.can_send() else "receiving only: no access_token"

    async def send(self, message: OutboundText, *, as_template: bool = False) -> str:
        if self.http is None or not self.can_send():
            raise RetryLater("no access_token or phone_number_id configured")
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to,
        }
        if as_template:
            body["type"] = "template"
            body["template"] = {
                "name": self.settings.template_name,
                "language": {"code": self.settings.template_language},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": message.text}]}
                ],
            }
        else:
            body["type"] = "text"
            body["text"] = {"body": message.text, "preview_url": False}
            if message.reply_to:
                body["context"] = {"message_id": message.reply_to}
        path = f"/{self.settings.graph_version}/{self.settings.phone_number_id}/messages"
        response = await self.http.request("POST", path, json=body)
        if response.status_code < 400:
            self.refused_token = None
            try:
                return str(response.json()["messages"][0]["id"])
            except (ValueError, KeyError, IndexError, TypeError) as error:
                raise RetryLater(
                    f"the Cloud API answered without a message id: {error!r}"
                ) from error
        raise _failure(response.status_code, response.text, response.headers.get("Retry-After"))

    def token_refused(self, failure: ChannelUnauthorized) -> None:
        self.refused_token = f"Graph error {failure.code}"


def _failure(status: int, text: str, retry_after: str | None) -> SendFailure:
    """The Graph error body (``{"error": {"code", "message", ...}}``) as a failure."""
    try:
        error = json.loads(text)["error"]
        code, detail = int(error["code"]), str(error.get("message", ""))[:300]
    except (ValueError, KeyError, TypeError):
        return RetryLater(f"Cloud API HTTP {status} without a Graph error body", code=status)
    what = f"Graph error {code}: {detail}"
    if code == 190:
        return ChannelUnauthorized(what, code=code)
    if code == 131047:
        return TemplateRequired(what, code=code)
    if code == 131026:
        return Undeliverable(what, code=code)
    if code in THROTTLED or code in RETRYABLE or status == 429:
        delay = float(retry_after) if retry_after and retry_after.isdigit() else None
        return RetryLater(what, code=code, retry_after=delay)
    return SendFailure(what, code=code)


def _when(timestamp: Any) -> datetime:
    return datetime.fromtimestamp(int(timestamp), UTC)


def _message(raw: Mapping[str, Any]) -> InboundMessage:
    kind: InboundKind = "other"
    text, reacted_to = "", None
    if raw["type"] == "text":
        kind, text = "text", str(raw["text"]["body"])
    elif raw["type"] == "reaction":
        kind, text = "reaction", str(raw["reaction"].get("emoji") or "")
        reacted_to = str(raw["reaction"]["message_id"])
    context = raw.get("context") or {}
    return InboundMessage(
        external_id=str(raw["id"]),
        sender=str(raw["from"]),
        kind=kind,
        text=text,
        sent_at=_when(raw["timestamp"]),
        reply_to=str(context["id"]) if context.get("id") else None,
        reacted_to=reacted_to,
    )


def _status(raw: Mapping[str, Any]) -> StatusUpdate:
    errors = raw.get("errors") or []
    return StatusUpdate(
        external_id=str(raw["id"]),
        status=raw["status"],
        at=_when(raw["timestamp"]),
        error_code=str(errors[0].get("code")) if errors else None,
    )
