"""The contract of the ``onboarding`` family: its settings, requests and responses."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from core import Family, WholeNumber, omittable, request_body
from plugins.onboarding import questionnaire


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


# --- intake ----------------------------------------------------------------------------


class IntakeQuestion(BaseModel):
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
    step: IntakeQuestion | None = Field(description="The current question; null when completed.")
    answers: dict[str, Any] = Field(description="Answers by step id; null for a skipped step.")
    history: list[str] = Field(description="The steps answered or skipped, in order.")
    can_go_back: bool
    started_at: datetime
    completed_at: datetime | None


class IntakeLocation(BaseModel):
    """The answer to a location step, in decimal degrees; one named type in the spec."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class IntakeAnswerIn(BaseModel):
    """Answer the current step, skip it (optional steps), or go back one step.

    ``step`` must be the current step (else 409, naming it). With ``action: "back"`` the
    last answer is withdrawn and its step is current again. The schema gives each step's
    answer type; a step or answer that the caller's questionnaire version does not have
    in that form is a 409 too.
    """

    model_config = request_body(
        {"step": "sport", "answer": "running"},
        {"step": "weekly_hours", "answer": 6.5},
        {"step": "home_location", "answer": {"lat": 48.8566, "lng": 2.3522}},
        {"step": "notes", "action": "skip"},
        {"step": "level", "action": "back"},
    )

    step: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    action: Literal["answer", "skip", "back"] = "answer"
    answer: Any = omittable(description="The answer, of the step's type.")

    @model_validator(mode="after")
    def _fits_the_step(self) -> IntakeAnswerIn:
        """What the published schema says, from the same declarations."""
        steps = questionnaire.named(self.step)
        if not steps:
            raise ValueError(f"the intake has no step '{self.step}'")
        given = "answer" in self.model_fields_set
        if self.action != "answer":
            if given:
                raise ValueError(f"answer is not taken with action '{self.action}'")
            if self.action == "skip" and not any(s.optional for s in steps):
                raise ValueError(f"the step '{self.step}' cannot be skipped")
            return self
        if not given:
            raise ValueError("answer is required to answer a step")
        problems = []
        for step in steps:
            try:
                step.check(self.answer)
                return self
            except ValueError as error:
                problems.append(str(error))
        raise ValueError(f"the answer to '{self.step}' {problems[0]}")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """One alternative per step with its answer's type, one to skip an optional step
        and one to go back: exactly what :meth:`_fits_the_step` lets through."""
        documented = handler.resolve_ref_schema(handler(core_schema))
        step = documented["properties"]["step"]
        # A location answer is the component the family adds (spec_fragments): inline in a
        # oneOf, client generators make two types of one name of it.
        location = {"$ref": "#/components/schemas/IntakeLocation"}
        answers = []
        for step_id in questionnaire.STEP_IDS:
            kinds = list(
                {
                    json.dumps(schema, sort_keys=True): schema
                    for schema in map(questionnaire.answer_schema, questionnaire.named(step_id))
                }.values()
            )
            kinds = list(
                location if kind.get("title") == questionnaire.LOCATION_TITLE else kind
                for kind in kinds
            )
            answers.append(
                _alternative(
                    f"IntakeAnswer_{step_id}",
                    {"const": step_id},
                    {"const": "answer"},
                    kinds[0] if len(kinds) == 1 else {"anyOf": kinds},
                )
            )
        optional = [
            i for i in questionnaire.STEP_IDS if any(s.optional for s in questionnaire.named(i))
        ]
        return {
            "title": documented.get("title"),
            "description": documented.get("description"),
            "examples": documented.get("examples"),
            "oneOf": [
                *answers,
                _alternative("IntakeSkip", {**step, "enum": optional}, {"const": "skip"}),
                _alternative(
                    "IntakeBack", {**step, "enum": list(questionnaire.STEP_IDS)}, {"const": "back"}
                ),
            ],
        }


def _alternative(
    title: str, step: dict[str, Any], action: dict[str, Any], answer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One way to call the route; ``title`` names it for client generators (one type each)."""
    properties = {"step": step, "action": {"type": "string", **action}}
    if answer is None:
        return {
            "title": title,
            "type": "object",
            "properties": properties,
            "required": ["step", "action"],
            "additionalProperties": False,
        }
    return {
        "title": title,
        "type": "object",
        "properties": {**properties, "answer": answer},
        "required": ["step", "answer"],
        "additionalProperties": False,
    }


# --- recommendations -------------------------------------------------------------------


class RecommendIn(BaseModel):
    """Rank the catalogue for the caller now (from their completed intake)."""

    model_config = request_body({"limit": 5}, {})

    limit: Annotated[int, Field(ge=1, le=20), WholeNumber] = 5


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

    model_config = request_body({"target_time_seconds": 14400}, {})

    target_time_seconds: Annotated[int, Field(ge=60, le=30 * 86400), WholeNumber] | None = (
        omittable()
    )


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

    model_config = request_body({"text": "Too hilly for me, but I love the date."})

    text: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")


class ReplyOut(BaseModel):
    id: int
    recommendation_id: int
    text: str
    written_at: datetime
