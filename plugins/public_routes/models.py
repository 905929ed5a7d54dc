"""The storage of the ``public_routes`` family: each route with its public share, and
Garmin route-send (pending authorizations, each user's encrypted tokens, the sends).

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
    source = fields.CharField(max_length=16)  # "gpx", "osrm" (waypoints) or "request"
    # [[lng, lat, elevation or null], ...], the track as uploaded (after the point limit).
    points: list[list[float | None]] = fields.JSONField(default=list)
    distance_m = fields.FloatField()
    gain_m = fields.FloatField()
    loss_m = fields.FloatField()
    trail_ratio = fields.FloatField(null=True)
    duration_s = fields.IntField(null=True)  # the routing engine's estimate
    # Where gain and loss come from (Stats.elevation_source); null: stored before it was kept.
    elevation_source = fields.CharField(max_length=8, null=True)
    # A route planned from a natural-language request: what the request was understood to
    # ask for (public), and its plan, which makes the plan's routes each other's alternatives.
    request_paraphrase = fields.CharField(max_length=300, null=True)
    plan_id = fields.CharField(max_length=32, null=True, db_index=True)
    # SHA-256 of the geometry: internal, versions the content-addressed assets.
    content_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "public_routes_route"
        indexes = (("user_id", "created_at"),)


class GarminState(Model):
    """A pending send, found by the hash of its one-time ``state``.

    Only the browser whose cookie hashes to ``session_hash`` may finish it. ``consent``
    says whether it went through Garmin's consent screen (else it sends with the stored
    token). The PKCE verifier is encrypted like the tokens."""

    id = fields.IntField(primary_key=True)
    state_hash = fields.CharField(max_length=64, unique=True)
    session_hash = fields.CharField(max_length=64)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="garmin_states", on_delete=fields.CASCADE
    )
    user_id: int
    share_id = fields.CharField(max_length=32)
    consent = fields.BooleanField()
    verifier = fields.TextField()
    expires_at = fields.DatetimeField(db_index=True)
    consumed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "public_routes_garmin_state"


class GarminToken(Model):
    """The Garmin Connect tokens of a user, each Fernet-encrypted (never stored or logged plain)."""

    id = fields.IntField(primary_key=True)
    user: fields.OneToOneRelation[Model] = fields.OneToOneField(
        USER_MODEL, related_name="garmin_token", on_delete=fields.CASCADE
    )
    user_id: int
    garmin_user_id = fields.CharField(max_length=64)
    access_token = fields.TextField()
    refresh_token = fields.TextField()
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "public_routes_garmin_token"


class GarminSend(Model):
    """A course created in the Garmin Connect of a user, from a share."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="garmin_sends", on_delete=fields.CASCADE
    )
    user_id: int
    share_id = fields.CharField(max_length=32)
    course_id = fields.BigIntField()
    course_name = fields.CharField(max_length=120)
    points = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "public_routes_garmin_send"
        indexes = (("user_id", "created_at"),)
