"""``/whatsapp_webhooks``, ``/heylo_webhooks``, ``/channels/*``, ``/channel_associations``,
``/whatsapp_associations``.

The blueprint is built per app from its channel registry (:func:`build_blueprint`): the
``{channel}`` path parameter matches exactly the registered channels. Webhook routes are
public and take the raw body (core reads it once, within the platform's size limit), so
each channel checks its signature over exactly the bytes that were sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from quart import Blueprint, Response, request
from werkzeug.routing import BaseConverter

from core import User, endpoint
from plugins.channels import service
from plugins.channels.hookspecs import Channel
from plugins.channels.schemas import (
    ChannelList,
    ConfirmIn,
    HandshakeQuery,
    InboundCodeIn,
    InboundCodeOut,
    LinkList,
    LinkOut,
    PhoneCodeOut,
    PhoneIn,
    ReferenceAnswerIn,
    ReferenceOut,
    WebhookAccepted,
)

CONVERTER = "channel"
WEBHOOK_ERRORS = (400, 401, 413, 503)


def channel_converter(registry: Mapping[str, Channel]) -> type[BaseConverter]:
    names = list(registry)
    longest_first = sorted(names, key=len, reverse=True)

    class ChannelConverter(BaseConverter):
        regex = "(?:" + "|".join(re.escape(name) for name in longest_first) + ")"
        openapi_schema = {"type": "string", "enum": names}
        openapi_component = "ChatChannel"

        def to_python(self, value: str) -> Channel:
            return registry[value]

        def to_url(self, value: Any) -> str:
            return value.name if isinstance(value, Channel) else str(value)

    return ChannelConverter


def _headers() -> Mapping[str, str]:
    """The request's headers, looked up case-insensitively (servers differ in case)."""
    return cast(Mapping[str, str], request.headers)


