"""The users family's record routes, against the Firebase Auth Emulator."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tortoise.connection import get_connection

from core.emulator import AuthEmulator
from plugins.users import service

PLUGINS = {"users": {"module": "plugins.users"}}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _user_rows(uid: str) -> list[dict]:
    return await get_connection("default").execute_query_dict(
        "SELECT * FROM users_user WHERE firebase_uid = $1"
        if get_connection("default").capabilities.dialect == "postgres"
        else "SELECT * FROM users_user WHERE firebase_uid = ?",
        [uid],
    )


async def test_post_users_is_idempotent_and_concurrent_safe(
    app_client, auth_emulator: AuthEmulator
):
    account = auth_emulator.sign_up(f"u-{uuid.uuid4().hex[:8]}@example.com", "pass-word-1")
    async with app_client(PLUGINS) as client:
        headers = _bearer(account.id_token)
        assert (await client.get("/users/me", headers=headers)).status_code == 403
        first, second = await asyncio.gather(
            client.post("/users", headers=headers), client.post("/users", headers=headers)
        )
        assert sorted([first.status_code, second.status_code]) == [200, 201]
        again = await client.post("/users", headers=headers)
        assert again.status_code == 200
        body = await again.get_json()
        assert body["firebase_uid"] == account.uid and body["email"] == account.email
        assert len(await _user_rows(account.uid)) == 1


async def test_patch_me_changes_only_writable_fields(app_client, auth_emulator: AuthEmulator):
    account = auth_emulator.sign_up(f"u-{uuid.uuid4().hex[:8]}@example.com", "pass-word-1")
    async with app_client(PLUGINS) as client:
        headers = _bearer(account.id_token)
        await client.post("/users", headers=headers)
        ok = await client.patch(
            "/users/me", json={"display_name": "Ann", "timezone": "Europe/Paris"}, headers=headers
        )
        assert ok.status_code == 200
        assert (await ok.get_json())["timezone"] == "Europe/Paris"
        for bad in (
            {"firebase_uid": "x"},
            {"id": 5},
            {"timezone": "Mars/Base"},
            {"units": "cubits"},
        ):
            response = await client.patch("/users/me", json=bad, headers=headers)
            assert response.status_code == 422, bad
            assert (await response.get_json())["detail"][0]["loc"][0] == "body"
        me = await (await client.get("/users/me", headers=headers)).get_json()
        assert me["firebase_uid"] == account.uid
        assert (me["display_name"], me["timezone"], me["units"]) == (
            "Ann",
            "Europe/Paris",
            "metric",
        )


def _named_account(emulator: AuthEmulator, display_name: str) -> tuple[str, str]:
    """A new account whose ``name`` claim is ``display_name``: (uid, a fresh ID token)."""
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    account = emulator.sign_up(email, "pass-word-1")
    emulator._call(  # the admin call set_claims makes, with the profile's displayName
        f"projects/{emulator.project_id}/accounts:update",
        {"localId": account.uid, "displayName": display_name},
        admin=True,
    )
    return account.uid, emulator.sign_in(email, "pass-word-1").id_token


@pytest.mark.parametrize(
    ("claimed", "stored"),
    [
        ("A" * 101, "A" * 100),  # was a 500, on every attempt
        ("Ann\x00 Lee", "Ann Lee"),  # NUL: PostgreSQL refused the row
        ("  Ann\t\n\x07Lee\x1b[31m  ", "Ann Lee[31m"),  # controls dropped, spaces collapsed
        ("\x00\x01 \t", None),  # nothing left
    ],
    ids=["101-characters", "nul", "controls-and-whitespace", "empty-after-cleaning"],
)
async def test_registration_cleans_the_name_claim(
    app_client, auth_emulator: AuthEmulator, claimed: str, stored: str | None
):
    uid, token = _named_account(auth_emulator, claimed)
    async with app_client(PLUGINS) as client:
        response = await client.post("/users", headers=_bearer(token))
        assert response.status_code == 201, await response.get_data()
        assert (await response.get_json())["display_name"] == stored
        [row] = await _user_rows(uid)
        assert row["display_name"] == stored
        me = await client.get("/users/me", headers=_bearer(token))
        assert me.status_code == 200  # the stored record serialises


def test_claims_that_are_not_plain_strings_are_not_kept():
    assert service._claimed_text(["Ann"], 100, clean=True) is None
    assert service._claimed_text(42, 100, clean=True) is None
    assert service._claimed_text("a@b.example", 320, clean=False) == "a@b.example"
    assert service._claimed_text("a" * 311 + "@b.example", 320, clean=False) is None
    assert service._claimed_text("a" * 310 + "@b.example", 320, clean=False)
    assert service._claimed_text({"email": "x"}, 320, clean=False) is None
    assert service._claimed_text("a\x00@b.example", 320, clean=False) is None
