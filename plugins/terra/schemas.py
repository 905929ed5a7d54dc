"""The contract of the ``terra`` family: its settings and responses.

Also the family's handle on itself (:data:`FAMILY`) and the key of its Terra client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from core import Family, StashKey
from plugins.terra.clients import AliceReferences, TerraClient

TerraProviderName = Literal["coros", "suunto", "wahoo", "apple_health", "samsung_health"]


class TerraSettings(BaseModel):
    """``[plugins.terra.settings]``. Without ``dev_id`` and ``api_key`` the routes answer 503."""

    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl = HttpUrl("https://api.tryterra.co/v2")
    dev_id: str = ""
    api_key: SecretStr = SecretStr("")
    providers: list[TerraProviderName] = Field(
        default=["coros", "suunto", "wahoo", "apple_health", "samsung_health"],
        description="the Terra-backed providers this deployment offers",
    )
    language: str = Field("en", pattern=r"^[a-z]{2}$")
    success_redirect_url: str = "imperfect://health-providers?status=connected"
    failure_redirect_url: str = "imperfect://health-providers?status=error"
    alice_url: HttpUrl = Field(
        HttpUrl("http://127.0.0.1:8100"),
        description="alice, which learns which user each Terra reference_id stands for",
    )
    connect_timeout: float = Field(2.0, gt=0, description="seconds, for Terra and alice")
    read_timeout: float = Field(10.0, gt=0, description="seconds, for Terra and alice")

    @field_validator("success_redirect_url", "failure_redirect_url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        AnyUrl(value)
        return value

    @field_validator("providers")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a provider twice")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.dev_id and self.api_key.get_secret_value())


FAMILY = Family(__package__, TerraSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""

TERRA_CLIENT = StashKey[TerraClient]("terra")
"""Terra's API, set at start-up only when the deployment has Terra credentials."""
ALICE_CLIENT = StashKey[AliceReferences]("alice")
"""alice's Terra-reference calls (from start-up to shutdown)."""


class WidgetSessionOut(BaseModel):
    """Open ``url`` (Terra's widget) in a browser before ``expires_at``."""

    session_id: str
    url: str
    expires_in: int = Field(description="seconds")
    expires_at: datetime


class SdkTokenOut(BaseModel):
    """Pass ``token`` and ``reference_id`` to the Terra mobile SDK's ``initConnection``."""

    token: str
    reference_id: str = Field(
        description="the caller's opaque Terra reference (the same on every call)"
    )
    expires_in: int = Field(description="seconds; mint a new token per connection attempt")
    expires_at: datetime
