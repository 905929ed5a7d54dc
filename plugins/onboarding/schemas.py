"""The contract of the ``onboarding`` family: its settings, requests and responses."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import Family


class OnboardingSettings(BaseModel):
    """``[plugins.onboarding.settings]``."""

    model_config = ConfigDict(extra="forbid")

    candidates: int = Field(
        1000, ge=10, le=10000, description="Catalogue events ranked per recommendation."
    )
    earliest_weeks: int = Field(
        2, ge=0, le=52, description="Recommend events at least this many weeks away."
    )
    horizon_weeks: int = Field(52, ge=4, le=156, description="... and at most this many.")


FAMILY = Family(__package__, OnboardingSettings)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _omittable(**constraints: Any) -> Any:
    return Field(None, json_schema_extra=_drop_default, **constraints)


def _body(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": list(examples)})


# --- intake ----------------------------------------------------------------------------


class QuestionOut(BaseModel):
    """A step of the intake, as the app shows it."""

    id: str
    prompt: str
    type: Literal["single_choice", "multi_choice", "number", "boolean", "text", "location"]
    options: list[str]
    min: float | None
    max: float | None
    integer: bool
    max_length: int | None = Field(description="For text answers.")
    optional: bool


class IntakeState(BaseModel):
    """Where the caller's intake stands: the answers so far and the next question."""

    version: str = Field(description="The questionnaire version this intake follows.")
    status: Literal["in_progress", "completed"]
    step: QuestionOut | None = Field(description="The current question; null when completed.")
    answers: dict[str, Any] = Field(description="Answers by step id; null for a skipped step.")
    history: list[str] = Field(description="The steps answered or skipped, in order.")
    can_go_back: bool
    started_at: datetime
    completed_at: datetime | None


class IntakeAnswerIn(BaseModel):
    """Answer the current step, skip it (optional steps), or go back one step.

    ``step`` must be the current step (else 409, naming it). With ``action: "back"`` the
    last answer is withdrawn and its step is current again.
    """

    model_config = _body(
        {"step": "sport", "answer": "running"},
        {"step": "weekly_hours", "answer": 6.5},
        {"step": "home_location", "answer": {"lat": 48.8566, "lng": 2.3522}},
        {"step": "notes", "action": "skip"},
        {"step": "level", "action": "back"},
    )

    step: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    action: Literal["answer", "skip", "back"] = "answer"
    answer: Any = _omittable(description="The answer, of the step's type.")

    @model_validator(mode="after")
    def _answer_only_to_answer(self) -> IntakeAnswerIn:
        given = "answer" in self.model_fields_set
        if self.action == "answer" and not given:
            raise ValueError("answer is required to answer a step")
        if self.action != "answer" and given:
            raise ValueError(f"answer is not taken with action '{self.action}'")
        return self


# --- recommendations -------------------------------------------------------------------


class RecommendIn(BaseModel):
    """Rank the catalogue for the caller now (from their completed intake)."""

    model_config = _body({"limit": 5}, {})

    limit: int = Field(5, ge=1, le=20)


class FactorOut(BaseModel):
    name: Literal["distance_fit", "weeks_to_prepare", "travel", "level"]
    weight: float = Field(description="Its share of the score; the weights add up to 1.")
    score: float = Field(ge=0, le=1)
    value: float | None = Field(description="What was measured (km, weeks, ...).")
    explanation: str


class RecommendationOut(BaseModel):
    id: int
    rank: int
    event_id: int
    event_name: str
    event_date: date
    distance_id: int | None
    distance_km: float
    score: float = Field(description="The weighted sum of the factors, 0 to 1.")
    factors: list[FactorOut]
    accepted_at: datetime | None


class RecommendationSetOut(BaseModel):
    id: int
    created_at: datetime
    inputs: dict[str, Any] = Field(description="What the ranking was made from.")
    items: list[RecommendationOut]


class AcceptIn(BaseModel):
    """Make the recommended event the caller's active goal."""

    model_config = _body({"target_time_seconds": 14400}, {})

    target_time_seconds: int | None = _omittable(ge=60, le=30 * 86400)


class GoalDistance(BaseModel):
    id: int
    km: float
    label: str


class GoalEventOut(BaseModel):
    id: int
    name: str
    date: date


class AcceptedGoal(BaseModel):
    """The caller's new active goal (as ``GET /user_events/active`` shows it)."""

    id: int
    status: str
    event: GoalEventOut
    distance: GoalDistance | None
    target_time_seconds: int | None


class AcceptOut(BaseModel):
    recommendation: RecommendationOut
    user_event: AcceptedGoal


class ReplyIn(BaseModel):
    """What the caller thinks of a recommendation, in their words (sent to hare)."""

    model_config = _body({"text": "Too hilly for me, but I love the date."})

    text: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")


class ReplyOut(BaseModel):
    id: int
    recommendation_id: int
    text: str
    written_at: datetime
