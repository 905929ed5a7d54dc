"""The storage of the ``events`` family: the catalogue (events, their distances and
translations) and each user's goals (one active, the rest history).

Two rules live in the database, added by hand-written SQL in migration
``0002_search_index_and_one_active_goal``: the full-text index over ``search_text``
(a GIN index on PostgreSQL, an FTS5 table on SQLite) and the partial unique index that
allows at most one ``active`` goal per user.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class Event(Model):
    """A race in the catalogue. Retired events stay (goals point at them) but are not listed."""

    id = fields.IntField(primary_key=True)
    source_id = fields.CharField(max_length=128, null=True, unique=True)
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    sport = fields.CharField(max_length=32)
    date = fields.DateField()
    start_time = fields.CharField(max_length=5)
    timezone = fields.CharField(max_length=64)
    place_name = fields.CharField(max_length=200)
    country = fields.CharField(max_length=2, db_index=True)
    latitude = fields.FloatField()
    longitude = fields.FloatField()
    organiser_url = fields.CharField(max_length=500, null=True)
    default_language = fields.CharField(max_length=35)
    search_text = fields.TextField(default="")
    retired_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    distances: fields.ReverseRelation[EventDistance]
    translations: fields.ReverseRelation[EventTranslation]

    class Meta:
        table = "events_event"
        indexes = (("date", "id"),)


class EventDistance(Model):
    """One distance an event offers (a marathon and a 10 km on the same day)."""

    id = fields.IntField(primary_key=True)
    event: fields.ForeignKeyRelation[Event] = fields.ForeignKeyField(
        "events.Event", related_name="distances", on_delete=fields.CASCADE
    )
    event_id: int
    km = fields.FloatField(db_index=True)
    label = fields.CharField(max_length=60, default="")

    class Meta:
        table = "events_distance"


class EventTranslation(Model):
    """The name and description of an event in one language."""

    id = fields.IntField(primary_key=True)
    event: fields.ForeignKeyRelation[Event] = fields.ForeignKeyField(
        "events.Event", related_name="translations", on_delete=fields.CASCADE
    )
    event_id: int
    language = fields.CharField(max_length=35)
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")

    class Meta:
        table = "events_translation"
        unique_together = (("event", "language"),)


class UserEvent(Model):
    """The goal of a user: an event, one of its distances and a target time.

    ``status`` is ``active`` (at most one per user, enforced by a partial unique index),
    or history: ``completed`` (the event's day passed), ``abandoned`` (the user dropped it),
    ``replaced`` (another goal became active) or ``cancelled`` (the event was retired).
    """

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="user_events", on_delete=fields.CASCADE
    )
    user_id: int
    event: fields.ForeignKeyRelation[Event] = fields.ForeignKeyField(
        "events.Event", related_name="goals", on_delete=fields.CASCADE
    )
    event_id: int
    distance: fields.ForeignKeyNullableRelation[EventDistance] = fields.ForeignKeyField(
        "events.EventDistance", related_name="goals", null=True, on_delete=fields.SET_NULL
    )
    distance_id: int | None
    target_time_seconds = fields.IntField(null=True)
    status = fields.CharField(max_length=12, default="active", db_index=True)
    source = fields.CharField(max_length=20, default="user")
    started_at = fields.DatetimeField(auto_now_add=True)
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "events_user_event"
