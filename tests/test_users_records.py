"""The users family's record routes, against the Firebase Auth Emulator."""

from __future__ import annotations

import asyncio
import uuid

from tortoise.connection import get_connection

from core.emulator import AuthEmulator

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
