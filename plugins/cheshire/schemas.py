"""The contract of the ``cheshire`` family: its settings, requests, answers and stream events.

Also the family's handle on itself (:data:`FAMILY`) and the key of its run-time state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from core import EventStream, Family, StashKey
from plugins.cheshire.clients import CheshireClient


class CheshireSettings(BaseModel):
    """``[plugins.cheshire.settings]``."""

    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl = HttpUrl("http://127.0.0.1:8300")
    api_key: SecretStr = Field(
        SecretStr(""), description="the service key cheshire gave us (CHESHIRE_API_KEY)"
    )
    connect_timeout: float = Field(2.0, gt=0, le=30, description="seconds")
    read_timeout: float = Field(
        30.0,
        gt=0,
        le=300,
        description="seconds: for a whole JSON answer, and for a stream's headers",
    )
    chunk_timeout: float = Field(
        20.0,
        gt=0,
        le=300,
        description="seconds a stream may stay silent (no event, no keep-alive) before "
        "it counts as stalled",
    )


FAMILY = Family(__package__, CheshireSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""

CHESHIRE_CLIENT = StashKey[CheshireClient]("cheshire")

Status = Literal["pending", "answered", "failed", "interrupted"]
Stage = Literal["planning", "querying", "charting", "writing", "working"]
StreamErrorCode = Literal["upstream_unavailable", "upstream_timeout", "upstream_invalid"]


class QuestionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How did my long runs go this month?"}]},
    )

    question: str = Field(
        min_length=1, max_length=2000, description="What the user asks, in their words."
    )

    @field_validator("question")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is blank")
        if "\x00" in value:
            raise ValueError("the question holds a NUL character")
        return value


class CheshireChart(BaseModel):
    title: str = Field(max_length=200)
    spec: dict[str, Any] = Field(
        description="A Vega-Lite v5 specification, checked against the Vega-Lite schema."
    )


class QuestionOut(BaseModel):
    id: int
    question: str
    status: Status = Field(
        description="`answered`; `failed` (cheshire down, slow or cut off: `error` says "
        "which); `interrupted` (the client went away mid-stream); `pending` (being answered)."
    )
    text: str = Field(description="The answer's text (what arrived, for an unfinished one).")
    charts: list[CheshireChart]
    error: str | None = Field(description="Why the answer failed: an error code, or null.")
    asked_at: datetime
    answered_at: datetime | None


class QuestionSummary(BaseModel):
    id: int
    question: str
    status: Status
    asked_at: datetime
    answered_at: datetime | None


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    before: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Only questions older than this id."
    )


class QuestionPage(BaseModel):
    items: list[QuestionSummary]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


# --- the stream's events ----------------------------------------------------------------


class QuestionAccepted(BaseModel):
    question_id: int = Field(description="The stored question: `GET /cheshire/questions/{id}`.")


class AnswerProgress(BaseModel):
    stage: Stage = Field(description="The step cheshire started; `working` for any other.")


class AnswerDelta(BaseModel):
    text: str = Field(description="The next piece of the answer's text, in order.")


class AnswerDone(BaseModel):
    question_id: int


class AnswerError(BaseModel):
    code: StreamErrorCode
    message: str = Field(description="What happened, for the user; the question is kept.")


ANSWER_STREAM = EventStream(
    {
        "question": QuestionAccepted,
        "progress": AnswerProgress,
        "delta": AnswerDelta,
        "chart": CheshireChart,
        "done": AnswerDone,
        "error": AnswerError,
    },
    description="`question` first, then `progress`, `delta` and `chart` as cheshire makes "
    "the answer, then `done` or `error`.",
)
