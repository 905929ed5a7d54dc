"""The storage of the ``terra`` family: each user's opaque Terra reference.

Terra tags a connection with the ``reference_id`` we give it, and sends it back in its
webhooks (to alice). The reference is random and unguessable, one per user, created once
and reused; alice learns which user it stands for from us (``PUT
/v1/terra/references/{reference_id}``), never from the client.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class TerraReference(Model):
    """The ``reference_id`` that the Terra sessions and SDK tokens of one user carry."""

    id = fields.IntField(primary_key=True)
    user: fields.OneToOneRelation[Model] = fields.OneToOneField(
        USER_MODEL, related_name="terra_reference", on_delete=fields.CASCADE
    )
    user_id: int
    reference_id = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "terra_reference"
