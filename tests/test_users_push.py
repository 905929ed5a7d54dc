"""Push notifications through the outbox to a fake FCM server over a real socket.

FCM down and back, stale tokens, two dispatchers at once, tokens changing hands, the
send_push hook used by another family, preferences, and the limits on test pushes.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import google.auth.credentials
import google.auth.transport.requests
import httpx
import pytest
from google.auth.exceptions import DefaultCredentialsError

from core.emulator import AuthEmulator
from core.models import OutboxMessage
from core.outbox import Dispatcher, utcnow
from plugins.users.clients import (
    FCM_ERROR_TYPE,
    FCM_SCOPE,
    GOOGLE_FCM,
    LOCAL_FCM_TOKEN,
    FcmPushSender,
    FcmUnavailable,
    GoogleAccessTokens,
    Push,
    PushRejected,
    TokenUnregistered,
    UnconfiguredPushSender,
    fcm_failure,
    push_sender,
)
from plugins.users.models import Device, Notification
from plugins.users.service import TEST_PUSH
from tests.fakes.fcm import FakeFcm
from tests.support import bearer, dispatcher_of, fcm_token, new_account, runtime_of, users_family


def plugins(fake_fcm: FakeFcm, **settings: Any) -> dict[str, Any]:
    return {
        "users": users_family(fake_fcm.url, **settings),
        "journal": {"module": "tests.plugins.journal"},
    }


async def registered(client, auth_emulator: AuthEmulator, *platforms: str) -> tuple[dict, list]:
    """A new user with one device per platform: (headers, tokens)."""
    headers = bearer(new_account(auth_emulator))
    assert (await client.post("/users", headers=headers)).status_code == 201
    tokens = []
    for platform in platforms:
        token = fcm_token()
        device = {"token": token, "platform": platform}
        response = await client.post("/notifications/devices", json=device, headers=headers)
        assert response.status_code == 201
        tokens.append(token)
    return headers, tokens


async def notification(client, headers: dict, notification_id: int) -> dict[str, Any]:
    return await (await client.get(f"/notifications/{notification_id}", headers=headers)).get_json()


async def test_a_push_sent_while_fcm_is_down_is_delivered_once_when_it_is_back(
    app_client, auth_emulator, fake_fcm
):
    async with app_client(plugins(fake_fcm)) as client:
        headers, [token] = await registered(client, auth_emulator, "android")
        fake_fcm.fail_next(2)  # 503 UNAVAILABLE, twice
        queued = await (await client.post("/notifications/test", headers=headers)).get_json()
        dispatcher, now = dispatcher_of(client), utcnow()

        assert (await dispatcher.run_once(now)).retried == 1
        assert (await dispatcher.run_once(now)).claimed == 0  # backing off
        assert (await dispatcher.run_once(now + timedelta(hours=1))).retried == 1
        assert fake_fcm.messages == []
        pending = await notification(client, headers, queued["id"])
        assert pending["status"] == "queued"
        assert pending["deliveries"][0]["status"] == "pending"

        assert (await dispatcher.run_once(now + timedelta(hours=2))).done == 1
        for later in (3, 4, 48):
            assert (await dispatcher.run_once(now + timedelta(hours=later))).claimed == 0
        assert len(fake_fcm.received_by(token)) == 1
        # One HTTP request per attempt: retrying is the outbox's job, not the SDK's.
        assert [r.status for r in fake_fcm.requests] == [503, 503, 200]
        sent = await notification(client, headers, queued["id"])
        assert sent["status"] == "sent" and sent["deliveries"][0]["status"] == "sent"


async def test_a_token_fcm_reports_unregistered_is_deleted(app_client, auth_emulator, fake_fcm):
    async with app_client(plugins(fake_fcm)) as client:
        headers, [stale, fresh] = await registered(client, auth_emulator, "ios", "android")
        fake_fcm.unregister(stale)
        queued = await (await client.post("/notifications/test", headers=headers)).get_json()
        report = await dispatcher_of(client).run_once()
        assert (report.done, report.dead) == (2, 0)

        devices = await (await client.get("/notifications/devices", headers=headers)).get_json()
        assert [d["token"] for d in devices] == [fresh]
        assert await Device.filter(token=stale).count() == 0
        after = await notification(client, headers, queued["id"])
        assert after["status"] == "sent"
        outcomes = {d["platform"]: (d["status"], d["device_id"]) for d in after["deliveries"]}
        assert outcomes["ios"] == ("failed", None)
        assert outcomes["android"][0] == "sent"
        assert [m["token"] for m in fake_fcm.messages] == [fresh]

        fake_fcm.unregister(fresh)
        again = await (await client.post("/notifications/test", headers=headers)).get_json()
        await dispatcher_of(client).run_once()
        assert (await notification(client, headers, again["id"]))["status"] == "failed"
        assert await (await client.get("/notifications/devices", headers=headers)).get_json() == []


async def test_two_dispatchers_deliver_each_push_once(app_client, auth_emulator, fake_fcm):
    """On PostgreSQL the two claim concurrently, each in its own transaction (SKIP LOCKED)."""
    async with app_client(plugins(fake_fcm), outbox_batch_size=3) as client:
        for _ in range(3):
            headers, _ = await registered(client, auth_emulator, "ios", "android", "web", "web")
            for _ in range(2):
                assert (
                    await client.post("/notifications/test", headers=headers)
                ).status_code == 202
        expected = await OutboxMessage.filter(kind="users.push").count()
        assert expected == 24
        fake_fcm.delay = 0.005
        handlers = {kind: h for kind, (_, h) in runtime_of(client).outbox_handlers.items()}
        policy = dispatcher_of(client).policy
        first, second = Dispatcher(handlers, policy, "first"), Dispatcher(handlers, policy, "b")
        claimed = Counter()
        while True:
            reports = await asyncio.gather(first.run_once(), second.run_once())
            if not any(r.claimed for r in reports):
                break
            claimed.update({"first": reports[0].claimed, "second": reports[1].claimed})
            assert all(r.done == r.claimed for r in reports)
        assert claimed["first"] > 0 and claimed["second"] > 0
        received = Counter((m["token"], m["data"]["notification_id"]) for m in fake_fcm.messages)
        assert len(received) == expected and set(received.values()) == {1}
        assert await Notification.filter(status="sent").count() == 6


async def test_the_background_dispatcher_sends_pushes(app_client, auth_emulator, fake_fcm):
    overrides = {"outbox_dispatcher": True, "outbox_interval": 0.02}
    async with app_client(plugins(fake_fcm), **overrides) as client:
        headers, [token] = await registered(client, auth_emulator, "web")
        queued = await (await client.post("/notifications/test", headers=headers)).get_json()
        for _ in range(250):
            if (await notification(client, headers, queued["id"]))["status"] == "sent":
                break
            await asyncio.sleep(0.02)
        assert (await notification(client, headers, queued["id"]))["status"] == "sent"
        assert len(fake_fcm.received_by(token)) == 1


async def test_a_token_registered_by_another_user_moves_to_them(
    app_client, auth_emulator, fake_fcm
):
    async with app_client(plugins(fake_fcm)) as client:
        a, [token] = await registered(client, auth_emulator, "ios")
        again = await client.post(
            "/notifications/devices", json={"token": token, "platform": "ios"}, headers=a
        )
        assert again.status_code == 200
        [a_device] = await (await client.get("/notifications/devices", headers=a)).get_json()
        assert a_device["id"] == (await again.get_json())["id"]
        queued_for_a = await (await client.post("/notifications/test", headers=a)).get_json()

        b, _ = await registered(client, auth_emulator)
        moved = await client.post(
            "/notifications/devices", json={"token": token, "platform": "android"}, headers=b
        )
        assert moved.status_code == 201
        assert await (await client.get("/notifications/devices", headers=a)).get_json() == []
        [b_device] = await (await client.get("/notifications/devices", headers=b)).get_json()
        assert (b_device["token"], b_device["platform"]) == (token, "android")

        # A's push, queued before the device changed hands, must not reach B.
        assert (await dispatcher_of(client).run_once()).done == 1
        assert fake_fcm.messages == []
        skipped = await notification(client, a, queued_for_a["id"])
        assert skipped["status"] == "failed"
        assert skipped["deliveries"][0]["status"] == "skipped"


async def test_another_family_sends_pushes_through_the_hook_within_its_transaction(
    app_client, auth_emulator, fake_fcm
):
    async with app_client(plugins(fake_fcm)) as client:
        headers, [token] = await registered(client, auth_emulator, "ios")
        refused = await client.post(
            "/journal/entries", json={"text": "Rolled back", "refuse": True}, headers=headers
        )
        assert refused.status_code == 409
        assert await Notification.all().count() == 0
        assert await OutboxMessage.all().count() == 0

        await client.post("/journal/entries", json={"text": "Hill repeats"}, headers=headers)
        muted = {"muted_categories": ["journal"]}
        await client.patch("/notifications/preferences", json=muted, headers=headers)
        await client.post("/journal/entries", json={"text": "Muted"}, headers=headers)
        await client.patch(
            "/notifications/preferences",
            json={"muted_categories": [], "push_enabled": False},
            headers=headers,
        )
        await client.post("/journal/entries", json={"text": "Switched off"}, headers=headers)
        await dispatcher_of(client).run_once()

        assert [m["notification"]["body"] for m in fake_fcm.received_by(token)] == ["Hill repeats"]
        page = await (await client.get("/notifications?limit=2", headers=headers)).get_json()
        assert [(n["body"], n["status"]) for n in page["items"]] == [
            ("Switched off", "muted"),
            ("Muted", "muted"),
        ]
        rest = await (
            await client.get(f"/notifications?before={page['next_before']}", headers=headers)
        ).get_json()
        assert [(n["body"], n["status"]) for n in rest["items"]] == [("Hill repeats", "sent")]
        assert rest["next_before"] is None


async def test_test_pushes_need_a_device_and_are_limited(app_client, auth_emulator, fake_fcm):
    async with app_client(plugins(fake_fcm, max_devices=2)) as client:
        headers, _ = await registered(client, auth_emulator)
        none = await client.post("/notifications/test", headers=headers)
        assert none.status_code == 409 and (await none.get_json())["code"] == "no_devices"

        tokens = [fcm_token() for _ in range(3)]
        for token in tokens:
            device = {"token": token, "platform": "web"}
            await client.post("/notifications/devices", json=device, headers=headers)
        devices = await (await client.get("/notifications/devices", headers=headers)).get_json()
        assert sorted(d["token"] for d in devices) == sorted(tokens[1:])  # oldest dropped

        for _ in range(5):
            assert (await client.post("/notifications/test", headers=headers)).status_code == 202
        limited = await client.post("/notifications/test", headers=headers)
        assert limited.status_code == 429
        assert (await limited.get_json())["code"] == "too_many_test_pushes"
        assert 3500 < int(limited.headers["Retry-After"]) <= 3600  # the first frees a slot
        assert await Notification.all().count() == 5


async def test_without_credentials_or_fcm_url_pushes_stay_queued_and_readyz_says_why(
    app_client, auth_emulator, monkeypatch
):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    async with app_client({"users": {"module": "plugins.users"}}) as client:
        report = await (await client.get("/readyz")).get_json()
        push = report["plugins"]["users"]["checks"]["push"]
        assert push["ok"] is True and push["detail"].startswith("not configured:")
        headers, _ = await registered(client, auth_emulator, "ios")
        queued = await (await client.post("/notifications/test", headers=headers)).get_json()
        result = await dispatcher_of(client).run_once()
        assert (result.retried, result.dead) == (1, 0)  # a deployment problem, not the message's
        [message] = await OutboxMessage.all()
        assert message.status == "pending" and "push is not configured" in message.last_error
        assert (await notification(client, headers, queued["id"]))["status"] != "failed"


async def test_users_serves_without_google_credentials_outside_the_emulator(
    app_client, monkeypatch
):
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    async with app_client({"users": {"module": "plugins.users"}}) as client:
        report = await (await client.get("/readyz")).get_json()
        assert report["plugins"]["users"]["checks"]["push"]["detail"].startswith("not configured")


async def test_each_push_names_its_notification_so_a_repeat_replaces_it_on_the_phone(
    app_client, auth_emulator, fake_fcm
):
    async with app_client(plugins(fake_fcm)) as client:
        headers, [token] = await registered(client, auth_emulator, "ios")
        fake_fcm.fail_next(1)
        queued = await (await client.post("/notifications/test", headers=headers)).get_json()
        dispatcher, now = dispatcher_of(client), utcnow()
        assert (await dispatcher.run_once(now)).retried == 1
        assert (await dispatcher.run_once(now + timedelta(hours=1))).done == 1

        collapse_id = str(queued["id"])
        for attempt in fake_fcm.requests:  # the failed attempt and its retry alike
            assert attempt.path == f"/v1/projects/{fake_fcm.project_id}/messages:send"
            assert attempt.headers["authorization"] == f"Bearer {LOCAL_FCM_TOKEN}"
            assert attempt.headers["x-goog-api-format-version"] == "2"
            message = attempt.body["message"]
            assert message["android"] == {"notification": {"tag": collapse_id}}
            assert message["apns"] == {"headers": {"apns-collapse-id": collapse_id}}
        [message] = fake_fcm.received_by(token)
        assert message["notification"] == {"title": "Test notification", "body": TEST_PUSH.body}
        assert message["data"] == {"notification_id": collapse_id}


@pytest.mark.parametrize("error", ["INVALID_ARGUMENT", "SENDER_ID_MISMATCH"])
async def test_a_push_fcm_refuses_for_good_fails_at_once(
    app_client, auth_emulator, fake_fcm, error
):
    async with app_client(plugins(fake_fcm)) as client:
        headers, [token] = await registered(client, auth_emulator, "android")
        fake_fcm.fail_next(1, error)
        queued = await (await client.post("/notifications/test", headers=headers)).get_json()
        report = await dispatcher_of(client).run_once()
        assert (report.done, report.retried, report.dead) == (0, 0, 1)
        assert (await dispatcher_of(client).run_once(utcnow() + timedelta(days=2))).claimed == 0
        assert len(fake_fcm.requests) == 1

        failed = await notification(client, headers, queued["id"])
        assert failed["status"] == "failed"
        [delivery] = failed["deliveries"]
        assert delivery["status"] == "failed"
        assert delivery["error"].startswith(f"FCM refused the push: {error}: ")
        # the token itself is not to blame
        assert [d["token"] for d in await Device.all().values("token")] == [token]


async def test_quota_exceeded_and_timeouts_are_retried(app_client, auth_emulator, fake_fcm):
    async with app_client(plugins(fake_fcm, fcm_timeout_seconds=0.2)) as client:
        headers, [token] = await registered(client, auth_emulator, "web")
        fake_fcm.fail_next(1, "QUOTA_EXCEEDED")
        queued = await (await client.post("/notifications/test", headers=headers)).get_json()
        dispatcher, now = dispatcher_of(client), utcnow()
        assert (await dispatcher.run_once(now)).retried == 1
        [message] = await OutboxMessage.all()
        assert "FcmUnavailable" in message.last_error and "QUOTA_EXCEEDED" in message.last_error

        fake_fcm.delay = 0.6  # longer than fcm_timeout_seconds
        assert (await dispatcher.run_once(now + timedelta(hours=1))).retried == 1
        await message.refresh_from_db()
        assert "upstream_timeout" in message.last_error
        fake_fcm.delay = 0.0
        assert (await dispatcher.run_once(now + timedelta(hours=2))).done == 1
        assert (await notification(client, headers, queued["id"]))["status"] == "sent"

        # FCM took the push that timed out, so the phone got it twice: both name the same
        # notification, so the second replaces the first (and the app drops it by its id).
        for _ in range(100):
            if len(fake_fcm.requests) == 3:
                break
            await asyncio.sleep(0.02)
        assert [r.status for r in fake_fcm.requests] == [429, 200, 200]
        received = fake_fcm.received_by(token)
        assert len(received) == 2
        assert {m["apns"]["headers"]["apns-collapse-id"] for m in received} == {str(queued["id"])}
        assert {m["android"]["notification"]["tag"] for m in received} == {str(queued["id"])}


# --- the sender against Google's contract, with a stand-in credential ------------------


class StandInCredentials(google.auth.credentials.Scoped, google.auth.credentials.Credentials):
    """A Google credential that needs scopes and hands out numbered access tokens."""

    def __init__(self, scopes: list[str] | None = None) -> None:
        super().__init__()
        self._scopes = scopes
        self.refreshed_in: list[str] = []

    @property
    def requires_scopes(self) -> bool:
        return not self._scopes

    def with_scopes(self, scopes: Any, default_scopes: Any = None) -> StandInCredentials:
        return StandInCredentials(list(scopes))

    def refresh(self, request: Any) -> None:
        assert isinstance(request, google.auth.transport.requests.Request)
        self.refreshed_in.append(threading.current_thread().name)
        self.token = f"access-token-{len(self.refreshed_in)}"
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)


def a_push(n: int) -> Push:
    return Push(fcm_token(), f"Push {n}", "body", {"notification_id": str(n)}, str(n))


async def test_google_access_tokens_are_scoped_refreshed_off_the_loop_and_only_when_needed(
    fake_fcm,
):
    tokens = GoogleAccessTokens(StandInCredentials(), timeout=5)
    credentials = tokens.credentials
    assert isinstance(credentials, StandInCredentials)
    assert credentials.scopes == [FCM_SCOPE]
    sender = FcmPushSender(fake_fcm.project_id, fake_fcm.url, 5, tokens)
    try:
        names = await asyncio.gather(*(sender.send(a_push(n)) for n in range(3)))
        assert all(name.startswith(f"projects/{fake_fcm.project_id}/messages/") for name in names)
        assert len(credentials.refreshed_in) == 1  # concurrent sends share one refresh
        assert credentials.refreshed_in[0] != threading.current_thread().name

        credentials.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=30)
        await sender.send(a_push(3))  # about to expire: refreshed first
        await sender.send(a_push(4))
        assert len(credentials.refreshed_in) == 2

        fake_fcm.fail_next(1, "THIRD_PARTY_AUTH_ERROR")  # a 401: the token is not trusted
        with pytest.raises(FcmUnavailable, match="401"):
            await sender.send(a_push(5))
        await sender.send(a_push(6))
        assert len(credentials.refreshed_in) == 3
    finally:
        await sender.aclose()
    bearers = [r.headers["authorization"] for r in fake_fcm.requests]
    assert bearers == ["Bearer access-token-1"] * 3 + ["Bearer access-token-2"] * 3 + [
        "Bearer access-token-3"
    ]
    assert [r.status for r in fake_fcm.requests] == [200] * 5 + [401, 200]


class StandInFirebase:
    project_id = "demo-imperfect"

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials
        self.asked = 0

    def google_credentials(self) -> google.auth.credentials.Credentials:
        self.asked += 1
        if isinstance(self.credentials, Exception):
            raise self.credentials
        return self.credentials


async def test_which_sender_a_deployment_gets():
    missing = StandInFirebase(DefaultCredentialsError("no ADC"))
    for url in ("", "https://fcm.googleapis.com"):
        sender = await push_sender(missing, url, 5)
        assert isinstance(sender, UnconfiguredPushSender) and sender.reason == "no ADC"
    assert missing.asked == 2

    local = await push_sender(missing, "http://127.0.0.1:9", 5)  # a fake: no credential
    assert isinstance(local, FcmPushSender) and local.base_url == "http://127.0.0.1:9"
    await local.aclose()
    assert missing.asked == 2

    google = await push_sender(StandInFirebase(StandInCredentials()), "", 5)
    assert isinstance(google, FcmPushSender) and google.base_url == GOOGLE_FCM
    await google.aclose()


def fcm_answer(status: int, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content)


def fcm_error(code: int, status: str, error_code: str | None = None) -> dict[str, Any]:
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}] if error_code else []
    return {"error": {"code": code, "message": "m", "status": status, "details": details}}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (fcm_answer(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED")), TokenUnregistered),
        (fcm_answer(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")), PushRejected),
        (fcm_answer(403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")), PushRejected),
        (fcm_answer(400, fcm_error(400, "INVALID_ARGUMENT")), PushRejected),
        # a wrong project or a missing permission is the deployment's problem: retry
        (fcm_answer(404, fcm_error(404, "NOT_FOUND")), FcmUnavailable),
        (fcm_answer(403, fcm_error(403, "PERMISSION_DENIED")), FcmUnavailable),
        (fcm_answer(429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")), FcmUnavailable),
        (fcm_answer(401, fcm_error(401, "UNAUTHENTICATED")), FcmUnavailable),
        (fcm_answer(404, b"<html>not here</html>"), FcmUnavailable),
    ],
)
def test_fcm_errors_follow_its_public_contract(response, expected):
    assert type(fcm_failure(response)) is expected
