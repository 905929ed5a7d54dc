"""Terra widget sessions and mobile SDK tokens for the caller; Terra-backed providers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from core import ApiError, User
from plugins.terra.clients import AliceReferences, TerraClient
from plugins.terra.models import TerraReference
from plugins.terra.schemas import SdkTokenOut, TerraSettings, WidgetSessionOut

SESSION_PATH = "/session"
SDK_TOKEN_PATH = "/session/sdk-token"
REFERENCE_BYTES = 24  # 192 random bits: 32 url-safe characters


@dataclass(frozen=True)
class TerraProvider:
    """A source reached through Terra: its Terra resource name and catalogue entry."""

    resource: str
    display_name: str
    kind: str
    connect: str

    @property
    def connect_path(self) -> str:
        return SESSION_PATH if self.connect == "widget" else SDK_TOKEN_PATH


PROVIDERS: dict[str, TerraProvider] = {
    "coros": TerraProvider("COROS", "COROS", "device", "widget"),
    "suunto": TerraProvider("SUUNTO", "Suunto", "device", "widget"),
    "wahoo": TerraProvider("WAHOO", "Wahoo", "device", "widget"),
    "apple_health": TerraProvider("APPLE", "Apple Health", "phone", "sdk"),
    "samsung_health": TerraProvider("SAMSUNG", "Samsung Health", "phone", "sdk"),
}


def catalogue_entries(settings: TerraSettings) -> list[dict[str, str]]:
    """The configured providers in the shape the ``health_providers`` hook takes."""
    return [
        {
            "name": name,
            "display_name": PROVIDERS[name].display_name,
            "kind": PROVIDERS[name].kind,
            "connect": PROVIDERS[name].connect,
            "connect_path": PROVIDERS[name].connect_path,
        }
        for name in settings.providers
    ]


def _client(terra: TerraClient | None) -> TerraClient:
    if terra is None:
        raise ApiError(
            503,
            "terra_not_configured",
            "Terra is not configured on this deployment (no dev_id and api_key).",
        )
    return terra


async def reference_for(user: User) -> str:
    """The user's Terra reference: 192 random bits, made on first use and kept.

    Never the user id: ids are sequential, and the SDK path hands the reference to the
    app, so a modified client could otherwise name any user. Concurrent first calls
    make one row (the user is unique; the loser reads the winner's).
    """
    found = await TerraReference.get_or_none(user_id=user.id)
    if found is not None:
        return found.reference_id
    try:
        made = await TerraReference.create(
            user_id=user.id, reference_id=secrets.token_urlsafe(REFERENCE_BYTES)
        )
    except IntegrityError:
        made = await TerraReference.get(user_id=user.id)
    return made.reference_id


async def _registered_reference(alice: AliceReferences, user: User) -> str:
    """The user's reference, after alice has recorded which user it stands for.

    alice learns it before Terra can send anything tagged with it (the ``PUT`` is
    idempotent, so it is simply repeated on every session: it also repairs a mapping
    alice lost).
    """
    reference = await reference_for(user)
    await alice.register(reference, user.id)
    return reference


async def widget_session(
    terra: TerraClient | None, alice: AliceReferences, settings: TerraSettings, user: User
) -> WidgetSessionOut:
    """A widget session tagged with the caller's opaque Terra reference.

    Terra sends that reference back in its webhooks (to alice), which maps it to this
    user: that is how the connection is tied to the user.
    """
    client = _client(terra)
    reference = await _registered_reference(alice, user)
    widget = [PROVIDERS[name].resource for name in settings.providers if _is_widget(name)]
    session = await client.widget_session(
        reference_id=reference,
        providers=widget,
        language=settings.language,
        success_url=settings.success_redirect_url,
        failure_url=settings.failure_redirect_url,
    )
    return WidgetSessionOut(
        session_id=session.session_id,
        url=session.url,
        expires_in=session.expires_in,
        expires_at=datetime.now(UTC) + timedelta(seconds=session.expires_in),
    )


async def sdk_token(terra: TerraClient | None, alice: AliceReferences, user: User) -> SdkTokenOut:
    """A short-lived token for the mobile SDK, with the caller's reference for the app to pass.

    The app could pass another value to the SDK, but only a reference alice has mapped
    to a user is tied to anyone, and references are unguessable.
    """
    client = _client(terra)
    reference = await _registered_reference(alice, user)
    token = await client.auth_token()
    return SdkTokenOut(
        token=token.token,
        reference_id=reference,
        expires_in=token.expires_in,
        expires_at=datetime.now(UTC) + timedelta(seconds=token.expires_in),
    )


async def forget_user(alice: AliceReferences, user: User) -> None:
    """alice forgets the user's reference, then the row goes. Safe to repeat.

    A failing alice raises before the row is deleted, so the deletion is retried and a
    reference is never left mapped at alice to a user id that may be reused.
    """
    found = await TerraReference.get_or_none(user_id=user.id)
    if found is None:
        return
    await alice.forget(found.reference_id)
    await found.delete()


async def export_user(user: User) -> dict[str, Any]:
    found = await TerraReference.get_or_none(user_id=user.id)
    return {"reference_id": found.reference_id if found else None}


def _is_widget(name: str) -> bool:
    return PROVIDERS[name].connect == "widget"
