"""Terra widget sessions and mobile SDK tokens for the caller; Terra-backed providers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core import ApiError, User
from plugins.terra.clients import TerraClient
from plugins.terra.schemas import SdkTokenOut, TerraSettings, WidgetSessionOut

SESSION_PATH = "/session"
SDK_TOKEN_PATH = "/session/sdk-token"


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


async def widget_session(
    terra: TerraClient | None, settings: TerraSettings, user: User
) -> WidgetSessionOut:
    """A widget session whose ``reference_id`` is the caller's user id.

    Terra sends that id back in its webhooks (to alice), which is how the
    connection is tied to this user.
    """
    widget = [PROVIDERS[name].resource for name in settings.providers if _is_widget(name)]
    session = await _client(terra).widget_session(
        reference_id=str(user.id),
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


async def sdk_token(terra: TerraClient | None, user: User) -> SdkTokenOut:
    """A short-lived token for the mobile SDK; the app passes our user id as reference."""
    token = await _client(terra).auth_token()
    return SdkTokenOut(
        token=token.token,
        reference_id=str(user.id),
        expires_in=token.expires_in,
        expires_at=datetime.now(UTC) + timedelta(seconds=token.expires_in),
    )


def _is_widget(name: str) -> bool:
    return PROVIDERS[name].connect == "widget"
