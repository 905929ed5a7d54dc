"""The storage of the ``public_routes`` family: each route with its public share.

A deleted route keeps its row (geometry cleared, ``deleted_at`` set) so its share answers
404 ``share_deleted``; an erased account's routes are removed (404 ``share_not_found``).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class Route(Model):
    id = fields.IntField(primary_key=True)
    # The public handle: random (secrets.token_urlsafe), never derived from the route.
    share_id = fields.CharField(max_length=32, unique=True)
    user: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="public_routes", null=True, on_delete=fields.CASCADE
    )
    user_id: int | None
    title = fields.CharField(max_length=120)
    locale = fields.CharField(max_length=8)
    source = fields.CharField(max_length=16)  # "gpx" or "osrm"
    # [[lng, lat, elevation or null], ...], the track as uploaded (after the point limit).
    points: list[list[float | None]] = fields.JSONField(default=list)
    distance_m = fields.FloatField()
    gain_m = fields.FloatField()
    loss_m = fields.FloatField()
    trail_ratio = fields.FloatField(null=True)
    duration_s = fields.IntField(null=True)  # the routing engine's estimate
    # SHA-256 of the geometry: internal, versions the content-addressed assets.
    content_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "public_routes_route"
        indexes = (("user_id", "created_at"),)
