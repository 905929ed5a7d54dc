"""Webhooks in, messages out, links and references. No HTTP here.

A verified webhook is parsed and, in one transaction, each new message is stored and its
handling queued in the outbox (``channels.inbound``); a message id seen before, by any
instance, is skipped by core's handled-message record (:func:`core.mark_handled`, unique
per channel and id), so repeats and concurrent deliveries are handled once. Status
updates move a sent message's status forward only. Everything we send is a row queued as
``channels.send``, one identity's messages in order; the chat app's id is stored once it
took a message, so a repeated delivery never sends it twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from pydantic import InstanceOf
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core import (
    ApiError,
    OutboxItem,
    PermanentFailure,
    Platform,
    Registry,
    SourceEvent,
    User,
    current_platform,
    enqueue,
    mark_handled,
    utcnow,
)
from plugins.channels.heylo import Heylo
from plugins.channels.hookspecs import (
    NAME,
    Channel,
    ChannelUnauthorized,
    Inbound,
    InboundMessage,
    OutboundText,
    RetryLater,
    SendFailure,
    StatusUpdate,
    TemplateRequired,
    Undeliverable,
    WebhookRefused,
)
from plugins.channels.models import (
    ACTIVE,
    FAILED,
    STATUS_RANK,
    UNDELIVERABLE,
    ChannelIdentity,
    LinkCode,
    MessageReference,
    OutboundMessage,
    ReceivedMessage,
)
from plugins.channels.schemas import ALERTS, CHANNELS, FAMILY, ChannelsSettings

log = logging.getLogger("imperfect.channels")

INBOUND_KIND = "channels.inbound"
SEND_KIND = "channels.send"
HEYLO_REMOVE_KIND = "channels.heylo_remove"
KIND_PREFIX = "channels."
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
CODE_LENGTH = 8
MAX_ID = 2**63 - 1  # ids are 64-bit: a larger one names nothing


def build_registry(platform: Platform) -> Registry[Channel]:
    """Every contributed channel by name; a bad name is the contributing family's failure."""
    registry: Registry[Channel] = platform.collect(
        "channels",
        InstanceOf[Channel],  # type: ignore[type-abstract]
        key=lambda channel: channel.name,
    )
    for name in registry:
        if not NAME.match(name):
            raise ValueError(
                f"channel name {name!r} of family '{registry.owner(name)}' must match "
                f"{NAME.pattern}"
            )
    return registry


def channels() -> Registry[Channel]:
    return FAMILY.stash[CHANNELS]


def channel_named(name: str) -> Channel:
    channel = channels().get(name)
    if channel is None:
        raise ApiError(404, "unknown_channel", f"There is no channel named {name!r}.")
    return channel


def ordering_key(identity_id: int) -> str:
    """One identity's messages, in and out, are handled one at a time, in order."""
    return f"channels:identity:{identity_id}"


