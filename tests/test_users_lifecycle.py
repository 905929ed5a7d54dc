"""The whole life of a user, from sign-up in the Firebase Auth Emulator to erasure.

Every default family is on (siblings faked on real sockets: alice, Terra, FCM), plus a
test family (``journal``, which references users without cascading) that stores rows and
asks for pushes through the send_push hook.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

from firebase_admin.exceptions import FirebaseError

from core.auth import FirebaseAuth
from core.emulator import AuthEmulator
from core.models import OutboxMessage
from core.outbox import utcnow
from tests.fakes.alice import FakeAlice
from tests.fakes.fcm import FakeFcm
from tests.fakes.terra import FakeTerra
from tests.health_support import Member, connect, families
from tests.support import bearer, dispatcher_of, fcm_token, new_account, runtime_of, users_family
from tests.support.rows import count_user_rows

USER_TABLES = {
    "users_user",
    "users_profile",
    "users_device",
    "users_notification",
    "users_notification_preferences",
    "users_push_delivery",
    "journal_entry",
    "health_providers_connection",
    "health_providers_oauth_state",
}


def plugins(
    fake_fcm: FakeFcm, fake_alice: FakeAlice | None = None, fake_terra: FakeTerra | None = None
) -> dict[str, object]:
    """root, users and journal; with the fakes, also health_providers and terra."""
    chosen: dict[str, object] = {}
    if fake_alice is not None and fake_terra is not None:
        terra = {
            "base_url": fake_terra.url,
            "dev_id": fake_terra.dev_id,
            "alice_url": fake_alice.url,
        }
        chosen = families(fake_alice.url, terra={**terra, "api_key": fake_terra.api_key})
    return {
        **chosen,
        "root": {"module": "plugins.root"},
        "users": users_family(fake_fcm.url),
        "journal": {"module": "tests.plugins.journal"},
    }


async def test_the_whole_life_of_a_user(
    app_client, auth_emulator: AuthEmulator, fake_fcm, fake_alice, fake_terra
):
    account = new_account(auth_emulator)
    headers = bearer(account)
    token = fcm_token()
    async with app_client(plugins(fake_fcm, fake_alice, fake_terra)) as client:
        created = await client.post("/users", headers=headers)
        assert created.status_code == 201
        user_id = (await created.get_json())["id"]
        # Rows in another default family: a connected provider and one being connected.
        await connect(client, Member(user_id, account.uid, headers), "garmin")
        pending = await client.post("/health-providers/oura/connect", headers=headers)
        assert pending.status_code == 200

        profile = await client.post(
            "/users_profiles",
            json={
                "sport": "running",
                "level": "intermediate",
                "weekly_hours": 6.5,
                "goals": ["Sub-3 marathon"],
                "birth_year": 1990,
                "max_heart_rate": 188,
            },
            headers=headers,
        )
        assert profile.status_code == 201
        device = await client.post(
            "/notifications/devices", json={"token": token, "platform": "ios"}, headers=headers
        )
        assert device.status_code == 201
        device_id = (await device.get_json())["id"]
        muted = await client.patch(
            "/notifications/preferences", json={"muted_categories": ["events"]}, headers=headers
        )
        assert (await muted.get_json()) == {"push_enabled": True, "muted_categories": ["events"]}

        # The test push is queued, and reaches FCM only when the outbox is dispatched.
        queued = await client.post("/notifications/test", headers=headers)
        assert queued.status_code == 202
        notification = await queued.get_json()
        assert notification["status"] == "queued"
        assert notification["deliveries"] == [
            {
                "device_id": device_id,
                "platform": "ios",
                "status": "pending",
                "error": None,
                "sent_at": None,
            }
        ]
        assert fake_fcm.messages == []
        assert (await dispatcher_of(client).run_once()).done == 1
        assert fake_fcm.messages == [
            {
                "token": token,
                "notification": {
                    "title": "Test notification",
                    "body": "Push notifications reach this device.",
                },
                "data": {"notification_id": str(notification["id"])},
                "android": {"notification": {"tag": str(notification["id"])}},
                "apns": {"headers": {"apns-collapse-id": str(notification["id"])}},
            }
        ]
        [request] = fake_fcm.requests
        assert request.headers["authorization"].startswith("Bearer ")
        assert request.headers["x-goog-api-format-version"] == "2"
        sent = await (
            await client.get(f"/notifications/{notification['id']}", headers=headers)
        ).get_json()
        assert sent["status"] == "sent" and sent["sent_at"] is not None
        assert sent["deliveries"][0]["status"] == "sent"

        # Another family stores a row and asks for a push through the send_push hook.
        entry = await client.post("/journal/entries", json={"text": "Long run"}, headers=headers)
        assert entry.status_code == 201
        assert (await dispatcher_of(client).run_once()).done == 1
        assert [m["notification"]["body"] for m in fake_fcm.received_by(token)] == [
            "Push notifications reach this device.",
            "Long run",
        ]

        exported = await client.get("/account/export", headers=headers)
        assert exported.status_code == 200
        document = await exported.get_json()
        assert document["user"]["firebase_uid"] == account.uid
        assert {"users", "journal", "health_providers"} <= set(document["families"])
        connections = document["families"]["health_providers"]["connections"]
        assert [(c["provider"], c["status"]) for c in connections] == [("garmin", "connected")]
        mine = document["families"]["users"]
        assert [p["sport"] for p in mine["profiles"]] == ["running"]
        assert [d["token"] for d in mine["devices"]] == [token]
        assert mine["notification_preferences"]["muted_categories"] == ["events"]
        assert [n["title"] for n in mine["notifications"]] == ["Test notification", "Journal"]
        assert document["families"]["journal"] == {"entries": ["Long run"]}

        before = await count_user_rows(user_id)
        assert set(before) >= USER_TABLES
        assert all(before[table] > 0 for table in USER_TABLES), before

        deleted = await client.delete("/account", headers=headers)
        assert deleted.status_code == 204
        after = await count_user_rows(user_id)
        assert set(after) == set(before)
        assert all(count == 0 for count in after.values()), after
        assert auth_emulator.lookup(account.uid) is None
        assert await OutboxMessage.filter(status="pending").count() == 0
        assert (str(user_id), "garmin") not in fake_alice.connections  # revoked at alice

        again = await client.delete("/account", headers=headers)
        assert again.status_code == 401
        assert (await again.get_json())["code"] == "user_not_found"


def _stale_token(uid: str, signed_in_seconds_ago: int) -> str:
    """An emulator-style (unsigned) ID token whose sign-in lies in the past."""
    now = int(time.time())
    claims = {
        "iss": "https://securetoken.google.com/demo-imperfect",
        "aud": "demo-imperfect",
        "sub": uid,
        "user_id": uid,
        "auth_time": now - signed_in_seconds_ago,
        "iat": now,
        "exp": now + 3600,
    }

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_deleting_the_account_needs_a_recent_sign_in(
    app_client, auth_emulator: AuthEmulator, fake_fcm
):
    account = new_account(auth_emulator)
    async with app_client(plugins(fake_fcm)) as client:
        user_id = (await (await client.post("/users", headers=bearer(account))).get_json())["id"]
        stale = {"Authorization": f"Bearer {_stale_token(account.uid, 301)}"}
        assert (await client.get("/users/me", headers=stale)).status_code == 200
        refused = await client.delete("/account", headers=stale)
        assert refused.status_code == 401
        assert (await refused.get_json())["code"] == "recent_sign_in_required"
        assert (await count_user_rows(user_id))["users_user"] == 1
        assert auth_emulator.lookup(account.uid) is not None
        fresh = {"Authorization": f"Bearer {_stale_token(account.uid, 60)}"}
        assert (await client.delete("/account", headers=fresh)).status_code == 204


async def test_a_deletion_firebase_refused_is_pending_and_a_repeat_finishes_it(
    app_client, auth_emulator: AuthEmulator, fake_fcm, monkeypatch
):
    account = new_account(auth_emulator)
    headers = bearer(account)
    real = FirebaseAuth.delete_user
    failures = [FirebaseError("UNAVAILABLE", "Firebase Authentication is down")]

    async def flaky(self, uid):
        if failures:
            raise failures.pop()
        await real(self, uid)

    monkeypatch.setattr(FirebaseAuth, "delete_user", flaky)
    async with app_client(plugins(fake_fcm)) as client:
        user_id = (await (await client.post("/users", headers=headers)).get_json())["id"]
        await client.post("/journal/entries", json={"text": "x"}, headers=headers)

        pending = await client.delete("/account", headers=headers)
        assert pending.status_code == 202
        state = await pending.get_json()
        assert state["status"] == "pending" and state["waiting_for"] == "firebase"
        assert state["families"] == {"journal": True, "users": True}
        assert all(count == 0 for count in (await count_user_rows(user_id)).values())
        assert auth_emulator.lookup(account.uid) is not None
        shown = await client.get("/account/deletion", headers=headers)
        assert (await shown.get_json()) == state

        assert (await client.delete("/account", headers=headers)).status_code == 204
        assert auth_emulator.lookup(account.uid) is None


async def test_a_deletion_waits_for_a_sibling_that_is_down_and_erases_each_family_once(
    app_client, auth_emulator: AuthEmulator, fake_fcm, fake_alice, fake_terra
):
    account = new_account(auth_emulator)
    headers = bearer(account)
    async with app_client(plugins(fake_fcm, fake_alice, fake_terra)) as client:
        user_id = (await (await client.post("/users", headers=headers)).get_json())["id"]
        await connect(client, Member(user_id, account.uid, headers), "garmin")
        assert (await client.post("/session", headers=headers)).status_code == 201  # a Terra ref
        await client.post("/journal/entries", json={"text": "x"}, headers=headers)
        erasures: list[str] = []
        platform = runtime_of(client).platform
        original = platform.call_plugin

        async def counted(plugin, hook_name, **kwargs):
            result = await original(plugin, hook_name, **kwargs)
            if hook_name == "account_deleted":
                erasures.append(plugin.name)
            return result

        platform.call_plugin = counted  # type: ignore[method-assign]

        fake_alice.fail_with = 503  # alice is down: tokens and the Terra reference stay
        pending = await client.delete("/account", headers=headers)
        assert pending.status_code == 202
        state = await pending.get_json()
        assert state["status"] == "pending" and state["waiting_for"] == "terra"
        assert state["families"] == {
            "journal": True,
            "terra": False,
            "health_providers": False,
            "users": False,
        }
        rows = await count_user_rows(user_id)
        assert rows["journal_entry"] == 0 and rows["users_user"] == 1
        assert rows["health_providers_connection"] == 1 and rows["terra_reference"] == 1
        dispatcher = dispatcher_of(client)
        assert (await dispatcher.run_once(utcnow() + timedelta(minutes=1))).retried == 1
        assert (await (await client.get("/account/deletion", headers=headers)).get_json())[
            "waiting_for"
        ] == "terra"

        fake_alice.fail_with = None  # alice is back: the queued deletion finishes
        assert (await dispatcher.run_once(utcnow() + timedelta(hours=1))).done == 1
        assert all(count == 0 for count in (await count_user_rows(user_id)).values())
        assert auth_emulator.lookup(account.uid) is None
        assert (str(user_id), "garmin") not in fake_alice.connections
        assert fake_alice.terra_references == {}
        assert erasures == ["journal", "terra", "health_providers", "users"]
        assert await OutboxMessage.filter(status="pending").count() == 0


async def test_pushes_queued_for_a_deleted_user_are_never_sent(
    app_client, auth_emulator: AuthEmulator, fake_fcm
):
    account = new_account(auth_emulator)
    headers = bearer(account)
    async with app_client(plugins(fake_fcm)) as client:
        await client.post("/users", headers=headers)
        await client.post(
            "/notifications/devices",
            json={"token": fcm_token(), "platform": "web"},
            headers=headers,
        )
        fake_fcm.fail_next(1)
        await client.post("/notifications/test", headers=headers)
        dispatcher, now = dispatcher_of(client), utcnow()
        assert (await dispatcher.run_once(now)).retried == 1

        assert (await client.delete("/account", headers=headers)).status_code == 204
        assert (await dispatcher.run_once(now + timedelta(hours=1))).done == 1
        assert fake_fcm.messages == []
        assert [r.status for r in fake_fcm.requests] == [503]
