"""The contract of ``/users``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

Units = Literal["metric", "imperial"]
_TIMEZONES = frozenset(available_timezones()) - {"Factory", "localtime"}


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

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=100)
    locale: str = _omittable(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
    timezone: str = _omittable(enum=sorted(_TIMEZONES), max_length=64)
    units: Units = _omittable()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if value not in _TIMEZONES:
            raise ValueError("must be an IANA time zone such as 'Europe/Paris'")
        return value
