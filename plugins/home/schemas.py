"""The contract of the ``home`` family: its settings, requests, responses and board events.

Also the family's handle on itself (:data:`FAMILY`) and the keys of its run-time state.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    RootModel,
    SecretStr,
    field_validator,
    model_validator,
)

from core import Family, Registry, StashKey, WholeNumber, omittable
from plugins.home.hookspecs import NAME, SectionSpec
from plugins.home.runtime import Generations, Writer


class HomeSettings(BaseModel):
    """``[plugins.home.settings]``."""

    model_config = ConfigDict(extra="forbid")

    part_timeout_seconds: float = Field(
        2.0, gt=0, le=30, description="each family's time for its part of GET /user_states/me"
    )
    section_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="each board section's time to be computed"
    )
    board_deadline_seconds: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="a board still generating after this long was lost with its instance",
    )
    replay_poll_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        description="how often a stream reads new events of a board another instance makes",
    )
    llm_base_url: HttpUrl | None = Field(
        None, description="an OpenAI-compatible API (…/v1); unset: the rules writer"
    )
    llm_model: str = Field("", max_length=200)
    llm_api_key: SecretStr = SecretStr("")
    llm_connect_timeout: float = Field(3.0, gt=0, le=30, description="seconds")
    llm_chunk_timeout: float = Field(
        20.0, gt=0, le=300, description="seconds to wait for the first and each next token"
    )
    llm_max_tokens: int = Field(400, ge=16, le=4000)

    @field_validator("llm_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value


FAMILY = Family(__package__, HomeSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""

SECTIONS = StashKey[Registry[SectionSpec]]("sections")
GENERATIONS = StashKey[Generations]("generations")
WRITER = StashKey[Writer]("writer")

# --- GET /user_states/me ---------------------------------------------------------------


class Unavailable(BaseModel):
    family: str
    reason: Literal["failed", "timed_out"]


class HomeState(BaseModel):
    """Everything the Home screen shows, one part per name; a disabled family's parts are
    absent, and a family that failed or was too slow is listed in ``unavailable``."""

    parts: dict[str, dict[str, Any]]
    unavailable: list[Unavailable]


# --- boards ----------------------------------------------------------------------------


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=80)
    value: float | int | str
    unit: str | None = Field(None, max_length=20)


class SectionContent(BaseModel):
    """What a family's ``board_section`` returns (validated before it reaches a board)."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=2000)
    metrics: list[Metric] = Field(default_factory=list, max_length=20)
    data: dict[str, Any] = Field(default_factory=dict)


class BoardSection(SectionContent):
    """A ``section`` event: one section, as soon as it is ready."""

    name: str = Field(pattern=NAME)
    title: str
    order: int
    family: str


class SectionError(BaseModel):
    """An ``error`` event: a section (or the narrative) that failed or ran out of time."""

    section: str
    reason: Literal["failed", "timed_out", "invalid"]
    detail: str


class NarrativeDelta(BaseModel):
    """A ``narrative`` event: the next piece of the board's text, as the writer makes it."""

    text: str


class BoardStarted(BaseModel):
    """The first event: the board's id (to reconnect to) and the sections it waits for."""

    board_id: int
    sections: list[str]


class BoardDone(BaseModel):
    """The ``done`` event: the board is complete and stored."""

    board_id: int


BOARD_EVENTS: dict[str, type[BaseModel]] = {
    "board": BoardStarted,
    "section": BoardSection,
    "narrative": NarrativeDelta,
    "error": SectionError,
    "done": BoardDone,
}


class BoardOut(BaseModel):
    id: int
    status: Literal["generating", "done", "lost"]
    writer: str
    created_at: datetime
    finished_at: datetime | None
    sections: list[BoardSection]
    errors: list[SectionError]
    narrative: str | None


class BoardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    before: int | None = Field(None, ge=1, le=2**31 - 1, description="the next_before of a page")


class BoardPage(BaseModel):
    items: list[BoardOut]
    next_before: int | None


# --- activities, feedback, check-ins -----------------------------------------------------

ACTIVITY_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class Activity(BaseModel):
    """One activity as alice holds it."""

    id: str
    provider: str
    sport: str
    start_time: datetime
    duration_s: float
    distance_m: float | None = None
    average_heart_rate: int | None = None
    max_heart_rate: int | None = None
    elevation_gain_m: float | None = None
    calories: float | None = None


Score = Annotated[int, Field(ge=1, le=5), WholeNumber]
BoardId = Annotated[int, Field(ge=1, le=2**31 - 1), WholeNumber]
Words = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"\S")]  # not blank


def _rating_or_text(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("rating", "text")
    ]


class _Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_rating_or_text)

    rating: Literal["up", "down"] | None = omittable()
    text: Words | None = omittable()

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.rating is None and self.text is None:
            raise ValueError("give a rating, a text, or both")
        return self


class BoardFeedback(_Feedback):
    target: Literal["board"]
    board_id: BoardId


class SectionFeedback(_Feedback):
    target: Literal["section"]
    board_id: BoardId
    section: str = Field(pattern=NAME)


class ActivityFeedback(_Feedback):
    target: Literal["activity"]
    activity_id: str = Field(pattern=ACTIVITY_ID)


class FeedbackIn(
    RootModel[
        Annotated[BoardFeedback | SectionFeedback | ActivityFeedback, Field(discriminator="target")]
    ]
):
    """A reaction to a board, one of its sections, or an activity: a rating, words, or both."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"target": "board", "board_id": 1, "rating": "up"},
                {
                    "target": "section",
                    "board_id": 1,
                    "section": "training_load",
                    "text": "Spot on.",
                },
                {
                    "target": "activity",
                    "activity_id": "act_1",
                    "rating": "down",
                    "text": "Too hard.",
                },
            ]
        }
    )


class CheckInIn(BaseModel):
    """How the athlete feels today: scores from 1 (bad) to 5 (great), and words if they like."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"mood": 4, "energy": 3, "soreness": 2, "text": "Legs a bit heavy."}]
        },
    )

    mood: Score
    energy: Score | None = omittable()
    soreness: Score | None = omittable()
    sleep_quality: Score | None = omittable()
    text: Words | None = omittable()


class FeedbackOut(BaseModel):
    id: int
    target: str
    board_id: int | None
    section: str | None
    activity_id: str | None
    rating: str | None
    text: str | None
    written_at: datetime


class CheckInOut(BaseModel):
    id: int
    day: date
    mood: int
    energy: int | None
    soreness: int | None
    sleep_quality: int | None
    text: str | None
    written_at: datetime
