"""The contract of ``/users``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

Units = Literal["metric", "imperial"]
_TIMEZONES = frozenset(available_timezones())


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
    """The fields a user may change about themselves; nothing else is writable."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=100)
    locale: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
    timezone: str | None = Field(None, max_length=64)
    units: Units | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in _TIMEZONES:
            raise ValueError("must be an IANA time zone such as 'Europe/Paris'")
        return value
