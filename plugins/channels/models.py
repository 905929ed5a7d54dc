"""The storage of the ``channels`` family: chat identities and their links, link codes,
messages in and out, and message references."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL

ACTIVE = "active"
UNDELIVERABLE = "undeliverable"

QUEUED = "queued"
FAILED = "failed"
STATUS_RANK = {QUEUED: 0, "sent": 1, "delivered": 2, "read": 3}
"""Delivery statuses only move forward (a late ``delivered`` never undoes a ``read``);
``failed`` ends a message from any of them."""


class ChannelIdentity(Model):
    """One sender on one channel (a WhatsApp number, a Heylo member), linked to a user or not.

    ``user`` is set once the identity is linked; ``hinted_at`` records the one polite reply
    an unlinked identity gets; ``status`` turns ``undeliverable`` when the channel says the
    identity cannot receive messages.
    """

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=32)
    address = fields.CharField(max_length=128)
    user: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="channel_identities", null=True, on_delete=fields.CASCADE
    )
    user_id: int | None
    status = fields.CharField(max_length=16, default=ACTIVE)
    linked_at = fields.DatetimeField(null=True)
    hinted_at = fields.DatetimeField(null=True)
    wrong_codes = fields.IntField(default=0)
    last_inbound_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "channels_identity"
        unique_together = (("channel", "address"),)


class LinkCode(Model):
    """A one-time code that links a chat identity to ``user``, stored as its SHA-256.

    Inbound (``identity`` is null): the user sends the code from the chat app. Outbound
    (``identity`` set): we sent it to that identity and the user types it in the app.
    """

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="channel_link_codes", on_delete=fields.CASCADE
    )
    user_id: int
    channel = fields.CharField(max_length=32)
    identity: fields.ForeignKeyNullableRelation[ChannelIdentity] = fields.ForeignKeyField(
        "channels.ChannelIdentity", related_name="codes", null=True, on_delete=fields.CASCADE
    )
    identity_id: int | None
    code_hash = fields.CharField(max_length=64, db_index=True)
    expires_at = fields.DatetimeField()
    attempts = fields.IntField(default=0)
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "channels_link_code"


class ReceivedMessage(Model):
    """A message an identity sent, stored once per chat-app id.

    The webhook deduplicates with core's handled-message record, in the same transaction.
    """

    id = fields.BigIntField(primary_key=True)
    identity: fields.ForeignKeyRelation[ChannelIdentity] = fields.ForeignKeyField(
        "channels.ChannelIdentity", related_name="inbound", on_delete=fields.CASCADE
    )
    identity_id: int
    external_id = fields.CharField(max_length=200)
    kind = fields.CharField(max_length=16)
    text = fields.TextField()
    reply_to = fields.CharField(max_length=200, null=True)
    reacted_to = fields.CharField(max_length=200, null=True)
    sent_at = fields.DatetimeField()
    received_at = fields.DatetimeField(auto_now_add=True)
    handled_as = fields.CharField(max_length=16, null=True)  # linked, code, hinted, ignored

    class Meta:
        table = "channels_inbound_message"


class OutboundMessage(Model):
    """A message we send, queued in the outbox.

    ``external_id`` is set once the chat app took it, so a repeated outbox delivery never
    sends it twice.
    """

    id = fields.BigIntField(primary_key=True)
    identity: fields.ForeignKeyRelation[ChannelIdentity] = fields.ForeignKeyField(
        "channels.ChannelIdentity", related_name="outbound", on_delete=fields.CASCADE
    )
    identity_id: int
    purpose = fields.CharField(max_length=16)  # hint, code, linked, message
    text = fields.TextField()
    reply_to = fields.CharField(max_length=200, null=True)
    reference: fields.ForeignKeyNullableRelation[MessageReference] = fields.ForeignKeyField(
        "channels.MessageReference", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    reference_id: str | None
    status = fields.CharField(max_length=16, default=QUEUED)
    status_at = fields.DatetimeField(null=True)
    external_id = fields.CharField(max_length=200, null=True, unique=True)
    via_template = fields.BooleanField(default=False)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "channels_outbound_message"


class MessageReference(Model):
    """A question a message of another family asked the user, answered once in the app.

    It expires at ``expires_at``; ``sender`` is the family told the answer.
    """

    id = fields.CharField(max_length=32, primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="channel_references", on_delete=fields.CASCADE
    )
    user_id: int
    sender = fields.CharField(max_length=100)
    subject = fields.CharField(max_length=200)
    text = fields.TextField()
    expires_at = fields.DatetimeField()
    answer = fields.CharField(max_length=16, null=True)
    answered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "channels_message_reference"
