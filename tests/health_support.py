"""Shared set-up for the health_providers and terra tests: families, users, the OAuth dance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from quart.testing import QuartClient

from core.emulator import AuthEmulator
from tests.fakes.alice import FakeAlice

PUBLIC_URL = "http://api.imperfect.test"
APP_URL = "https://app.imperfect.test/connections"


def health_settings(alice_url: str, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "alice_url": alice_url,
        "alice_connect_timeout": 0.5,
        "alice_read_timeout": 0.5,
        "public_url": PUBLIC_URL,
        "app_redirect_url": APP_URL,
    }
    settings.update(overrides)
    return settings


def families(
    alice_url: str, *, terra: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """``users`` + ``health_providers`` (+ ``terra`` when given its settings, + ``extra``)."""
    plugins: dict[str, Any] = {
        "users": {"module": "plugins.users"},
        "health_providers": {
            "module": "plugins.health_providers",
            "settings": health_settings(alice_url, **extra.pop("settings", {})),
        },
    }
    if terra is not None:
        plugins["terra"] = {"module": "plugins.terra", "settings": terra}
    plugins.update(extra)
    return plugins


@dataclass
class Member:
    """A signed-up user with a local record."""

    id: int
    uid: str
    headers: dict[str, str]


async def member(client: QuartClient, emulator: AuthEmulator) -> Member:
    account = emulator.sign_up(f"runner-{uuid.uuid4().hex[:10]}@example.com", "pass-word-1")
    headers = {"Authorization": f"Bearer {account.id_token}"}
    response = await client.post("/users", headers=headers)
    assert response.status_code == 201, await response.get_data()
    return Member((await response.get_json())["id"], account.uid, headers)


async def consent(authorize_url: str, *, deny: bool = False) -> str:
    """Open the authorize URL like a browser; return the callback path the provider sends to."""
    url = authorize_url + ("&deny=1" if deny else "")
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(PUBLIC_URL), location
    return location.removeprefix(PUBLIC_URL)


async def start_connect(client: QuartClient, who: Member, provider: str = "garmin") -> str:
    """``POST .../connect`` then the consent page: the callback path with code and state."""
    started = await client.post(f"/health-providers/{provider}/connect", headers=who.headers)
    assert started.status_code == 200, await started.get_data()
    return await consent((await started.get_json())["authorize_url"])


def redirected(response: Any) -> dict[str, str]:
    """The app URL a callback redirected to, as its query parameters."""
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(APP_URL + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def pending(response: Any, provider: str = "garmin") -> str:
    """The ``completion`` of a callback that redirected with ``status=pending``."""
    params = redirected(response)
    assert params.keys() == {"status", "provider", "completion"}, params
    assert (params["status"], params["provider"]) == ("pending", provider), params
    assert len(params["completion"]) >= 43  # 256 random bits, url-safe
    return params["completion"]


async def redeem(
    client: QuartClient, who: Member, completion: str, provider: str = "garmin"
) -> Any:
    """The app's ``POST .../complete`` with its user's token."""
    return await client.post(
        f"/health-providers/{provider}/complete",
        json={"completion": completion},
        headers=who.headers,
    )


async def connect(client: QuartClient, who: Member, provider: str = "garmin") -> None:
    """The whole journey up to a connected provider: connect, consent, callback, redeem."""
    callback = await start_connect(client, who, provider)
    completion = pending(await client.get(callback), provider)
    completed = await redeem(client, who, completion, provider)
    assert completed.status_code == 200, await completed.get_data()
    assert (await completed.get_json())["status"] == "connected"


def alice_connected(alice: FakeAlice, who: Member, provider: str) -> bool:
    return (str(who.id), provider) in alice.connections