# --- codes ---------------------------------------------------------------------------------


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def shown(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalised(text: str) -> str | None:
    """The code a text is, if it is one (any case, with or without its dash and spaces)."""
    candidate = text.strip().upper().replace("-", "").replace(" ", "")
    if len(candidate) == CODE_LENGTH and all(c in ALPHABET for c in candidate):
        return candidate
    return None


def hashed(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def e164(phone_number: str) -> str:
    """The number in E.164 (``+447700900123``), or 400 if it is not a valid phone number."""
    try:
        parsed = phonenumbers.parse(phone_number, None)
    except phonenumbers.NumberParseException as error:
        raise ApiError(
            400, "invalid_phone_number", f"Not a phone number in E.164 form: {error}"
        ) from error
    if not phonenumbers.is_valid_number(parsed):
        raise ApiError(400, "invalid_phone_number", "That phone number does not exist.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# --- webhooks ------------------------------------------------------------------------------


def handshake(channel: Channel, args: Mapping[str, str]) -> str:
    if not channel.configured():
        raise _not_configured(channel)
    try:
        return channel.handshake(args)
    except WebhookRefused as refused:
        raise ApiError(refused.status, refused.code, refused.detail) from refused


async def accept_webhook(
    channel: Channel, headers: Mapping[str, str], body: bytes
) -> dict[str, int]:
    """Verify, parse and queue one delivery; answer what it held."""
    if not channel.configured():
        raise _not_configured(channel)
    try:
        channel.verify(headers, body, utcnow())
    except WebhookRefused as refused:
        log.warning("%s webhook refused: %s", channel.name, refused.code)
        raise ApiError(refused.status, refused.code, refused.detail) from refused
    try:
        inbound = channel.parse(body)
    except ValueError as error:
        raise ApiError(
            400, "invalid_webhook", f"The body is not a {channel.display_name} webhook: {error}"
        ) from error
    return await store(channel.name, inbound)


async def store(channel: str, inbound: Inbound) -> dict[str, int]:
    new = 0
    async with in_transaction():
        for message in inbound.messages:
            if await mark_handled(f"channels.{channel}", _message_key(message.external_id)):
                await _queue_inbound(channel, message)
                new += 1
        for status in inbound.statuses:
            await apply_status(status)
    return {
        "messages": len(inbound.messages),
        "new_messages": new,
        "statuses": len(inbound.statuses),
    }


def _message_key(external_id: str) -> str:
    """Core's record keeps ids up to 128 characters; a longer one is kept as its hash."""
    return external_id if len(external_id) <= 128 else hashed(external_id)


async def identity_of(channel: str, address: str) -> ChannelIdentity:
    identity = await ChannelIdentity.get_or_none(channel=channel, address=address)
    if identity is not None:
        return identity
    try:
        async with in_transaction():  # a savepoint: a concurrent insert leaves ours usable
            return await ChannelIdentity.create(channel=channel, address=address)
    except IntegrityError:
        return await ChannelIdentity.get(channel=channel, address=address)


async def _queue_inbound(channel: str, message: InboundMessage) -> None:
    identity = await identity_of(channel, message.sender)
    row = await ReceivedMessage.create(
        identity_id=identity.id,
        external_id=message.external_id,
        kind=message.kind,
        text=message.text,
        reply_to=message.reply_to,
        reacted_to=message.reacted_to,
        sent_at=message.sent_at,
    )
    await enqueue(INBOUND_KIND, {"message_id": row.id}, ordering_key=ordering_key(identity.id))


async def apply_status(status: StatusUpdate) -> None:
    """Move a sent message's status forward (``read`` may come before or without
    ``delivered``); ``failed`` ends it. Statuses of messages we do not know are ignored."""
    row = await OutboundMessage.get_or_none(external_id=status.external_id)
    if row is None or row.status == FAILED:
        return
    if status.status == FAILED:
        await OutboundMessage.filter(id=row.id).update(
            status=FAILED, status_at=status.at, last_error=f"status failed: {status.error_code}"
        )
    elif STATUS_RANK[status.status] > STATUS_RANK.get(row.status, 0):
        await OutboundMessage.filter(id=row.id).update(status=status.status, status_at=status.at)


def _not_configured(channel: Channel) -> ApiError:
    return ApiError(
        503,
        "channel_not_configured",
        f"The {channel.display_name} webhook is not configured on this deployment "
        f"(docs/families/channels.md).",
    )


# --- handling an inbound message (the outbox) -----------------------------------------------


async def handle_inbound(item: OutboxItem) -> None:
    """``channels.inbound``: to hare if the identity is linked; a link code; else one hint."""
    settings: ChannelsSettings = FAMILY.settings
    async with in_transaction():
        row = (
            await ReceivedMessage.filter(id=item.payload["message_id"]).select_for_update().first()
        )
        if row is None or row.handled_as is not None:
            return  # handled before (a repeated delivery), or erased with the account
        identity = await ChannelIdentity.get(id=row.identity_id)
        seen = row.sent_at
        if identity.last_inbound_at is None or identity.last_inbound_at < seen:
            await ChannelIdentity.filter(id=identity.id).update(last_inbound_at=seen)
        code = normalised(row.text) if row.kind == "text" else None
        if identity.user_id is not None:
            handled_as = await _to_hare(identity, row)
        elif code is not None and identity.wrong_codes < settings.code_max_attempts:
            handled_as = await _try_code(identity, row, code)
        elif await ChannelIdentity.filter(id=identity.id, hinted_at__isnull=True).update(
            hinted_at=utcnow()
        ):
            await queue_send(identity, settings.link_hint, "hint", reply_to=row.external_id)
            handled_as = "hinted"
        else:
            handled_as = "ignored"  # told once already: no reply per message
        await ReceivedMessage.filter(id=row.id).update(handled_as=handled_as)


async def _to_hare(identity: ChannelIdentity, row: ReceivedMessage) -> str:
    if row.kind != "text" or not row.text.strip():
        return "stored"  # reactions and media: kept, not words for hare
    await identity.fetch_related("user")
    event = SourceEvent(
        idempotency_key=f"channels:message:{row.id}",
        surface=f"channel:{identity.channel}",
        text=row.text,
        written_at=row.sent_at,
        reference_type="channel_message",
        reference_id=str(row.id),
        language=getattr(identity.user, "locale", None) or None,
    )
    try:
        await current_platform().call_each("record_source_event", user=identity.user, event=event)
    except ValueError as error:  # hare's limits (text over 16 KiB): kept here, not logged there
        log.warning("channels: message %s not recorded in hare: %s", row.id, error)
        return "refused"
    return "linked"


async def _try_code(identity: ChannelIdentity, row: ReceivedMessage, code: str) -> str:
    now = utcnow()
    link = await LinkCode.filter(
        code_hash=hashed(code),
        channel=identity.channel,
        identity_id__isnull=True,
        used_at__isnull=True,
        expires_at__gt=now,
    ).first()
    if link is None or not await LinkCode.filter(id=link.id, used_at__isnull=True).update(
        used_at=now
    ):
        await ChannelIdentity.filter(id=identity.id).update(wrong_codes=F("wrong_codes") + 1)
        await queue_send(
            identity,
            "That code is not valid (or has expired). Ask the app for a new one.",
            "code",
            reply_to=row.external_id,
        )
        return "wrong_code"
    await _link(identity, link.user_id, now)
    await queue_send(identity, "Linked! You can write to us here now.", "linked")
    return "code"


async def _link(identity: ChannelIdentity, user_id: int, now: datetime) -> None:
    await ChannelIdentity.filter(id=identity.id).update(
        user_id=user_id, linked_at=now, status=ACTIVE, wrong_codes=0
    )
    identity.user_id = user_id


# --- sending -------------------------------------------------------------------------------


async def queue_send(
    identity: ChannelIdentity,
    text: str,
    purpose: str,
    *,
    reply_to: str | None = None,
    reference_id: str | None = None,
) -> OutboundMessage | None:
    """Queue ``text`` to ``identity`` in the caller's transaction; ``None`` when its channel
    cannot send (Heylo) or is gone from the deployment."""
    channel = channels().get(identity.channel)
    if channel is None or "send" not in channel.capabilities:
        return None
    if "reply" not in channel.capabilities:
        reply_to = None
    row = await OutboundMessage.create(
        identity_id=identity.id,
        purpose=purpose,
        text=text,
        reply_to=reply_to,
        reference_id=reference_id,
    )
    await enqueue(SEND_KIND, {"outbound_id": row.id}, ordering_key=ordering_key(identity.id))
    return row


async def deliver(item: OutboxItem) -> None:
    """``channels.send``: send one message; a template when free text is not allowed."""
    row = await OutboundMessage.get_or_none(id=item.payload["outbound_id"])
    if row is None or row.external_id is not None or row.status == FAILED:
        return  # sent already, failed for good, or erased with the account
    identity = await ChannelIdentity.get(id=row.identity_id)
    channel = channels().get(identity.channel)
    if channel is None or identity.status == UNDELIVERABLE:
        await _fail(row, "the channel is gone" if channel is None else "identity undeliverable")
        return
    message = OutboundText(to=identity.address, text=row.text, reply_to=row.reply_to)
    as_template = row.via_template
    while True:
        try:
            external_id = await channel.send(message, as_template=as_template)
            break
        except TemplateRequired as failure:
            if as_template or "templates" not in channel.capabilities:
                await _fail(row, str(failure))
                raise PermanentFailure(str(failure)) from failure
            as_template = True  # the 24-hour window has closed: the approved template
            await OutboundMessage.filter(id=row.id).update(via_template=True)
            log.info("%s: message %s goes as a template (%s)", channel.name, row.id, failure)
        except Undeliverable as failure:
            await ChannelIdentity.filter(id=identity.id).update(status=UNDELIVERABLE)
            await _fail(row, str(failure))
            log.warning("%s: identity %s is undeliverable: %s", channel.name, identity.id, failure)
            raise PermanentFailure(str(failure)) from failure
        except ChannelUnauthorized as failure:
            FAMILY.stash[ALERTS][channel.name] = f"credentials refused ({failure.code})"
            log.error("ALERT %s: credentials refused, nothing is sent: %s", channel.name, failure)
            raise
        except RetryLater as failure:
            await OutboundMessage.filter(id=row.id).update(last_error=str(failure)[:2000])
            raise
        except SendFailure as failure:
            await _fail(row, str(failure))
            raise PermanentFailure(str(failure)) from failure
    FAMILY.stash[ALERTS].pop(channel.name, None)
    await OutboundMessage.filter(id=row.id, external_id__isnull=True).update(
        external_id=external_id, status="sent", status_at=utcnow(), last_error=None
    )


async def _fail(row: OutboundMessage, why: str) -> None:
    await OutboundMessage.filter(id=row.id).update(status=FAILED, last_error=why[:2000])


# --- linking -------------------------------------------------------------------------------


async def start_inbound_code(user: User, channel_name: str) -> dict[str, Any]:
    channel = channel_named(channel_name)
    if "receive" not in channel.capabilities:
        raise ApiError(400, "channel_cannot_receive", f"{channel.display_name} sends us nothing.")
    settings: ChannelsSettings = FAMILY.settings
    code = new_code()
    expires_at = utcnow() + timedelta(seconds=settings.code_ttl_seconds)
    async with in_transaction():
        await LinkCode.filter(
            user_id=user.id, channel=channel.name, identity_id__isnull=True, used_at__isnull=True
        ).delete()  # one live code per user and channel: a new one replaces the old
        await LinkCode.create(
            user_id=user.id, channel=channel.name, code_hash=hashed(code), expires_at=expires_at
        )
    return {
        "channel": channel.name,
        "code": shown(code),
        "expires_at": expires_at,
        "instructions": f"Send {shown(code)} to us from {channel.display_name} "
        f"within {settings.code_ttl_seconds // 60} minutes.",
    }


async def start_phone_code(user: User, phone_number: str) -> dict[str, Any]:
    number = e164(phone_number)
    channel = channel_named("whatsapp")
    if not channel.configured() or "send" not in channel.capabilities:
        raise _not_configured(channel)
    settings: ChannelsSettings = FAMILY.settings
    code = new_code()
    expires_at = utcnow() + timedelta(seconds=settings.code_ttl_seconds)
    async with in_transaction():
        identity = await identity_of(channel.name, number.removeprefix("+"))
        if identity.user_id == user.id:
            raise ApiError(409, "already_linked", "This number is linked to your account already.")
        link = await LinkCode.create(
            user_id=user.id,
            channel=channel.name,
            identity_id=identity.id,
            code_hash=hashed(code),
            expires_at=expires_at,
        )
        await queue_send(identity, f"Your link code is {shown(code)}.", "code")
    return {"id": link.id, "phone_number": number, "expires_at": expires_at}


async def confirm_phone_code(user: User, code_id: int, code: str) -> ChannelIdentity:
    settings: ChannelsSettings = FAMILY.settings
    link = None
    if 0 < code_id <= MAX_ID:
        link = await LinkCode.get_or_none(id=code_id, user_id=user.id, identity_id__isnull=False)
    if link is None:
        raise ApiError(404, "code_not_found", "You have no such link code.")
    now = utcnow()
    if link.used_at is not None:
        raise ApiError(409, "code_used", "This code was used already.")
    if link.expires_at <= now:
        raise ApiError(410, "code_expired", "This code has expired; ask for a new one.")
    counted = await LinkCode.filter(
        id=link.id, attempts__lt=settings.code_max_attempts, used_at__isnull=True
    ).update(attempts=F("attempts") + 1)
    if not counted:
        raise ApiError(409, "too_many_attempts", "Too many wrong codes; ask for a new one.")
    given = normalised(code) or ""
    if not hmac.compare_digest(hashed(given), link.code_hash):
        left = settings.code_max_attempts - link.attempts - 1
        raise ApiError(403, "wrong_code", f"That is not the code; {max(left, 0)} attempt(s) left.")
    async with in_transaction():
        if not await LinkCode.filter(id=link.id, used_at__isnull=True).update(used_at=now):
            raise ApiError(409, "code_used", "This code was used already.")
        identity = await ChannelIdentity.get(id=link.identity_id)
        await _link(identity, user.id, now)
    return await ChannelIdentity.get(id=identity.id)


async def links(user: User) -> list[ChannelIdentity]:
    return await ChannelIdentity.filter(user_id=user.id).order_by("id")


async def remove_link(user: User, link_id: int) -> None:
    if (
        not 0 < link_id <= MAX_ID
        or not await ChannelIdentity.filter(id=link_id, user_id=user.id).delete()
    ):
        raise ApiError(404, "link_not_found", "You have no such link.")


def link_out(identity: ChannelIdentity) -> dict[str, Any]:
    return {
        "id": identity.id,
        "channel": identity.channel,
        "identity": identity.address,
        "status": identity.status,
        "linked_at": identity.linked_at,
    }


# --- references and messages other families send ---------------------------------------------


async def send_to_user(
    user: User, text: str, sender: str, subject: str | None, ttl_seconds: int | None
) -> dict[str, Any]:
    if not 1 <= len(text) <= 4096 or not text.strip():
        raise ValueError("a channel message is 1-4096 characters of text")
    settings: ChannelsSettings = FAMILY.settings
    reference_id = None
    queued = 0
    async with in_transaction():
        if subject is not None:
            if not 1 <= len(subject) <= 200:
                raise ValueError("a reference subject is 1-200 characters")
            ttl = ttl_seconds or settings.reference_ttl_seconds
            reference = await MessageReference.create(
                id=secrets.token_hex(16),
                user_id=user.id,
                sender=sender,
                subject=subject,
                text=text,
                expires_at=utcnow() + timedelta(seconds=ttl),
            )
            reference_id = reference.id
        for identity in await ChannelIdentity.filter(user_id=user.id, status=ACTIVE):
            if await queue_send(identity, text, "message", reference_id=reference_id):
                queued += 1
    return {"queued": queued, "reference_id": reference_id}


async def reference_of(user: User, reference_id: str) -> MessageReference:
    reference = await MessageReference.get_or_none(id=reference_id, user_id=user.id)
    if reference is None:
        raise ApiError(404, "reference_not_found", "You have no such message reference.")
    return reference


async def answer_reference(user: User, reference_id: str, answer: str) -> MessageReference:
    """Record the answer and tell the family that sent the reference, in one transaction."""
    platform = current_platform()
    async with in_transaction():
        reference = await reference_of(user, reference_id)
        if reference.answer is not None:
            raise ApiError(409, "already_answered", "This reference was answered already.")
        if reference.expires_at <= utcnow():
            raise ApiError(410, "reference_expired", "This reference has expired.")
        if not await MessageReference.filter(id=reference.id, answer__isnull=True).update(
            answer=answer, answered_at=utcnow()
        ):
            raise ApiError(409, "already_answered", "This reference was answered already.")
        sender = platform.plugins.get(reference.sender)
        if sender is None:
            log.warning(
                "channels: reference %s answered; its sender %s is not enabled",
                reference.id,
                reference.sender,
            )
        else:
            try:
                await platform.call_plugin(
                    sender,
                    "channel_reference_answered",
                    user=user,
                    reference_id=reference.id,
                    subject=reference.subject,
                    answer=answer,
                )
            except Exception as error:  # the answer rolls back: the user may try again
                log.exception("channels: %s failed to take reference %s", sender.name, reference.id)
                raise ApiError(
                    502, "sender_failed", "The answer could not be passed on; try again."
                ) from error
    return await MessageReference.get(id=reference.id)


# --- accounts ------------------------------------------------------------------------------


async def forget_user(user: User) -> None:
    """Erase the user's links (with their messages), codes and references; ask Heylo to
    remove each linked Heylo member from our community."""
    async with in_transaction():
        for identity in await ChannelIdentity.filter(user_id=user.id, channel="heylo"):
            channel = channels().get("heylo")
            if isinstance(channel, Heylo) and channel.admin_configured():
                await enqueue(HEYLO_REMOVE_KIND, {"member_id": identity.address})
        await ChannelIdentity.filter(user_id=user.id).delete()
        await LinkCode.filter(user_id=user.id).delete()
        await MessageReference.filter(user_id=user.id).delete()


async def remove_heylo_member(item: OutboxItem) -> None:
    """``channels.heylo_remove``: Heylo's admin API, honouring its ``Retry-After``."""
    channel = channels().get("heylo")
    if not isinstance(channel, Heylo):
        raise PermanentFailure("the heylo channel is not enabled")
    try:
        await channel.remove_member(str(item.payload["member_id"]))
    except RetryLater as failure:
        if failure.retry_after is None:
            raise
        async with in_transaction():  # Heylo said when: a fresh message, due then
            await enqueue(
                HEYLO_REMOVE_KIND,
                item.payload,
                available_at=utcnow() + timedelta(seconds=failure.retry_after),
            )
        log.info("heylo: rate limited; removal queued again in %ss", failure.retry_after)
    except ChannelUnauthorized:
        log.error("ALERT heylo: the admin API refused our key; the removal waits")
        raise
    except SendFailure as failure:
        raise PermanentFailure(str(failure)) from failure


async def export_user(user: User) -> dict[str, Any]:
    identities = await ChannelIdentity.filter(user_id=user.id).order_by("id")
    ids = [identity.id for identity in identities]
    inbound = await ReceivedMessage.filter(identity_id__in=ids).order_by("id")
    outbound = await OutboundMessage.filter(identity_id__in=ids).order_by("id")
    references = await MessageReference.filter(user_id=user.id).order_by("created_at")
    return {
        "links": [
            {**link_out(i), "linked_at": i.linked_at.isoformat() if i.linked_at else None}
            for i in identities
        ],
        "messages_received": [
            {
                "channel_identity": m.identity_id,
                "kind": m.kind,
                "text": m.text,
                "reply_to": m.reply_to,
                "sent_at": m.sent_at.isoformat(),
            }
            for m in inbound
        ],
        "messages_sent": [
            {
                "channel_identity": m.identity_id,
                "text": m.text,
                "status": m.status,
                "via_template": m.via_template,
                "created_at": m.created_at.isoformat(),
            }
            for m in outbound
        ],
        "references": [exported(r) for r in references],
    }


def reference_out(reference: MessageReference) -> dict[str, Any]:
    return {
        "id": reference.id,
        "sender": reference.sender,
        "subject": reference.subject,
        "text": reference.text,
        "expires_at": reference.expires_at,
        "answer": reference.answer,
        "answered_at": reference.answered_at,
    }


def exported(reference: MessageReference) -> dict[str, Any]:
    out = reference_out(reference)
    for key in ("expires_at", "answered_at"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    return out
