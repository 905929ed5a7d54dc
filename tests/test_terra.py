"""The terra family against a fake Terra: sessions, SDK tokens, and both Terra error shapes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.emulator import AuthEmulator
from tests.conftest import free_port
from tests.fakes.terra import FakeTerra, legacy_error, problem
from tests.health_support import member


def terra_families(terra: FakeTerra | None, **settings: Any) -> dict[str, Any]:
    if terra is not None:
        settings = {
            "base_url": terra.url,
            "dev_id": terra.dev_id,
            "api_key": terra.api_key,
            "connect_timeout": 0.5,
            "read_timeout": 0.5,
            **settings,
        }
    return {
        "users": {"module": "plugins.users"},
        "terra": {"module": "plugins.terra", "settings": settings},
    }


async def test_widget_session_for_the_caller(
    app_client, auth_emulator: AuthEmulator, fake_terra: FakeTerra
):
    settings = {"providers": ["coros", "apple_health", "wahoo"], "language": "fr"}
    async with app_client(terra_families(fake_terra, **settings)) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/session", headers=ann.headers)
        assert response.status_code == 201
        session = await response.get_json()
        assert session["url"] == f"https://widget.tryterra.co/session/{session['session_id']}"
        assert session["expires_in"] == 900 and session["expires_at"]

        [call] = fake_terra.calls
        assert call.path == "/auth/generateWidgetSession"
        assert call.headers["dev-id"] == fake_terra.dev_id
        assert call.headers["x-api-key"] == fake_terra.api_key
        assert call.headers["content-type"] == "application/json"
        assert call.body == {
            "reference_id": str(ann.id),
            "providers": "COROS,WAHOO",  # the widget's providers; Apple Health needs the SDK
            "language": "fr",
            "auth_success_redirect_url": "imperfect://health-providers?status=connected",
            "auth_failure_redirect_url": "imperfect://health-providers?status=error",
        }


async def test_sdk_token_for_the_caller(app_client, auth_emulator, fake_terra: FakeTerra):
    async with app_client(terra_families(fake_terra)) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/session/sdk-token", headers=ann.headers)
        assert response.status_code == 201
        token = await response.get_json()
        assert len(token["token"]) == 64
        assert token["reference_id"] == str(ann.id)
        assert token["expires_in"] == 180
        [call] = fake_terra.calls
        assert call.path == "/auth/generateAuthToken"
        assert (call.headers["dev-id"], call.headers["x-api-key"]) == (
            fake_terra.dev_id,
            fake_terra.api_key,
        )


async def test_routes_need_a_registered_user(app_client, auth_emulator, fake_terra: FakeTerra):
    async with app_client(terra_families(fake_terra)) as client:
        assert (await client.post("/session")).status_code == 401
        account = auth_emulator.sign_up("terra-unregistered@example.com", "pass-word-1")
        headers = {"Authorization": f"Bearer {account.id_token}"}
        response = await client.post("/session", headers=headers)
        assert response.status_code == 403
        assert fake_terra.calls == []


@pytest.mark.parametrize(
    ("failure", "code", "detail"),
    [
        (
            problem(401, "Unauthorized", "dev-id or x-api-key headers are missing", "/x"),
            "terra_credentials_rejected",
            "Terra refused our credentials (HTTP 401: dev-id or x-api-key headers are missing); "
            "check the terra family's dev_id and api_key.",
        ),
        (
            legacy_error(403, "Invalid dev-id or x-api-key"),
            "terra_credentials_rejected",
            "Terra refused our credentials (HTTP 403: Invalid dev-id or x-api-key); "
            "check the terra family's dev_id and api_key.",
        ),
        (
            problem(400, "Bad Request", "invalid start_date", "/x"),
            "terra_rejected",
            "Terra refused the request (HTTP 400: invalid start_date).",
        ),
        (
            legacy_error(410, "This endpoint is no longer available for new accounts"),
            "terra_rejected",
            "Terra refused the request (HTTP 410: This endpoint is no longer available for "
            "new accounts).",
        ),
        (
            (500, "text/plain", "oops"),
            "upstream_unavailable",
            "Terra failed to answer (HTTP 500).",
        ),
    ],
    ids=["problem-401", "legacy-403", "problem-400", "legacy-410", "server-error"],
)
async def test_terra_errors_in_both_shapes_become_clear_502s(
    app_client, auth_emulator, fake_terra: FakeTerra, failure, code, detail
):
    async with app_client(terra_families(fake_terra)) as client:
        ann = await member(client, auth_emulator)
        fake_terra.fail_next = failure
        response = await client.post("/session", headers=ann.headers)
        assert response.status_code == 502
        assert await response.get_json() == {"detail": detail, "code": code}


async def test_wrong_credentials_are_reported_as_such(app_client, auth_emulator, fake_terra):
    async with app_client(terra_families(fake_terra, api_key="not-the-key")) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/session/sdk-token", headers=ann.headers)
        assert response.status_code == 502
        assert (await response.get_json())["code"] == "terra_credentials_rejected"


async def test_terra_slow_or_down(app_client, auth_emulator, fake_terra: FakeTerra):
    async with app_client(terra_families(fake_terra, read_timeout=0.2)) as client:
        ann = await member(client, auth_emulator)
        fake_terra.delay = 1.0
        started = time.monotonic()
        response = await client.post("/session", headers=ann.headers)
        assert time.monotonic() - started < 1.5
        assert response.status_code == 504
        assert await response.get_json() == {
            "detail": "Terra did not answer within 0.2s.",
            "code": "upstream_timeout",
        }
    closed = {"base_url": f"http://127.0.0.1:{free_port()}", "dev_id": "d", "api_key": "k"}
    async with app_client(terra_families(None, **closed)) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/session", headers=ann.headers)
        assert response.status_code == 502
        assert (await response.get_json())["detail"] == "Terra could not be reached."


async def test_without_credentials_the_routes_answer_503_and_readyz_says_so(
    app_client, auth_emulator
):
    async with app_client(terra_families(None)) as client:
        ann = await member(client, auth_emulator)
        for path in ("/session", "/session/sdk-token"):
            response = await client.post(path, headers=ann.headers)
            assert response.status_code == 503
            assert await response.get_json() == {
                "detail": "Terra is not configured on this deployment (no dev_id and api_key).",
                "code": "terra_not_configured",
            }
        ready = await (await client.get("/readyz")).get_json()
        check = ready["plugins"]["terra"]["checks"]["terra"]
        assert check["ok"] is True and check["detail"].startswith("not configured")


def test_default_plugins_file_loads_without_terra_or_redis_variables(imperfect):
    result = imperfect("check", env={"TERRA_DEV_ID": "", "TERRA_API_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert "terra" in result.stdout and "health_providers" in result.stdout
