from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Entry(Model):
    id = fields.IntField(primary_key=True)
    text = fields.CharField(max_length=200)

    class Meta:
        table = "ledger_entry"
