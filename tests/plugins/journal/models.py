from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Entry(Model):
    id = fields.IntField(primary_key=True)
    user = fields.ForeignKeyField("users.User", related_name="journal", on_delete=fields.RESTRICT)
    text = fields.CharField(max_length=200)

    class Meta:
        table = "journal_entry"
