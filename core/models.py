"""Core's own storage: the outbox of side effects (see :mod:`core.outbox`)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

PENDING = "pending"
DONE = "done"
DEAD = "dead"


class OutboxMessage(Model):
    """A side effect queued in the transaction that caused it, carried out by the dispatcher."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=100)
    payload = fields.JSONField()
    dedupe_key = fields.CharField(max_length=200, null=True, unique=True)
    status = fields.CharField(max_length=8, default=PENDING)
    attempts = fields.IntField(default=0)
    available_at = fields.DatetimeField()
    locked_until = fields.DatetimeField(null=True)
    locked_by = fields.CharField(max_length=64, null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "core_outbox"
        indexes = (("status", "available_at"),)
