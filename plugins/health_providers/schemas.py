"""The contract of the ``health_providers`` family: its settings, requests and responses.

Also the family's handle on itself (:data:`FAMILY`) and the keys of its run-time state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
)

from core import Family, Registry, StashKey, Subscription
from plugins.health_providers.clients import AliceClient
from plugins.health_providers.hookspecs import ConnectMethod, ProviderKind, ProviderSpec

MIN_SIGNING_KEY = 32


class HealthProvidersSettings(BaseModel):
    """``[plugins.health_providers.settings]``."""

    model_config = ConfigDict(extra="forbid")

    alice_url: HttpUrl = HttpUrl("http://127.0.0.1:8100")
    alice_connect_timeout: float = Field(2.0, gt=0, description="seconds")
    alice_read_timeout: float = Field(10.0, gt=0, description="seconds")
    alice_retries: int = Field(2, ge=0, le=5, description="for idempotent calls only")
    public_url: HttpUrl = Field(
        HttpUrl("http://127.0.0.1:8000"),
        description="this API as browsers reach it; providers return to its callback route",
    )
    app_redirect_url: str = Field(
        "imperfect://health-providers",
        description="where the callback sends the browser, with status, provider and reason",
    )
    state_ttl_seconds: int = Field(600, ge=60, le=3600)
    redis_url: str = Field("", description="alice's Redis; empty turns events off")
    event_channel_prefix: str = Field("alice.", max_length=100)
    event_signing_key: SecretStr = Field(
        SecretStr(""),
        description=(
            "the key alice signs its events with (HMAC-SHA256), at least 32 characters; "
            "empty: every event is refused"
        ),
    )
    insights_days: int = Field(28, ge=7, le=365)
    reconcile_interval_seconds: float = Field(
        300.0,
        ge=0,
        le=86400,
        description=(
            "seconds (jittered by ±25%) between sweeps of alice's change feed for events no "
            "instance received; also swept at start-up and after each Redis reconnect. "
            "0 turns the sweep off"
        ),
    )

    @field_validator("app_redirect_url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        AnyUrl(value)
        return value

    @field_validator("event_signing_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < MIN_SIGNING_KEY:
            raise ValueError(f"must be empty or at least {MIN_SIGNING_KEY} characters")
        return value

    @field_validator("redis_url")
    @classmethod
    def _is_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty or a redis://, rediss:// or unix:// URL")
        return value


FAMILY = Family(__package__, HealthProvidersSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""

PROVIDERS = StashKey[Registry[ProviderSpec]]("providers")
"""Every registered provider by name, with the family that contributed it (at build time)."""
ALICE_CLIENT = StashKey[AliceClient]("alice")
"""alice's HTTP API (from start-up to shutdown)."""
EVENTS = StashKey[Subscription]("events")
"""The subscription to alice's events, when ``redis_url`` is set (from start-up)."""


@dataclass
class EventCounters:
    """What became of alice's messages that were not applied, for the readiness detail."""

    refused: int = 0
    """unsigned or mis-signed (or any message while no ``event_signing_key`` is set)"""


EVENT_COUNTERS = StashKey[EventCounters]("event_counters")
"""The counters of the subscription in :data:`EVENTS` (from start-up, with it)."""


ConnectionStatus = Literal["connected", "revoked", "not_connected"]


class ConnectionOut(BaseModel):
    """The caller's connection to one provider."""

    provider: str
    status: ConnectionStatus
    connected_at: datetime | None = None
    last_sync_at: datetime | None = None
    backfill_completed_at: datetime | None = None
    revoked_at: datetime | None = None


class CatalogueEntry(BaseModel):
    """A provider the caller can connect, with their connection as last known."""

    name: str
    display_name: str
    kind: ProviderKind
    connect: ConnectMethod
    connect_path: str = Field(description="the route (POST) that starts connecting it")
    connection: ConnectionOut


class Catalogue(BaseModel):
    providers: list[CatalogueEntry]


class ConnectOut(BaseModel):
    """Open ``authorize_url`` in a browser; the provider comes back to our callback, which
    sends the browser to the app with a ``completion`` to redeem with ``POST .../complete``."""

    provider: str
    authorize_url: str
    state: str
    expires_at: datetime


class CompleteIn(BaseModel):
    """The ``completion`` the callback gave the app (``status=pending``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"completion": "q3Jb2f1xN0cZrV8mXy7LwA4tQeKp9sUhGd6oRaTzYiE"}]
        },
    )

    completion: str = Field(min_length=1, max_length=512)


class CallbackQuery(BaseModel):
    """What a provider appends to the callback URL (other parameters are ignored)."""

    code: str | None = Field(None, max_length=4096)
    state: str | None = Field(None, max_length=512)
    error: str | None = Field(None, max_length=256)
    error_description: str | None = Field(None, max_length=2048)


class SportVolume(BaseModel):
    sport: str
    sessions: int
    duration_s: int
    distance_m: int


class TrainingVolume(BaseModel):
    """Everything done in the window."""

    sessions: int
    duration_s: int
    distance_m: int
    by_sport: list[SportVolume]


class LongestSession(BaseModel):
    sport: str
    start_time: datetime
    duration_s: int
    distance_m: int | None


class TypicalWeek(BaseModel):
    """Averages per week over the window, and the weekdays trained in most weeks."""

    sessions: float
    duration_s: int
    distance_m: int
    active_days: float
    usual_training_days: list[str]


class RestingHeartRate(BaseModel):
    average_bpm: int
    latest_bpm: int
    latest_date: date
    days_with_data: int


class SleepSummary(BaseModel):
    average_duration_s: int
    nights: int


class Insights(BaseModel):
    """What onboarding shows about the last ``days`` days from one provider."""

    provider: str
    start: date
    end: date
    days: int
    training_volume: TrainingVolume
    longest_session: LongestSession | None
    typical_week: TypicalWeek
    resting_heart_rate: RestingHeartRate | None = Field(
        description="absent when the provider reports no resting heart rate"
    )
    sleep: SleepSummary | None = Field(description="absent when the provider reports no sleep")
    backfill_complete: bool = Field(
        description="false while alice is still importing history: the numbers may grow"
    )
