"""The contract of the ``users`` family: its settings, requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from core import Family

Units = Literal["metric", "imperial"]
Sport = Literal[
    "running",
    "trail_running",
    "cycling",
    "mountain_biking",
    "triathlon",
    "swimming",
    "rowing",
    "other",
]
Level = Literal["beginner", "intermediate", "advanced", "elite"]
DevicePlatform = Literal["ios", "android", "web"]
NotificationStatus = Literal["queued", "sent", "failed", "muted", "no_devices"]
DeliveryStatus = Literal["pending", "sent", "failed", "skipped"]
SINGLE_LINE = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL refuses NUL)
Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,39}$")]
# single-line, and not only spaces: a pattern, so the spec says exactly what is accepted
Goal = Annotated[
    str,
    StringConstraints(
        max_length=200, pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
    ),
]

# Request bodies are JSON, which has types: take them as they are (no 0 for false, no
# "1990" for 1990) and refuse unknown fields.
BODY = ConfigDict(extra="forbid", strict=True)


def _integral(value: Any) -> Any:
    """JSON Schema counts 190.0 as an integer, so it is one here too."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Integers as JSON Schema means them; the bounds come before the validator so that the
# document shows them.
BirthYear = Annotated[int, Field(ge=1900, le=2100), BeforeValidator(_integral)]
HeartRate = Annotated[int, Field(ge=100, le=230), BeforeValidator(_integral)]
_TIMEZONES = frozenset(available_timezones()) - {"Factory", "localtime"}


class UsersSettings(BaseModel):
    """``[plugins.users.settings]``."""

    model_config = ConfigDict(extra="forbid")

    fcm_url: str = Field(
        "",
        description="Base URL of the FCM HTTP v1 API; empty for Google's. Tests and local "
        "setups point it at an FCM-compatible fake: a URL not on googleapis.com is sent a "
        "fixed bearer token and needs no Google credential.",
    )
    fcm_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Connect and read time limit of one FCM send, and of one request for "
        "an access token.",
    )
    recent_sign_in_seconds: int = Field(300, ge=10, le=86400)
    max_devices: int = Field(20, ge=1, le=100)

    @field_validator("fcm_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError("must be an http(s) URL such as 'http://127.0.0.1:9098'")
        return value.rstrip("/")


FAMILY = Family(__package__, UsersSettings)
"""This family in the running app: ``FAMILY.settings``, ``FAMILY.stash[PUSH_SENDER]``."""


def _omittable(enum: list[str] | None = None, **constraints: Any) -> Any:
    """A field that may be left out but, when given, must not be ``null``.

    Its default is never validated nor shown in the schema, so the contract
    says exactly what a client may send.
    """

    def drop_default(schema: dict[str, Any]) -> None:
        schema.pop("default", None)
        if enum is not None:
            schema["enum"] = enum

    return Field(None, json_schema_extra=drop_default, **constraints)


# --- /users ----------------------------------------------------------------------------


class UserOut(BaseModel):
    """The caller's user record."""

    id: int
    firebase_uid: str
    email: str | None
    display_name: str | None
    locale: str
    timezone: str
    units: Units
    created_at: datetime
    updated_at: datetime


class UserPatch(BaseModel):
    """The fields a user may change about themselves; nothing else is writable.

    Omitted fields stay as they are. Only ``display_name`` may be cleared with
    ``null``; the others always have a value, so ``null`` is refused.
    """

    model_config = BODY

    display_name: str | None = Field(None, min_length=1, max_length=100, pattern=SINGLE_LINE)
    locale: str = _omittable(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
    timezone: str = _omittable(enum=sorted(_TIMEZONES), max_length=64)
    units: Units = _omittable()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if value not in _TIMEZONES:
            raise ValueError("must be an IANA time zone such as 'Europe/Paris'")
        return value


# --- /users_profiles -------------------------------------------------------------------


class ProfileFields(BaseModel):
    """What an athlete profile holds, with the ranges a coach would accept."""

    model_config = BODY

    weekly_hours: float | None = Field(None, ge=0, le=40, description="Training hours a week.")
    goals: list[Goal] = Field(default_factory=list, max_length=10)
    birth_year: BirthYear | None = None
    max_heart_rate: HeartRate | None = None


class ProfileIn(ProfileFields):
    """A new athlete profile; one per sport."""

    sport: Sport
    level: Level


class ProfilePatch(ProfileFields):
    """Changes to a profile: only the fields sent change; null clears an optional one."""

    sport: Sport = _omittable()
    level: Level = _omittable()
    goals: list[Goal] = _omittable(max_length=10)


class ProfileOut(BaseModel):
    id: int
    sport: Sport
    level: Level
    weekly_hours: float | None
    goals: list[str]
    birth_year: int | None
    max_heart_rate: int | None
    created_at: datetime
    updated_at: datetime


# --- /notifications --------------------------------------------------------------------


class DeviceIn(BaseModel):
    """A device's FCM registration token."""

    model_config = BODY

    token: str = Field(min_length=20, max_length=512, pattern=r"^[A-Za-z0-9_:.-]+$")
    platform: DevicePlatform


class DeviceOut(BaseModel):
    id: int
    token: str
    platform: DevicePlatform
    created_at: datetime
    registered_at: datetime


class PreferencesOut(BaseModel):
    push_enabled: bool
    muted_categories: list[str] = Field(
        description="Categories of push the user does not want (e.g. 'events')."
    )


class PreferencesPatch(BaseModel):
    model_config = BODY

    push_enabled: bool = _omittable()
    muted_categories: list[Category] = _omittable(max_length=50)


class DeliveryOut(BaseModel):
    device_id: int | None
    platform: DevicePlatform
    status: DeliveryStatus
    error: str | None
    sent_at: datetime | None


class NotificationOut(BaseModel):
    id: int
    category: str
    title: str
    body: str
    data: dict[str, str]
    status: NotificationStatus
    created_at: datetime
    sent_at: datetime | None
    deliveries: list[DeliveryOut]

    @field_validator("deliveries", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> list[Any]:
        return list(value)  # a prefetched Tortoise relation is iterable, not a list


class NotificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    before: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Only notifications older than this id."
    )


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


# --- /account --------------------------------------------------------------------------


class AccountDeletionOut(BaseModel):
    """How far an account deletion got. ``families`` says, per family, whether it erased
    its part; ``waiting_for`` names what holds a pending deletion up (a family, or
    ``firebase`` for the sign-in itself)."""

    status: Literal["pending", "done"]
    requested_at: datetime
    completed_at: datetime | None
    families: dict[str, bool]
    waiting_for: str | None


class AccountExport(BaseModel):
    """Everything every enabled family holds about the caller."""

    exported_at: datetime
    user: UserOut
    families: dict[str, Any]
