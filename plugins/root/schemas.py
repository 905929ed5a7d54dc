"""The contract of ``GET /``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RootSettings(BaseModel):
    """``[plugins.root.settings]``."""

    model_config = ConfigDict(extra="forbid")

    service_name: str = Field("imperfect-api", min_length=1, max_length=100)


class Family(BaseModel):
    """An enabled route family."""

    name: str
    version: str
    description: str
    source: str


class LeftOutFamily(BaseModel):
    """A listed route family that does not serve, and why."""

    name: str
    status: Literal["disabled", "skipped"]
    reason: str


class Links(BaseModel):
    openapi: str
    docs: str
    health: str
    ready: str


class ServiceInfo(BaseModel):
    """What this deployment is and which families it serves."""

    name: str
    version: str
    environment: str
    families: list[Family]
    left_out: list[LeftOutFamily]
    links: Links
