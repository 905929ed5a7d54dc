"""The diary's storage: what each user wrote."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class DiaryEntry(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="diary_entries", on_delete=fields.CASCADE
    )
    user_id: int
    surface = fields.CharField(max_length=81)
    text = fields.TextField()
    written_at = fields.DatetimeField()

    class Meta:
        table = "diary_entry"
