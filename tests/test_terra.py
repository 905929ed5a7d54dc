"""The terra family against a fake Terra: sessions, SDK tokens, and both Terra error shapes."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from core import current_platform
from core.emulator import AuthEmulator
from plugins.terra.models import TerraReference
from plugins.users.models import User
from tests.fakes.alice import FakeAlice
from tests.fakes.terra import FakeTerra, legacy_error, problem
from tests.health_support import member
from tests.support.ports import free_port


def terra_families(
    terra: FakeTerra | None, alice: FakeAlice | None = None, **settings: Any
) -> dict[str, Any]:
    if terra is not None:
        settings = {
            "base_url": terra.url,
            "dev_id": terra.dev_id,
            "api_key": terra.api_key,
            "connect_timeout": 0.5,
            "read_timeout": 0.5,
            **settings,
        }
    if alice is not None:
        settings["alice_url"] = alice.url
    return {
        "users": {"module": "plugins.users"},
        "terra": {"module": "plugins.terra", "settings": settings},
    }


async def test_widget_session_for_the_caller(
    app_client, auth_emulator: AuthEmulator, fake_terra: FakeTerra, fake_alice: FakeAlice
):
    settings = {"providers": ["coros", "apple_health", "wahoo"], "language": "fr"}
    async with app_client(terra_families(fake_terra, fake_alice, **settings)) as client:
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
        reference = call.body["reference_id"]
        assert fake_alice.terra_references == {reference: str(ann.id)}  # alice knows first
        assert call.body == {
            "reference_id": reference,
            "providers": "COROS,WAHOO",  # the widget's providers; Apple Health needs the SDK
            "language": "fr",
            "auth_success_redirect_url": "imperfect://health-providers?status=connected",
            "auth_failure_redirect_url": "imperfect://health-providers?status=error",
        }


async def test_sdk_token_for_the_caller(
    app_client, auth_emulator, fake_terra: FakeTerra, fake_alice: FakeAlice
):
    async with app_client(terra_families(fake_terra, fake_alice)) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/session/sdk-token", headers=ann.headers)
        assert response.status_code == 201
        token = await response.get_json()
        assert len(token["token"]) == 64
        assert fake_alice.terra_references == {token["reference_id"]: str(ann.id)}
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
    app_client, auth_emulator, fake_terra: FakeTerra, fake_alice, failure, code, detail
):
    async with app_client(terra_families(fake_terra, fake_alice)) as client:
        ann = await member(client, auth_emulator)
        fake_terra.fail_next = failure
        response = await client.post("/session", headers=ann.headers)
        assert response.status_code == 502
        assert await response.get_json() == {"detail": detail, "code": code}


async def test_wrong_credentials_are_reported_as_such(
    app_client, auth_emulator, fake_terra, fake_alice
):
    async with app_client(terra_families(fake_terra, fake_alice, api_key="not-the-key")) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/session/sdk-token", headers=ann.headers)
        assert response.status_code == 502
        assert (await response.get_json())["code"] == "terra_credentials_rejected"


async def test_terra_slow_or_down(
    app_client, auth_emulator, fake_terra: FakeTerra, fake_alice: FakeAlice
):
    async with app_client(terra_families(fake_terra, fake_alice, read_timeout=0.2)) as client:
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
    async with app_client(terra_families(None, fake_alice, **closed)) as client:
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


# --- references ------------------------------------------------------------------------------


async def test_references_are_opaque_per_user_reused_and_known_to_alice(
    app_client, auth_emulator, fake_terra: FakeTerra, fake_alice: FakeAlice
):
    async with app_client(terra_families(fake_terra, fake_alice)) as client:
        ann = await member(client, auth_emulator)
        bob = await member(client, auth_emulator)
        assert bob.id == ann.id + 1  # sequential ids: exactly what a reference must not be

        async def reference(who: Any, path: str) -> str:
            response = await client.post(path, headers=who.headers)
            assert response.status_code == 201, await response.get_data()
            if path == "/session":
                return fake_terra.calls[-1].body["reference_id"]
            return (await response.get_json())["reference_id"]

        ann_ref = await reference(ann, "/session")
        bob_ref = await reference(bob, "/session/sdk-token")
        assert ann_ref != bob_ref
        for ref, who in ((ann_ref, ann), (bob_ref, bob)):
            assert len(ref) == 32 and ref != str(who.id)  # 192 random bits, url-safe
            assert re.fullmatch(r"[A-Za-z0-9_-]{32}", ref)
        # the same user gets the same reference, on either route, every time
        assert await reference(ann, "/session/sdk-token") == ann_ref
        assert await reference(ann, "/session") == ann_ref
        assert await reference(bob, "/session") == bob_ref
        rows = await TerraReference.all().order_by("user_id")
        assert [(r.user_id, r.reference_id) for r in rows] == [(ann.id, ann_ref), (bob.id, bob_ref)]
        # alice was told each mapping (idempotently, before every session)
        assert fake_alice.terra_references == {ann_ref: str(ann.id), bob_ref: str(bob.id)}
        puts = fake_alice.api_calls("PUT", "/v1/terra/references/")
        assert len(puts) == 5
        assert puts[0].path == f"/v1/terra/references/{ann_ref}"
        assert puts[0].body == {"user_id": str(ann.id)}

        # the export carries it; deleting the account forgets it here and at alice
        platform = current_platform(client.app)
        user = await User.get(id=ann.id)
        exported = {p.name: d for p, d in await platform.call_each("account_export", user=user)}
        assert exported["terra"] == {"reference_id": ann_ref}
        await platform.call_each("account_deleted", reverse=True, user=user)
        assert await TerraReference.filter(user_id=ann.id).count() == 0
        assert fake_alice.terra_references == {bob_ref: str(bob.id)}
        await platform.call_each("account_deleted", reverse=True, user=user)  # harmless again
        exported = {p.name: d for p, d in await platform.call_each("account_export", user=user)}
        assert exported["terra"] == {"reference_id": None}


async def test_alice_failing_to_record_the_reference_means_no_session(
    app_client, auth_emulator, fake_terra: FakeTerra, fake_alice: FakeAlice
):
    async with app_client(terra_families(fake_terra, fake_alice)) as client:
        ann = await member(client, auth_emulator)
        fake_alice.fail_with = 500
        response = await client.post("/session", headers=ann.headers)
        assert response.status_code == 502
        assert "alice" in (await response.get_json())["detail"]
        assert fake_terra.calls == []  # Terra never saw a reference alice does not know
        fake_alice.fail_with = 409
        response = await client.post("/session/sdk-token", headers=ann.headers)
        assert (response.status_code, (await response.get_json())["code"]) == (
            502,
            "upstream_rejected",
        )
        assert fake_terra.calls == []


def test_default_plugins_file_loads_without_terra_or_redis_variables(imperfect):
    result = imperfect("check", env={"TERRA_DEV_ID": "", "TERRA_API_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert "terra" in result.stdout and "health_providers" in result.stdout
