"""The intake questionnaire, declared as data: its versions, steps, answer types,
validation rules and branching. A session keeps the version it started on, so a user
half-way through an older version finishes that one; new sessions start on
:data:`CURRENT`. Add a version rather than change a published one.

A step is asked when its ``when`` condition holds on the answers given before it
(``{"step": id, "equals": value}`` or ``{"step": id, "answered": true}``); optional steps
can be skipped. ``profile`` names the athlete-profile field a step fills on completion.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AnswerType = Literal["single_choice", "multi_choice", "number", "boolean", "text", "location"]


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str
    equals: Any = None
    answered: bool | None = None

    def holds(self, answers: dict[str, Any]) -> bool:
        if self.answered is not None:
            return (answers.get(self.step) is not None) == self.answered
        return self.step in answers and answers[self.step] == self.equals


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    prompt: str
    type: AnswerType
    options: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    integer: bool = False
    max_length: int = 2000
    optional: bool = False
    when: Condition | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        if self.type in ("single_choice", "multi_choice") and not self.options:
            raise ValueError(f"step {self.id}: a choice needs options")
        return self

    def check(self, value: Any) -> Any:
        """The answer as stored, or ValueError saying what is wrong with it."""
        if self.type == "single_choice":
            if not isinstance(value, str) or value not in self.options:
                raise ValueError(f"must be one of: {', '.join(self.options)}")
            return value
        if self.type == "multi_choice":
            if (
                not isinstance(value, list)
                or not value
                or any(not isinstance(v, str) or v not in self.options for v in value)
                or len(set(value)) != len(value)
            ):
                raise ValueError(f"must be a non-empty list of distinct: {', '.join(self.options)}")
            return [o for o in self.options if o in value]
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("must be a number")
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
            if self.integer and value != int(value):
                raise ValueError("must be a whole number")
            if (self.min is not None and value < self.min) or (
                self.max is not None and value > self.max
            ):
                raise ValueError(f"must be between {self.min:g} and {self.max:g}")
            return int(value) if self.integer else float(value)
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if self.type == "text":
            if not isinstance(value, str) or not value.strip():
                raise ValueError("must be some text")
            if len(value) > self.max_length:
                raise ValueError(f"must be at most {self.max_length} characters")
            if "\x00" in value:
                raise ValueError("must not contain NUL characters")
            return value.strip()
        if (
            not isinstance(value, dict)
            or set(value) != {"lat", "lng"}
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value.values())
            or not -90 <= value["lat"] <= 90
            or not -180 <= value["lng"] <= 180
        ):
            raise ValueError("must be {lat, lng} with -90 <= lat <= 90 and -180 <= lng <= 180")
        return {"lat": float(value["lat"]), "lng": float(value["lng"])}


def answer_schema(step: Step) -> dict[str, Any]:
    """The JSON Schema of exactly the answers :meth:`Step.check` takes for ``step``."""
    if step.type == "single_choice":
        return {"type": "string", "enum": list(step.options)}
    if step.type == "multi_choice":
        return {
            "type": "array",
            "items": {"type": "string", "enum": list(step.options)},
            "minItems": 1,
            "uniqueItems": True,
        }
    if step.type == "number":
        bounds = {"minimum": step.min, "maximum": step.max}
        kind = "integer" if step.integer else "number"
        return {"type": kind, **{k: v for k, v in bounds.items() if v is not None}}
    if step.type == "boolean":
        return {"type": "boolean"}
    if step.type == "text":
        return {"type": "string", "maxLength": step.max_length, "pattern": TEXT_PATTERN}
    degrees = {"type": "number"}
    return {
        "title": LOCATION_TITLE,
        "type": "object",
        "properties": {
            "lat": {**degrees, "minimum": -90, "maximum": 90},
            "lng": {**degrees, "minimum": -180, "maximum": 180},
        },
        "required": ["lat", "lng"],
        "additionalProperties": False,
    }


# Some text that is not only white space, without NUL characters.
TEXT_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
# The schema of a location answer: the request body refers to it by name (schemas.IntakeLocation).
LOCATION_TITLE = "IntakeLocation"


SPORT = Step(
    id="sport",
    prompt="Which sport are you training for?",
    type="single_choice",
    options=("running", "trail_running", "cycling", "triathlon", "swimming"),
    profile="sport",
)
LEVEL = Step(
    id="level",
    prompt="How experienced are you in it?",
    type="single_choice",
    options=("beginner", "intermediate", "advanced", "elite"),
    profile="level",
)
WEEKLY_HOURS = Step(
    id="weekly_hours",
    prompt="How many hours a week can you train?",
    type="number",
    min=0,
    max=40,
    profile="weekly_hours",
)
DISTANCE = Step(
    id="preferred_distance_km",
    prompt="Which race distance appeals to you most (km)?",
    type="number",
    min=1,
    max=400,
)
NOTES = Step(
    id="notes",
    prompt="Anything else your coach should know?",
    type="text",
    optional=True,
)

GOALS = {
    "finish_first_race": "Finish my first race",
    "improve_time": "Set a personal best",
    "go_longer": "Go further than ever",
    "stay_fit": "Stay fit and healthy",
}

VERSIONS: dict[str, tuple[Step, ...]] = {
    # The first published intake: no goal, no place.
    "2024-09": (SPORT, LEVEL, WEEKLY_HOURS, DISTANCE, NOTES),
    "2025-03": (
        SPORT,
        LEVEL,
        WEEKLY_HOURS,
        Step(
            id="goal",
            prompt="What do you want from your next race?",
            type="single_choice",
            options=tuple(GOALS),
            profile="goals",
        ),
        DISTANCE,
        Step(id="race_in_mind", prompt="Do you already have a race in mind?", type="boolean"),
        Step(
            id="race_description",
            prompt="Tell us about it: which race, and why?",
            type="text",
            max_length=1000,
            when=Condition(step="race_in_mind", equals=True),
        ),
        Step(
            id="home_location",
            prompt="Where do you live? (for races within reach)",
            type="location",
            optional=True,
        ),
        Step(
            id="max_travel_km",
            prompt="How far would you travel for a race (km)?",
            type="number",
            min=0,
            max=20000,
            optional=True,
            when=Condition(step="home_location", answered=True),
        ),
        NOTES,
    ),
}
CURRENT = "2025-03"


def applicable(steps: tuple[Step, ...], answers: dict[str, Any]) -> list[Step]:
    """The steps asked, given the answers: those whose condition holds."""
    return [s for s in steps if s.when is None or s.when.holds(answers)]


def next_step(steps: tuple[Step, ...], answered: list[str], answers: dict[str, Any]) -> Step | None:
    """The first applicable step not answered (or skipped) yet; ``None`` when done."""
    done = set(answered)
    return next((s for s in applicable(steps, answers) if s.id not in done), None)


def named(step_id: str) -> list[Step]:
    """Every declaration of the step ``step_id`` (one per version it appears in, or none)."""
    return [s for steps in VERSIONS.values() for s in steps if s.id == step_id]


STEP_IDS = tuple(dict.fromkeys(s.id for steps in VERSIONS.values() for s in steps))
