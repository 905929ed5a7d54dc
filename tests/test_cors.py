"""CORS as a core setting: preflights answered by core's pipeline, exact origins only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.config import CoreSettings
from core.errors import ConfigError
from tests.support import bearer, new_account

PLUGINS = {"example": {"entry_point": "example", "settings": {"api_key": "k"}}}
ALLOWED = "https://app.example"
OTHER = "https://evil.example"
CORS = {"cors_origins": f"{ALLOWED}, http://localhost:5173"}
ROUTE = "/example/notes"  # signed in


def preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.fixture
def handler_calls() -> Iterator[list[str]]:
    """Every call that reaches a view function, recorded (see :func:`count_calls`)."""
    yield []


def count_calls(client: Any, calls: list[str]) -> None:
    """Wrap every view function of the app so that reaching one is recorded."""
    views = client.app.view_functions
    for name, view in list(views.items()):

        async def counted(*args: Any, __view: Any = view, __name: str = name, **kwargs: Any):
            calls.append(__name)
            return await __view(*args, **kwargs)

        views[name] = counted


async def test_a_preflight_from_an_allowed_origin_is_204_without_reaching_the_handler(
    app_client, handler_calls
):
    async with app_client(PLUGINS, **CORS) as client:
        count_calls(client, handler_calls)
        response = await client.options(ROUTE, headers=preflight(ALLOWED))
        assert response.status_code == 204
        assert await response.get_data() == b""
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
        assert {"GET", "POST", "DELETE"} <= methods
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert "Origin" in response.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in response.headers
        assert response.headers["X-Request-ID"]
        # the second allowed origin, and a route that does not exist: still core's answer
        other = await client.options("/nowhere", headers=preflight("http://localhost:5173", "GET"))
        assert other.status_code == 204
        assert other.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert handler_calls == []


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (OTHER, "POST", "authorization"),
        ("null", "GET", ""),
        ("https://app.example.evil.example", "GET", ""),
        ("http://app.example", "GET", ""),  # another scheme is another origin
        ("https://app.example:8443", "GET", ""),  # so is another port
        (ALLOWED, "TRACE", ""),
        (ALLOWED, "GET", "authorization, x-secret"),
    ],
)
async def test_a_preflight_that_is_not_allowed_is_403_json_without_acao(
    app_client, handler_calls, origin, method, headers
):
    async with app_client(PLUGINS, **CORS) as client:
        count_calls(client, handler_calls)
        response = await client.options(ROUTE, headers=preflight(origin, method, headers))
        assert response.status_code == 403
        body = await response.get_json()
        assert body["code"] == "cors_refused" and body["detail"]
        assert "Access-Control-Allow-Origin" not in response.headers
        assert response.headers["X-Request-ID"]
    assert handler_calls == []


async def test_actual_responses_carry_acao_and_vary_for_allowed_origins_only(
    app_client, auth_emulator, handler_calls
):
    account = new_account(auth_emulator)
    async with app_client(PLUGINS, **CORS) as client:
        count_calls(client, handler_calls)
        allowed = await client.get(ROUTE, headers={**bearer(account), "Origin": ALLOWED})
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "Origin" in allowed.headers["Vary"]
        assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]

        # an error is readable by the allowed origin too (the browser shows the 401)
        refused = await client.get(ROUTE, headers={"Origin": ALLOWED})
        assert refused.status_code == 401
        assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED

        other = await client.get(ROUTE, headers={**bearer(account), "Origin": OTHER})
        assert other.status_code == 200  # CORS is the browser's rule, not authorisation
        assert "Access-Control-Allow-Origin" not in other.headers
        assert "Origin" in other.headers["Vary"]

        same_origin = await client.get(ROUTE, headers=bearer(account))
        assert "Access-Control-Allow-Origin" not in same_origin.headers
    assert len(handler_calls) == 4  # the four GETs (auth is checked in the view), no OPTIONS


async def test_credentials_are_allowed_only_when_configured(app_client, auth_emulator):
    account = new_account(auth_emulator)
    async with app_client(PLUGINS, **CORS, cors_credentials=True, cors_max_age=60) as client:
        response = await client.options(ROUTE, headers=preflight(ALLOWED))
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Access-Control-Max-Age"] == "60"
        actual = await client.get(ROUTE, headers={**bearer(account), "Origin": ALLOWED})
        assert actual.headers["Access-Control-Allow-Credentials"] == "true"


async def test_without_origins_cors_is_off_and_preflights_are_refused(
    app_client, auth_emulator, handler_calls
):
    account = new_account(auth_emulator)
    async with app_client(PLUGINS) as client:
        count_calls(client, handler_calls)
        response = await client.options(ROUTE, headers=preflight(ALLOWED))
        assert response.status_code == 403
        assert (await response.get_json())["code"] == "cors_refused"
        assert "Access-Control-Allow-Origin" not in response.headers
        actual = await client.get(ROUTE, headers={**bearer(account), "Origin": ALLOWED})
        assert actual.status_code == 200
        assert "Access-Control-Allow-Origin" not in actual.headers
    assert len(handler_calls) == 1  # the signed-in GET


def test_cors_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPERFECT_CORS_ORIGINS", " https://App.Example:443 ,http://localhost:5173")
    monkeypatch.setenv("IMPERFECT_CORS_METHODS", "get, post")
    monkeypatch.setenv("IMPERFECT_CORS_CREDENTIALS", "true")
    settings = CoreSettings.from_env()
    assert settings.cors_origin_set == {"https://app.example", "http://localhost:5173"}
    assert settings.cors_methods == "GET,POST"
    assert settings.cors_credentials is True
    for bad in ("https://app.example/", "app.example", "*", "https://app.example/path", "null"):
        monkeypatch.setenv("IMPERFECT_CORS_ORIGINS", bad)
        with pytest.raises(ConfigError) as raised:
            CoreSettings.from_env()
        assert str(raised.value).startswith("invalid environment: IMPERFECT_CORS_ORIGINS: ")
        assert "\n" not in str(raised.value)
    monkeypatch.setenv("IMPERFECT_CORS_ORIGINS", "")
    monkeypatch.setenv("IMPERFECT_CORS_MAX_AGE", "-1")
    with pytest.raises(ConfigError, match="IMPERFECT_CORS_MAX_AGE"):
        CoreSettings.from_env()
