"""The contract of the ``hare`` family: its settings, the rules a source event follows, and
what its export holds. It serves no routes, so it has no requests or responses.

Also the family's handle on itself (:data:`FAMILY`) and the key of its run-time state.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

from core import Family, StashKey
from plugins.hare.clients import HareClient


class HareSettings(BaseModel):
    """``[plugins.hare.settings]``."""

    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl = HttpUrl("http://127.0.0.1:8200")
    api_key: SecretStr = Field(
        SecretStr(""),
        description="the service key hare gave us (HARE_API_KEY); empty: messages wait",
    )
    connect_timeout: float = Field(2.0, gt=0, le=30, description="seconds")
    read_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="seconds; with connect_timeout, under the outbox handler limit",
    )
    max_backlog_age: float = Field(
        3600.0,
        gt=0,
        description="seconds; /readyz fails when the oldest undelivered message is older",
    )
    backfill_page_size: int = Field(200, ge=1, le=1000)
    backfill_retries: int = Field(
        3, ge=0, le=10, description="per event, when hare is unavailable during a backfill"
    )
    backfill_retry_delay: float = Field(1.0, ge=0, le=60, description="seconds, doubling")


FAMILY = Family(__package__, HareSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""

HARE = StashKey[HareClient]("hare")

# --- what a source event must be (hare's limits, docs/services/hare.md) -----------------

MAX_TEXT_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._\-]{0,199}$")
SURFACE = re.compile(r"^[a-z][a-z0-9_]{0,39}(:[a-z0-9][a-z0-9_.\-]{0,39})?$")
REFERENCE_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$")
KNOWN_SURFACES = (
    "intake",
    "race_recommendation",
    "home_check_in",
    "board_reply",
    "channel:<name>",
)
"""The surfaces families write today; any name matching :data:`SURFACE` is accepted."""


class UndeliveredEvent(BaseModel):
    """One event in the export: recorded, not yet in hare (or refused by it)."""

    idempotency_key: str
    surface: str
    text: str
    written_at: datetime
    reference_type: str
    reference_id: str
    language: str | None
    status: str
    queued_at: datetime


class HareExport(BaseModel):
    undelivered: list[UndeliveredEvent]
