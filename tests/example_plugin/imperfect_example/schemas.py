from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core import Family


class ExampleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = "Hello"
    api_key: SecretStr
    max_notes: int = Field(100, ge=1)
    # The Postbox chat channel (channel.py): its webhook key and where it sends.
    postbox_secret: SecretStr = SecretStr("")
    postbox_url: str = ""


FAMILY = Family(__package__, ExampleSettings)
"""This family in the running app, whatever the deployer named it in plugins.toml."""


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=500)


class NoteOut(BaseModel):
    id: int
    text: str
    owner_uid: str
    created_at: datetime
