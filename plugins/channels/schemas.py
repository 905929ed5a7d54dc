"""The contract of the ``channels`` family: its settings, requests and responses.

Also the family's handle on itself (:data:`FAMILY`) and the keys of its run-time state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from core import Family, Registry, StashKey, request_body
from plugins.channels.hookspecs import Capability, Channel


class WhatsAppSettings(BaseModel):
    """``[plugins.channels.settings.whatsapp]``: the Meta app and the business number."""

    model_config = ConfigDict(extra="forbid")

    app_secret: SecretStr = Field(
        SecretStr(""), description="the Meta app secret that signs webhooks (X-Hub-Signature-256)"
    )
    verify_token: SecretStr = Field(
        SecretStr(""), description="the token typed into Meta's dashboard for the GET handshake"
    )
    access_token: SecretStr = Field(
        SecretStr(""), description="a system-user token with whatsapp_business_messaging"
    )
    phone_number_id: str = Field("", pattern=r"^[0-9]{0,32}$")
    graph_url: HttpUrl = HttpUrl("https://graph.facebook.com")
    graph_version: str = Field("v21.0", pattern=r"^v[0-9]{1,3}\.[0-9]$")
    template_name: str = Field(
        "message_waiting",
        pattern=r"^[a-z0-9_]{1,512}$",
        description="an approved template with one body parameter, used outside 24 h",
    )
    template_language: str = Field("en", pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")
    connect_timeout: float = Field(2.0, gt=0, le=30)
    read_timeout: float = Field(5.0, gt=0, le=30)


class HeyloSettings(BaseModel):
    """``[plugins.channels.settings.heylo]``: our signed webhook, and Heylo's admin API."""

    model_config = ConfigDict(extra="forbid")

    webhook_secret: SecretStr = Field(
        SecretStr(""), description="the key of docs/services/heylo.md's signature (32+ chars)"
    )
    replay_window_seconds: int = Field(300, ge=30, le=3600)
    api_url: HttpUrl = HttpUrl("https://api.heylo.com")
    api_key: SecretStr = Field(SecretStr(""), description="Heylo's admin API key")
    community_id: str = Field("", max_length=128)
    connect_timeout: float = Field(2.0, gt=0, le=30)
    read_timeout: float = Field(5.0, gt=0, le=30)

    @field_validator("webhook_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if 0 < len(secret.get_secret_value()) < 32:
            raise ValueError("webhook_secret must be empty (off) or at least 32 characters")
        return secret


class ChannelsSettings(BaseModel):
    """``[plugins.channels.settings]``."""

    model_config = ConfigDict(extra="forbid")

    code_ttl_seconds: int = Field(600, ge=60, le=86400, description="a link code's life")
    code_max_attempts: int = Field(5, ge=1, le=20, description="wrong codes before it dies")
    reference_ttl_seconds: int = Field(7 * 86400, ge=60, le=90 * 86400)
    link_hint: str = Field(
        "Hello! We can't read messages from this number yet. To chat with us here, open "
        "the app, go to Settings > Chat apps, tap Link, and send us the code it shows.",
        min_length=1,
        max_length=1000,
        description="the one reply an unlinked identity gets",
    )
    whatsapp: WhatsAppSettings = WhatsAppSettings()
    heylo: HeyloSettings = HeyloSettings()


FAMILY = Family(__package__, ChannelsSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""

CHANNELS = StashKey[Registry[Channel]]("channels")

# --- requests and responses ---------------------------------------------------------------

Code = Field(
    pattern=r"^[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}$",
    description="the 8-character code, with or without its dash",
)


class ChannelOut(BaseModel):
    name: str
    display_name: str
    capabilities: list[Capability]
    configured: bool


class ChannelList(BaseModel):
    channels: list[ChannelOut]


class WebhookAccepted(BaseModel):
    """A verified delivery, queued: how many of its messages were new."""

    messages: int = Field(description="messages in the delivery")
    new_messages: int = Field(description="messages not seen before (queued for handling)")
    statuses: int


class HandshakeQuery(BaseModel):
    """Meta's webhook verification request."""

    model_config = ConfigDict(populate_by_name=True)

    mode: str = Field("", alias="hub.mode", max_length=32)
    verify_token: str = Field("", alias="hub.verify_token", max_length=512)
    challenge: str = Field("", alias="hub.challenge", max_length=512)


class InboundCodeIn(BaseModel):
    model_config = request_body({"channel": "whatsapp"}, strict=False)

    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$", description="a registered channel")


class InboundCodeOut(BaseModel):
    channel: str
    code: str = Field(description="send this from the chat app; shown once")
    expires_at: datetime
    instructions: str


class PhoneIn(BaseModel):
    model_config = request_body({"phone_number": "+14155552671"}, strict=False)

    phone_number: str = Field(
        pattern=r"^\+[1-9][0-9 ().-]{5,30}$",
        description="E.164 (+, country code, number; spaces, dots, dashes and brackets "
        "are ignored), such as +14155552671; a number that does not exist is a 400",
    )


class PhoneCodeOut(BaseModel):
    id: int = Field(description="confirm with POST /whatsapp_associations/{id}/confirm")
    phone_number: str
    expires_at: datetime


class ConfirmIn(BaseModel):
    model_config = request_body({"code": "K7QM-2XPA"}, strict=False)

    code: str = Code


class LinkOut(BaseModel):
    id: int
    channel: str
    identity: str = Field(description="the chat identity (a phone number's digits, a member id)")
    status: Literal["active", "undeliverable"]
    linked_at: datetime


class LinkList(BaseModel):
    links: list[LinkOut]


class ReferenceOut(BaseModel):
    id: str
    sender: str = Field(description="the family that sent the message")
    subject: str
    text: str
    expires_at: datetime
    answer: Literal["confirmed", "declined"] | None
    answered_at: datetime | None


class ReferenceAnswerIn(BaseModel):
    model_config = request_body({"answer": "confirmed"}, strict=False)

    answer: Literal["confirmed", "declined"]


ALERTS = StashKey[dict[str, str]]("alerts")
"""Per channel, why sending stopped (credentials refused); ``/readyz`` reports it."""
