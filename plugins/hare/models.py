"""The storage of the ``hare`` family: messages on their way to hare, and backfill progress."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL

PENDING = "pending"
REFUSED = "refused"


class PendingSourceEvent(Model):
    """A source event recorded in the transaction of its writer, not yet delivered to hare.

    The row is deleted once hare has it, so the table holds only what is on its way (and
    what hare refused for good, ``status = "refused"``, with hare's reason). The outbox
    message that delivers it carries only this row's id.
    """

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="hare_source_events", on_delete=fields.CASCADE
    )
    user_id: int  # Tortoise adds the key's column attribute
    idempotency_key = fields.CharField(max_length=200, unique=True)
    surface = fields.CharField(max_length=81)
    text = fields.TextField()
    written_at = fields.DatetimeField()
    reference_type = fields.CharField(max_length=64)
    reference_id = fields.CharField(max_length=200)
    language = fields.CharField(max_length=35, null=True)
    status = fields.CharField(max_length=8, default=PENDING)
    last_error = fields.TextField(null=True)
    queued_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "hare_source_event"


class BackfillCheckpoint(Model):
    """How far ``imperfect hare backfill`` got through the stored events of one family.

    One row per family and scope (the ``--since`` and ``--user`` of the run), holding the
    cursor of the last event hare answered; a run that completes deletes it.
    """

    id = fields.IntField(primary_key=True)
    family = fields.CharField(max_length=100)
    scope = fields.CharField(max_length=200)
    cursor = fields.CharField(max_length=500)
    sent = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "hare_backfill_checkpoint"
        unique_together = (("family", "scope"),)
