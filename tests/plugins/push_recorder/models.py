"""The pushes the test notifier was asked to send."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class RecordedPush(Model):
    """One push a family asked for."""

    id = fields.IntField(primary_key=True)
    user_id = fields.IntField()
    title = fields.CharField(max_length=200)
    body = fields.TextField()
    category = fields.CharField(max_length=64)
    data = fields.JSONField()

    class Meta:
        table = "push_recorder_push"
