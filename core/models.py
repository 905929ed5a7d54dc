"""Core's own storage: the outbox of side effects (see :mod:`core.outbox`)."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

PENDING = "pending"
DONE = "done"
DEAD = "dead"


class OutboxMessage(Model):
    """A side effect queued in the transaction that caused it, carried out by the dispatcher."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=100)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField()
    dedupe_key = fields.CharField(max_length=200, null=True, unique=True)
    # Messages with the same key are handed over one at a time, in the order queued.
    ordering_key = fields.CharField(max_length=200, null=True)
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
        indexes = (("status", "available_at"), ("ordering_key", "status"))


class HandledMessage(Model):
    """A message from outside (an event on Redis, a webhook) already handled by a consumer.

    The primary key makes handling happen once across every instance: the row is written in
    the transaction of the change the message causes, so one transaction wins.
    """

    id = fields.BigIntField(primary_key=True)
    consumer = fields.CharField(max_length=64)
    message_id = fields.CharField(max_length=128)
    handled_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "core_handled_message"
        unique_together = (("consumer", "message_id"),)


class AccountDeletion(Model):
    """A request to erase an account, carried out family by family until it is done."""

    id = fields.BigIntField(primary_key=True)
    firebase_uid = fields.CharField(max_length=128, unique=True)
    user_id = fields.IntField(null=True)
    status = fields.CharField(max_length=12, default=PENDING)
    erased: fields.JSONField[list[str]] = fields.JSONField(default=list)
    last_error = fields.TextField(null=True)
    requested_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)
    locked_until = fields.DatetimeField(null=True)

    class Meta:
        table = "core_account_deletion"
