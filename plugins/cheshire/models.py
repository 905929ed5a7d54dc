"""The storage of the ``cheshire`` family: each question a user asked, and its answer."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class Question(Model):
    """A question, stored before cheshire is called (so it is never lost), with the answer
    as it arrived: its text, its (validated) charts, and how it ended."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="cheshire_questions", on_delete=fields.CASCADE
    )
    user_id: int
    question = fields.TextField()
    status = fields.CharField(max_length=16, default="pending")
    text = fields.TextField(default="")
    charts: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    error = fields.CharField(max_length=40, null=True)
    asked_at = fields.DatetimeField(auto_now_add=True)
    answered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "cheshire_question"
        indexes = (("user_id", "id"),)
