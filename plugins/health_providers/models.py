"""The storage of the ``health_providers`` family.

alice holds the credentials and the data; these tables hold what this API needs to
orchestrate: each user's connection state, the pending OAuth authorizations and how far
alice's change feed has been read. The alice events already handled are recorded by core
(``core_handled_message``).
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


class EventCheckpoint(Model):
    """How far the reconciliation sweep has read the change feed of alice, for all instances.

    One row per feed (``name``). ``cursor`` is alice's opaque position after the last page
    every event of which was handled; ``version`` grows with each advance, so an instance
    only moves the checkpoint from the position it read (two sweeping at once never move
    it back). ``last_event_at`` is when the last event read occurred; ``swept_at`` when a
    sweep last read the feed to its end.
    """

    name = fields.CharField(max_length=64, primary_key=True)
    cursor = fields.TextField(null=True)
    version = fields.IntField(default=0)
    last_event_at = fields.DatetimeField(null=True)
    swept_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "health_providers_event_checkpoint"