def build_blueprint(registry: Mapping[str, Channel]) -> Blueprint:
    bp = Blueprint("channels", __name__)
    converter = channel_converter(registry)
    bp.record_once(lambda state: state.app.url_map.converters.update({CONVERTER: converter}))

    # --- webhooks --------------------------------------------------------------------------

    @bp.get("/whatsapp_webhooks")
    @endpoint(
        query=HandshakeQuery,
        auth="public",
        media_type="text/plain",
        errors=(403, 503),
        tags=["channels"],
        summary="Meta's webhook verification: echoes hub.challenge",
    )
    async def whatsapp_handshake(query: HandshakeQuery) -> Response:
        """Meta calls this once when the callback URL is saved in its dashboard: with
        ``hub.mode=subscribe`` and our verify token it gets ``hub.challenge`` back as plain
        text; anything else is 403."""
        args = {
            "hub.mode": query.mode,
            "hub.verify_token": query.verify_token,
            "hub.challenge": query.challenge,
        }
        challenge = service.handshake(service.channel_named("whatsapp"), args)
        return Response(challenge, status=200, content_type="text/plain; charset=utf-8")

    @bp.post("/whatsapp_webhooks")
    @endpoint(
        raw_body="application/json",
        response=WebhookAccepted,
        auth="public",
        errors=WEBHOOK_ERRORS,
        tags=["channels"],
        summary="WhatsApp Cloud API events (signed with X-Hub-Signature-256)",
    )
    async def whatsapp_webhook(raw_body: bytes) -> dict[str, int]:
        """Messages and statuses from Meta. Verified over the raw body, stored and queued
        (answered at once; handled by the outbox); a message id seen before is skipped."""
        return await service.accept_webhook(service.channel_named("whatsapp"), _headers(), raw_body)

    @bp.post("/heylo_webhooks")
    @endpoint(
        raw_body="application/json",
        response=WebhookAccepted,
        auth="public",
        errors=WEBHOOK_ERRORS,
        tags=["channels"],
        summary="Heylo messages (our signed contract, docs/services/heylo.md)",
    )
    async def heylo_webhook(raw_body: bytes) -> dict[str, int]:
        """Signed with ``X-Heylo-Signature`` over ``X-Heylo-Timestamp`` and the raw body;
        refused outside the replay window."""
        return await service.accept_webhook(service.channel_named("heylo"), _headers(), raw_body)

    @bp.post(f"/channel_webhooks/<{CONVERTER}:channel>")
    @endpoint(
        raw_body="application/json",
        response=WebhookAccepted,
        auth="public",
        errors=WEBHOOK_ERRORS,
        tags=["channels"],
        summary="Any registered channel's webhook",
    )
    async def channel_webhook(channel: Channel, raw_body: bytes) -> dict[str, int]:
        """The webhook of a channel a plugin added; built-in channels answer here too."""
        return await service.accept_webhook(channel, _headers(), raw_body)

    @bp.get("/channels")
    @endpoint(response=ChannelList, auth="public", tags=["channels"], summary="The chat channels")
    async def list_channels() -> dict[str, Any]:
        """Every channel this deployment knows, what it can do, and whether it is set up."""
        return {
            "channels": [
                {
                    "name": c.name,
                    "display_name": c.display_name,
                    "capabilities": sorted(c.capabilities),
                    "configured": c.configured(),
                }
                for c in registry.values()
            ]
        }

    # --- linking ---------------------------------------------------------------------------

    @bp.post("/channel_associations")
    @endpoint(
        body=InboundCodeIn,
        response=InboundCodeOut,
        status=201,
        errors=(400, 404),
        rate_limits=("10/hour",),
        tags=["channels"],
        summary="A one-time code to send from the chat app",
    )
    async def create_inbound_code(body: InboundCodeIn, user: User) -> dict[str, Any]:
        """The caller sends the code to us from the chat app; the identity that sends it
        is linked to them. A new code replaces the caller's earlier one for the channel."""
        return await service.start_inbound_code(user, body.channel)

    @bp.get("/channel_associations")
    @endpoint(response=LinkList, tags=["channels"], summary="The caller's linked chat identities")
    async def list_links(user: User) -> dict[str, Any]:
        return {"links": [service.link_out(i) for i in await service.links(user)]}

    @bp.delete("/channel_associations/<int:link_id>")
    @endpoint(status=204, errors=(404,), tags=["channels"], summary="Unlink a chat identity")
    async def remove_link(link_id: int, user: User) -> None:
        """Unlinks the identity and erases what it sent and was sent."""
        await service.remove_link(user, link_id)

    @bp.post("/whatsapp_associations")
    @endpoint(
        body=PhoneIn,
        response=PhoneCodeOut,
        status=202,
        errors=(400, 404, 409, 503),
        rate_limits=("10/hour",),
        tags=["channels"],
        summary="Send a link code to a WhatsApp number",
    )
    async def create_phone_code(body: PhoneIn, user: User) -> dict[str, Any]:
        """The number (E.164, validated) gets a code on WhatsApp; the caller confirms it
        with ``POST /whatsapp_associations/{id}/confirm``."""
        return await service.start_phone_code(user, body.phone_number)

    @bp.post("/whatsapp_associations/<int:code_id>/confirm")
    @endpoint(
        body=ConfirmIn,
        response=LinkOut,
        status=201,
        errors=(403, 404, 409, 410),
        rate_limits=("20/hour",),
        tags=["channels"],
        summary="Confirm the code WhatsApp delivered",
    )
    async def confirm_phone_code(code_id: int, body: ConfirmIn, user: User) -> dict[str, Any]:
        """A wrong code is ``403 wrong_code`` and counts an attempt; after the last one the
        code is dead (``409 too_many_attempts``), after its expiry too (``410 code_expired``)."""
        return service.link_out(await service.confirm_phone_code(user, code_id, body.code))

    # --- message references ----------------------------------------------------------------

    @bp.get("/channels/message-references/<reference_id>")
    @endpoint(
        response=ReferenceOut, errors=(404,), tags=["channels"], summary="A message reference"
    )
    async def get_reference(reference_id: str, user: User) -> dict[str, Any]:
        """What a chat message asked the caller; only its addressee sees it."""
        return service.reference_out(await service.reference_of(user, reference_id))

    @bp.post("/channels/message-references/<reference_id>/confirm")
    @endpoint(
        body=ReferenceAnswerIn,
        response=ReferenceOut,
        errors=(404, 409, 410, 502),
        tags=["channels"],
        summary="Answer a message reference",
    )
    async def answer_reference(
        reference_id: str, body: ReferenceAnswerIn, user: User
    ) -> dict[str, Any]:
        """Once, before it expires; the family that sent it learns the answer."""
        reference = await service.answer_reference(user, reference_id, body.answer)
        return service.reference_out(reference)

    return bp
