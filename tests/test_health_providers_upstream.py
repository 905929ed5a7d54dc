"""alice slow, down or failing: answers that name alice, in time, and nothing half-written."""

from __future__ import annotations

import time

from core.emulator import AuthEmulator
from plugins.health_providers.models import Connection, OAuthState
from tests.fakes.alice import FakeAlice
from tests.health_support import connect, families, member
from tests.support.ports import free_port


async def test_connect_with_alice_slow_is_504_within_the_timeout(
    app_client, auth_emulator: AuthEmulator, fake_alice: FakeAlice
):
    settings = {"alice_read_timeout": 0.3}
    async with app_client(families(fake_alice.url, settings=settings)) as client:
        ann = await member(client, auth_emulator)
        fake_alice.delay = 2.0
        started = time.monotonic()
        response = await client.post("/health-providers/garmin/connect", headers=ann.headers)
        elapsed = time.monotonic() - started
        assert response.status_code == 504
        assert await response.get_json() == {
            "detail": "alice did not answer within 0.3s.",
            "code": "upstream_timeout",
        }
        assert elapsed < 1.5
        assert len(fake_alice.api_calls("POST")) == 1  # a POST is never repeated
        assert await OAuthState.all().count() == 0


async def test_connect_with_alice_down_is_502_naming_alice(app_client, auth_emulator):
    closed = f"http://127.0.0.1:{free_port()}"
    async with app_client(families(closed)) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/health-providers/garmin/connect", headers=ann.headers)
        assert response.status_code == 502
        assert await response.get_json() == {
            "detail": "alice could not be reached.",
            "code": "upstream_unavailable",
        }
        assert await OAuthState.all().count() == 0


async def test_connect_with_alice_failing_or_refusing_is_502(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        fake_alice.fail_with = 503
        response = await client.post("/health-providers/garmin/connect", headers=ann.headers)
        assert response.status_code == 502
        assert await response.get_json() == {
            "detail": "alice failed to answer (HTTP 503).",
            "code": "upstream_unavailable",
        }
        fake_alice.fail_with = None
        fake_alice.supported = {"oura"}
        response = await client.post("/health-providers/garmin/connect", headers=ann.headers)
        assert response.status_code == 502
        body = await response.get_json()
        assert body["code"] == "upstream_rejected"
        assert body["detail"].startswith("alice refused to start an authorization for garmin")
        assert "unsupported_provider" in body["detail"]
        assert await OAuthState.all().count() == 0


async def test_status_retries_a_failing_alice_then_answers_502(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        fake_alice.fail_with = 503
        fake_alice.calls.clear()
        response = await client.get("/health-providers/garmin", headers=ann.headers)
        assert response.status_code == 502
        assert len(fake_alice.api_calls("GET")) == 3  # one call and two retries
        # the local record is untouched by a failed read
        assert [r.status for r in await Connection.all()] == ["connected"]


async def test_disconnect_with_alice_down_keeps_the_connection(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        fake_alice.delay = 1.0
        response = await client.delete("/health-providers/garmin", headers=ann.headers)
        assert response.status_code == 504
        assert (await response.get_json())["detail"] == "alice did not answer within 0.5s."
        fake_alice.delay = 0.0
        # alice still holds the tokens, so the connection is not gone
        assert [r.status for r in await Connection.all()] == ["connected"]
        assert (
            await client.delete("/health-providers/garmin", headers=ann.headers)
        ).status_code == (204)
        assert await Connection.all().count() == 0


async def test_insights_with_alice_down_is_502(app_client, auth_emulator, fake_alice: FakeAlice):
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        fake_alice.fail_with = 500
        response = await client.get("/onboarding/garmin/insights", headers=ann.headers)
        assert response.status_code == 502
        assert (await response.get_json())["detail"] == "alice failed to answer (HTTP 500)."


async def test_app_serves_and_readyz_reports_alice_and_events_when_both_are_absent(app_client):
    closed = f"http://127.0.0.1:{free_port()}"
    async with app_client(families(closed)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # a sibling down degrades; it never fails readiness
        assert (await ready.get_json())["status"] == "degraded"
        report = (await ready.get_json())["plugins"]["health_providers"]
        assert report["checks"]["alice"] == {"ok": False, "error": "unreachable", "detail": None}
        assert report["checks"]["events"] == {
            "ok": True,
            "error": None,
            "detail": "off: no redis_url, alice events are not handled",
        }
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_says_alice_is_reachable(app_client, fake_alice: FakeAlice):
    async with app_client(families(fake_alice.url)) as client:
        ready = await client.get("/readyz")
        report = await ready.get_json()
        assert report["plugins"]["health_providers"]["checks"]["alice"]["detail"] == "reachable"
