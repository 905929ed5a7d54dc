"""The storage of the ``home`` family: boards and their events, feedback, check-ins."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class Board(Model):
    """A board: made once, from the sections ready when it was generated.

    ``status`` is ``generating`` until the generation task stored its ``done`` event, then
    ``done``; ``lost`` when the instance generating it went away before it finished.
    """

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="home_boards", on_delete=fields.CASCADE
    )
    user_id: int
    status = fields.CharField(max_length=12, default="generating")
    writer = fields.CharField(max_length=20)
    sections: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    errors: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    narrative = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "home_board"
        indexes = (("user_id", "id"),)


class BoardEvent(Model):
    """One event of the stream of a board, stored as it is produced, so a client that dropped
    can replay what it missed from any instance (``seq`` is the SSE ``id``)."""

    id = fields.BigIntField(primary_key=True)
    board: fields.ForeignKeyRelation[Board] = fields.ForeignKeyField(
        "home.Board", related_name="events", on_delete=fields.CASCADE
    )
    board_id: int
    seq = fields.IntField()
    event = fields.CharField(max_length=20)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField()

    class Meta:
        table = "home_board_event"
        unique_together = (("board", "seq"),)


class Feedback(Model):
    """A reaction the user wrote to a board, a section of one, or an activity."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="home_feedback", on_delete=fields.CASCADE
    )
    user_id: int
    target = fields.CharField(max_length=10)
    board_id = fields.IntField(null=True)
    section = fields.CharField(max_length=40, null=True)
    activity_id = fields.CharField(max_length=128, null=True)
    rating = fields.CharField(max_length=4, null=True)
    text = fields.TextField(null=True)
    written_at = fields.DatetimeField()

    class Meta:
        table = "home_feedback"


class CheckIn(Model):
    """How the user felt on ``day`` (their calendar day), in their words if they wrote any."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="home_check_ins", on_delete=fields.CASCADE
    )
    user_id: int
    day = fields.DateField()
    mood = fields.SmallIntField()
    energy = fields.SmallIntField(null=True)
    soreness = fields.SmallIntField(null=True)
    sleep_quality = fields.SmallIntField(null=True)
    text = fields.TextField(null=True)
    written_at = fields.DatetimeField()

    class Meta:
        table = "home_check_in"
        indexes = (("user_id", "day"),)
