"""The contract of the ``users`` family: its settings, requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from core import Family, Level, SpecComponent, Sport, Units, WholeNumber, omittable, request_body

DevicePlatform = Annotated[
    Literal["ios", "android", "web"],
    SpecComponent("DevicePlatform", "The platform of a device that receives pushes."),
]
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


# Integers as JSON Schema means them; the bounds come before the validator so that the
# document shows them.
BirthYear = Annotated[int, Field(ge=1900, le=2100), WholeNumber]
HeartRate = Annotated[int, Field(ge=100, le=230), WholeNumber]
_TIMEZONES = frozenset(available_timezones()) - {"Factory", "localtime"}


def _known_timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError("must be an IANA time zone such as 'Europe/Paris'")
    return value


TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*)*$"
TIMEZONE_EXAMPLES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"]
# A string, not an enum of the server's zone database: that list changes with tzdata and
# is no type a client can hold. The server checks the name against its zone database.
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=TIMEZONE_PATTERN),
    AfterValidator(_known_timezone),
]
TIMEZONE_DESCRIPTION = (
    "An IANA time zone name (the tz database), such as 'Europe/Paris'. The server accepts "
    "the names its zone database knows; an unknown one is a 422."
)


AttestableRoute = Literal["account_deletion", "device_registration"]
"""The users routes a deployment may guard with attestation (``require_attestation_for``)."""


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
    require_attestation_for: list[AttestableRoute] = Field(
        default_factory=list,
        description="routes that also require the `attested` route requirement (the "
        "attestation family's; start-up refuses the setting when no enabled family defines "
        "it): account_deletion (DELETE /account), device_registration "
        "(POST /notifications/devices)",
    )

    @field_validator("fcm_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError("must be an http(s) URL such as 'http://127.0.0.1:9098'")
        return value.rstrip("/")


FAMILY = Family(__package__, UsersSettings)
"""This family in the running app: ``FAMILY.settings``, ``FAMILY.stash[PUSH_SENDER]``."""


# --- /users ----------------------------------------------------------------------------


class UserOut(BaseModel):
    """The caller's user record."""

    id: int
    firebase_uid: str
    email: str | None
    display_name: str | None
    locale: str = Field(examples=["en", "fr-FR"])
    timezone: str = Field(description="An IANA time zone name.", examples=TIMEZONE_EXAMPLES)
    units: Units
    created_at: datetime
    updated_at: datetime


class UserPatch(BaseModel):
    """The fields a user may change about themselves; nothing else is writable.

    Omitted fields stay as they are. Only ``display_name`` may be cleared with
    ``null``; the others always have a value, so ``null`` is refused.
    """

    model_config = request_body(
        {"display_name": "Ana Runner", "locale": "fr-FR", "timezone": "Europe/Paris"},
        {"units": "imperial"},
        {"display_name": None},
    )

    display_name: str | None = omittable(
        min_length=1,
        max_length=100,
        pattern=SINGLE_LINE,
        description="Shown to coaches; null clears it.",
        examples=["Ana Runner"],
    )
    locale: str = omittable(
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        max_length=35,
        description="A BCP 47 language tag, lower-case language first.",
        examples=["en", "fr-FR", "pt-BR"],
    )
    timezone: TimeZone = omittable(description=TIMEZONE_DESCRIPTION, examples=TIMEZONE_EXAMPLES)
    units: Units = omittable()


# --- /users_profiles -------------------------------------------------------------------


class ProfileFields(BaseModel):
    """What an athlete profile holds, with the ranges a coach would accept."""

    model_config = BODY

    weekly_hours: float | None = omittable(ge=0, le=40, description="Training hours a week.")
    goals: list[Goal] = Field(default_factory=list, max_length=10)
    birth_year: BirthYear | None = omittable()
    max_heart_rate: HeartRate | None = omittable()


class ProfileIn(ProfileFields):
    """A new athlete profile; one per sport. Optional fields left out are empty."""

    model_config = request_body(
        {
            "sport": "running",
            "level": "intermediate",
            "weekly_hours": 6.5,
            "goals": ["Run a sub-4 marathon"],
            "birth_year": 1988,
            "max_heart_rate": 186,
        },
        {"sport": "cycling", "level": "beginner"},
    )

    sport: Sport
    level: Level


class ProfilePatch(ProfileFields):
    """Changes to a profile: only the fields sent change; null clears an optional one."""

    model_config = request_body({"level": "advanced", "weekly_hours": 8}, {"max_heart_rate": None})

    sport: Sport = omittable()
    level: Level = omittable()
    goals: list[Goal] = omittable(max_length=10)


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

    model_config = request_body(
        {"token": "eXampleDeviceToken:APA91bFq3x2ExampleRegistrationToken_0123", "platform": "ios"}
    )

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
    """Only the fields sent change."""

    model_config = request_body({"muted_categories": ["events"]}, {"push_enabled": False})

    push_enabled: bool = omittable()
    muted_categories: list[Category] = omittable(max_length=50)


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
