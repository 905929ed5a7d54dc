"""The storage of the ``health_providers`` family.

alice holds the credentials and the data; these tables hold what this API needs to
orchestrate: each user's connection state and the pending OAuth authorizations. The alice
events already handled are recorded by core (``core_handled_message``).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL

CONNECTED = "connected"
REVOKED = "revoked"


class Connection(Model):
    """A user connection to one provider, as alice last reported it."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="health_connections", on_delete=fields.CASCADE
    )
    user_id: int
    provider = fields.CharField(max_length=32)
    status = fields.CharField(max_length=16)
    connected_at = fields.DatetimeField()
    last_sync_at = fields.DatetimeField(null=True)
    backfill_completed_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "health_providers_connection"
        unique_together = (("user", "provider"),)


class OAuthState(Model):
    """A pending authorization, found by the hash of its one-time state.

    The callback spends the state (``consumed_at``) and, when the provider sent a code,
    leaves a one-time completion for the app: only its hash (``completion_hash``) is kept,
    and the state and code it needs to finish are ``sealed`` under a key derived from the
    completion itself, so a leaked table can finish no one's flow. Redeeming it
    (``completed_at``) clears ``sealed``.
    """

    id = fields.IntField(primary_key=True)
    state_hash = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="health_oauth_states", on_delete=fields.CASCADE
    )
    user_id: int
    provider = fields.CharField(max_length=32)
    expires_at = fields.DatetimeField(db_index=True)
    consumed_at = fields.DatetimeField(null=True)
    completion_hash = fields.CharField(max_length=64, unique=True, null=True)
    completion_expires_at = fields.DatetimeField(null=True)
    sealed = fields.TextField(null=True)
    completed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "health_providers_oauth_state"
