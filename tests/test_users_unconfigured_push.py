"""Without an FCM credential the users family still serves, says so in /readyz, and
keeps pushes queued for retry instead of dropping them."""

from __future__ import annotations

from core.models import OutboxMessage
from core.outbox import utcnow
from tests.support import bearer, dispatcher_of, fcm_token, new_account

# No fcm_url: under the Auth Emulator there is no Google credential to reach FCM with.
PLUGINS = {"users": {"module": "plugins.users"}}


async def test_unconfigured_push_is_reported_and_stays_queued(app_client, auth_emulator):
    async with app_client(PLUGINS) as client:
        report = await (await client.get("/readyz")).get_json()
        push = report["plugins"]["users"]["checks"]["push"]
        assert push["ok"] is True and push["detail"].startswith("not configured:")

        headers = bearer(new_account(auth_emulator))
        assert (await client.post("/users", headers=headers)).status_code == 201
        device = {"token": fcm_token(), "platform": "android"}
        assert (
            await client.post("/notifications/devices", json=device, headers=headers)
        ).status_code == 201
        assert (await client.post("/notifications/test", headers=headers)).status_code == 202

        report = await dispatcher_of(client).run_once(utcnow())
        assert report.retried == 1 and report.dead == 0
        [message] = await OutboxMessage.all()
        assert message.status == "pending" and message.attempts == 1
        assert "push is not configured" in message.last_error


async def test_users_serves_without_google_credentials(app_client, monkeypatch):
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    async with app_client(PLUGINS) as client:
        report = await (await client.get("/readyz")).get_json()
        assert report["plugins"]["users"]["checks"]["push"]["detail"].startswith("not configured")
