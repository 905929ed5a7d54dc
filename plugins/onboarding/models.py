"""The storage of the ``onboarding`` family: each user's intake, its answers, the race
recommendations made for them and their replies. Every row belongs to one user."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from core import USER_MODEL


class IntakeSession(Model):
    """The intake of one user, on the questionnaire version it started on."""

    id = fields.IntField(primary_key=True)
    user: fields.OneToOneRelation[Model] = fields.OneToOneField(
        USER_MODEL, related_name="intake_session", on_delete=fields.CASCADE
    )
    user_id: int
    version = fields.CharField(max_length=20)
    status = fields.CharField(max_length=12, default="in_progress")
    started_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "onboarding_intake_session"


class IntakeAnswer(Model):
    """One answer (or skip) to one step, kept when the user goes back or starts over.

    Going back or starting over deactivates answers; what a user wrote is never lost."""

    id = fields.IntField(primary_key=True)
    session: fields.ForeignKeyRelation[IntakeSession] = fields.ForeignKeyField(
        "onboarding.IntakeSession", related_name="answers", on_delete=fields.CASCADE
    )
    session_id: int
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="intake_answers", on_delete=fields.CASCADE
    )
    user_id: int
    version = fields.CharField(max_length=20)
    step = fields.CharField(max_length=40)
    value: fields.JSONField[Any] = fields.JSONField(null=True)
    skipped = fields.BooleanField(default=False)
    free_text = fields.BooleanField(default=False)
    active = fields.BooleanField(default=True)
    written_at = fields.DatetimeField()

    class Meta:
        table = "onboarding_intake_answer"


class RecommendationSet(Model):
    """One ranking of the catalogue for a user, with the inputs it was made from."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="recommendation_sets", on_delete=fields.CASCADE
    )
    user_id: int
    inputs: fields.JSONField[dict[str, Any]] = fields.JSONField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "onboarding_recommendation_set"


class Recommendation(Model):
    """One recommended event (and distance) in a ranking, with its explained score."""

    id = fields.IntField(primary_key=True)
    set: fields.ForeignKeyRelation[RecommendationSet] = fields.ForeignKeyField(
        "onboarding.RecommendationSet", related_name="items", on_delete=fields.CASCADE
    )
    set_id: int
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="recommendations", on_delete=fields.CASCADE
    )
    user_id: int
    rank = fields.IntField()
    event_id = fields.IntField()
    event_name = fields.CharField(max_length=200)
    event_date = fields.DateField()
    distance_id = fields.IntField(null=True)
    distance_km = fields.FloatField()
    score = fields.FloatField()
    factors: fields.JSONField[list[dict[str, Any]]] = fields.JSONField()
    accepted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "onboarding_recommendation"


class RecommendationReply(Model):
    """What a user wrote back about a recommendation (sent to hare)."""

    id = fields.IntField(primary_key=True)
    recommendation: fields.ForeignKeyRelation[Recommendation] = fields.ForeignKeyField(
        "onboarding.Recommendation", related_name="replies", on_delete=fields.CASCADE
    )
    recommendation_id: int
    user: fields.ForeignKeyRelation[Model] = fields.ForeignKeyField(
        USER_MODEL, related_name="recommendation_replies", on_delete=fields.CASCADE
    )
    user_id: int
    text = fields.TextField()
    written_at = fields.DatetimeField()

    class Meta:
        table = "onboarding_recommendation_reply"
