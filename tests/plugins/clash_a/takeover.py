from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Takeover(Model):
    id = fields.IntField(primary_key=True)

    class Meta:
        table = "core_outbox"
