from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Parcel(Model):
    id = fields.IntField(primary_key=True)
    label = fields.CharField(max_length=100)
    delivered = fields.IntField(default=0)

    class Meta:
        table = "courier_parcel"
