"""Connecting a provider through alice, end to end: connect, consent, callback, status,
insights, disconnect; every callback failure; and what one user can do to another's."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from core.emulator import AuthEmulator
from plugins.health_providers.models import Connection, OAuthState
from plugins.health_providers.service import WEEKDAYS
from tests.fakes.alice import FakeAlice
from tests.health_support import (
    alice_connected,
    connect,
    consent,
    families,
    member,
    pending,
    redeem,
    redirected,
    start_connect,
)


async def connections() -> list[tuple[int, str, str, datetime]]:
    rows = await Connection.all().order_by("id")
    return [(r.user_id, r.provider, r.status, r.connected_at) for r in rows]


async def states() -> list[tuple[str, datetime | None]]:
    return [(s.state_hash, s.consumed_at) for s in await OAuthState.all().order_by("id")]


def completions(alice: FakeAlice) -> int:
    """How many times alice was asked to exchange a code."""
    return len(alice.api_calls("POST", "/v1/authorizations/complete"))


def at(day: date, hour: int = 6) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


async def test_connect_journey_against_alice(
    app_client, auth_emulator: AuthEmulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)

        catalogue = await (await client.get("/health-providers", headers=ann.headers)).get_json()
        garmin = next(p for p in catalogue["providers"] if p["name"] == "garmin")
        assert garmin["connect"] == "oauth"
        assert garmin["connect_path"] == "/health-providers/garmin/connect"
        assert garmin["connection"]["status"] == "not_connected"

        started = await client.post("/health-providers/garmin/connect", headers=ann.headers)
        assert started.status_code == 200
        body = await started.get_json()
        assert body["authorize_url"].startswith(f"{fake_alice.url}/oauth/garmin/authorize?")
        assert len(body["state"]) >= 43  # 256 random bits, url-safe
        [call] = fake_alice.api_calls("POST")
        assert call.body == {
            "user_id": str(ann.id),
            "provider": "garmin",
            "state": body["state"],
            "redirect_uri": "http://api.imperfect.test/health-providers/garmin/callback",
        }
        # only a hash of the state is stored
        [(stored_hash, consumed)] = await states()
        assert body["state"] not in stored_hash and consumed is None

        callback = await consent(body["authorize_url"])
        assert callback.startswith("/health-providers/garmin/callback?code=")
        finished = await client.get(callback)  # the browser, without a token
        completion = pending(finished)  # the callback connects nothing by itself
        assert not alice_connected(fake_alice, ann, "garmin") and completions(fake_alice) == 0
        assert await connections() == []
        [row] = await OAuthState.all()
        assert completion not in (row.completion_hash or "") and row.sealed
        assert body["state"] not in row.sealed and callback.split("code=")[1][:8] not in row.sealed
        redeemed = await redeem(client, ann, completion)  # the app, with Ann's token
        assert redeemed.status_code == 200
        assert (await redeemed.get_json())["status"] == "connected"
        assert alice_connected(fake_alice, ann, "garmin")
        [exchange] = fake_alice.api_calls("POST", "/v1/authorizations/complete")
        assert exchange.body["state"] == body["state"] and exchange.body["user_id"] == str(ann.id)
        [row] = await OAuthState.all()
        assert row.sealed is None and row.completed_at is not None  # nothing left to reuse
        again = await redeem(client, ann, completion)
        assert (again.status_code, (await again.get_json())["code"]) == (409, "completion_used")

        status = await client.get("/health-providers/garmin", headers=ann.headers)
        assert status.status_code == 200
        connected = await status.get_json()
        assert connected["status"] == "connected" and connected["connected_at"]
        catalogue = await (await client.get("/health-providers", headers=ann.headers)).get_json()
        states_by_name = {p["name"]: p["connection"]["status"] for p in catalogue["providers"]}
        assert states_by_name["garmin"] == "connected"
        assert states_by_name["oura"] == "not_connected"

        # alice's data for the last four weeks, read page by page
        today = datetime.now(UTC).date()
        fake_alice.page_size = 2
        fake_alice.seed(
            ann.id,
            "garmin",
            "activities",
            [
                {"id": "a1", "sport": "run", "start_time": at(today - timedelta(1)),
                 "duration_s": 3600, "distance_m": 10000},
                {"id": "a2", "sport": "run", "start_time": at(today - timedelta(3)),
                 "duration_s": 1800, "distance_m": 5000},
                {"id": "a3", "sport": "ride", "start_time": at(today - timedelta(8)),
                 "duration_s": 7200, "distance_m": 60000},
                {"id": "a4", "sport": "run", "start_time": at(today - timedelta(15)),
                 "duration_s": 2400, "distance_m": 6000},
                {"id": "a5", "sport": "strength", "start_time": at(today - timedelta(22)),
                 "duration_s": 1200},
                {"id": "old", "sport": "run", "start_time": at(today - timedelta(40)),
                 "duration_s": 9999, "distance_m": 9999},
            ],
        )  # fmt: skip
        fake_alice.seed(
            ann.id,
            "garmin",
            "dailies",
            [
                {"date": str(today - timedelta(2)), "resting_heart_rate": 52, "steps": 9000},
                {"date": str(today - timedelta(1)), "resting_heart_rate": 50, "steps": 8000},
                {"date": str(today), "resting_heart_rate": None, "steps": 100},
            ],
        )
        fake_alice.seed(
            ann.id,
            "garmin",
            "sleep",
            [
                {"date": str(today - timedelta(1)), "duration_s": 25200},
                {"date": str(today), "duration_s": 28800},
            ],
        )
        insights = await client.get("/onboarding/garmin/insights", headers=ann.headers)
        assert insights.status_code == 200
        shown = await insights.get_json()
        assert (shown["start"], shown["end"], shown["days"]) == (
            str(today - timedelta(27)),
            str(today),
            28,
        )
        assert shown["training_volume"] == {
            "sessions": 5,
            "duration_s": 16200,
            "distance_m": 81000,
            "by_sport": [
                {"sport": "run", "sessions": 3, "duration_s": 7800, "distance_m": 21000},
                {"sport": "ride", "sessions": 1, "duration_s": 7200, "distance_m": 60000},
                {"sport": "strength", "sessions": 1, "duration_s": 1200, "distance_m": 0},
            ],
        }
        assert shown["longest_session"] == {
            "sport": "ride",
            "start_time": at(today - timedelta(8)).replace("+00:00", "Z"),
            "duration_s": 7200,
            "distance_m": 60000,
        }
        assert shown["typical_week"] == {
            "sessions": 1.2,
            "duration_s": 4050,
            "distance_m": 20250,
            "active_days": 1.2,
            "usual_training_days": [WEEKDAYS[(today - timedelta(1)).weekday()]],
        }
        assert shown["resting_heart_rate"] == {
            "average_bpm": 51,
            "latest_bpm": 50,
            "latest_date": str(today - timedelta(1)),
            "days_with_data": 2,
        }
        assert shown["sleep"] == {"average_duration_s": 27000, "nights": 2}
        assert shown["backfill_complete"] is False
        reads = [c for c in fake_alice.api_calls("GET") if c.path.endswith("/activities")]
        assert len(reads) == 3  # six activities, two per page
        assert reads[0].query["provider"] == "garmin"

        gone = await client.delete("/health-providers/garmin", headers=ann.headers)
        assert gone.status_code == 204
        assert not alice_connected(fake_alice, ann, "garmin")
        assert await connections() == []
        again = await client.delete("/health-providers/garmin", headers=ann.headers)
        assert again.status_code == 204  # idempotent: alice answers 404, which is fine
        status = await (
            await client.get("/health-providers/garmin", headers=ann.headers)
        ).get_json()
        assert status["status"] == "not_connected"
        assert (
            await client.get("/onboarding/garmin/insights", headers=ann.headers)
        ).status_code == (409)


async def test_unknown_provider_matches_no_route(app_client, auth_emulator, fake_alice):
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        for path in ("/health-providers/myspace", "/onboarding/myspace/insights"):
            response = await client.get(path, headers=ann.headers)
            assert response.status_code == 404
            assert (await response.get_json())["code"] == "not_found"
        assert (await client.post("/health-providers/GARMIN/connect")).status_code == 404


async def test_routes_need_a_token_except_the_callback(app_client, fake_alice):
    async with app_client(families(fake_alice.url)) as client:
        for method, path in [
            ("GET", "/health-providers"),
            ("POST", "/health-providers/garmin/connect"),
            ("POST", "/health-providers/garmin/complete"),
            ("GET", "/health-providers/garmin"),
            ("DELETE", "/health-providers/garmin"),
            ("GET", "/onboarding/garmin/insights"),
        ]:
            response = await client.open(path, method=method)
            assert response.status_code == 401, (method, path)
        callback = await client.get("/health-providers/garmin/callback")
        assert redirected(callback)["reason"] == "invalid_request"


# --- every way a callback can fail ----------------------------------------------------------


async def _expire_states() -> None:
    await OAuthState.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))


@pytest.mark.parametrize(
    "case",
    [
        "access_denied",
        "provider_error",
        "missing_state",
        "missing_code",
        "unknown_state",
        "state_for_another_provider",
        "expired_state",
        "replayed_state",
    ],
)
async def test_callback_failure_redirects_with_its_reason_and_writes_nothing(
    app_client, auth_emulator, fake_alice: FakeAlice, case: str
):
    expected = {
        "access_denied": "access_denied",
        "provider_error": "provider_error",
        "missing_state": "invalid_request",
        "missing_code": "invalid_request",
        "unknown_state": "unknown_state",
        "state_for_another_provider": "unknown_state",
        "expired_state": "state_expired",
        "replayed_state": "state_used",
    }[case]
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        provider = "garmin"
        if case == "replayed_state":
            callback = await start_connect(client, ann)
            pending(await client.get(callback))
        elif case == "access_denied":
            started = await client.post("/health-providers/garmin/connect", headers=ann.headers)
            callback = await consent((await started.get_json())["authorize_url"], deny=True)
        else:
            callback = await start_connect(client, ann)
        state = callback.split("state=")[1]
        if case == "provider_error":
            callback = f"/health-providers/garmin/callback?error=server_error&state={state}"
        elif case == "missing_state":
            callback = callback.split("&state=")[0]
        elif case == "missing_code":
            callback = f"/health-providers/garmin/callback?state={state}"
        elif case == "unknown_state":
            callback = callback.replace(state, secrets.token_urlsafe(32))
        elif case == "state_for_another_provider":
            provider = "oura"
            callback = callback.replace("/garmin/", "/oura/")
        elif case == "expired_state":
            await _expire_states()

        before_connections, before_states = await connections(), await states()
        response = await client.get(callback)
        assert redirected(response) == {"status": "error", "provider": provider, "reason": expected}

        assert await connections() == before_connections  # no connection written or changed
        if expected in ("unknown_state", "state_expired", "state_used", "invalid_request"):
            assert await states() == before_states  # nothing spent either
        assert completions(fake_alice) == 0  # alice never asked to exchange a code
        assert not alice_connected(fake_alice, ann, "garmin")


@pytest.mark.parametrize(
    "case", ["wrong_code", "alice_failing", "alice_slow", "expired_completion", "unknown"]
)
async def test_redeem_failure_answers_its_reason_spends_the_completion_and_writes_nothing(
    app_client, auth_emulator, fake_alice: FakeAlice, case: str
):
    status, code = {
        "wrong_code": (502, "authorization_failed"),
        "alice_failing": (502, "alice_unavailable"),
        "alice_slow": (504, "alice_timeout"),
        "expired_completion": (410, "completion_expired"),
        "unknown": (404, "unknown_completion"),
    }[case]
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        callback = await start_connect(client, ann)
        if case == "wrong_code":
            state = callback.split("state=")[1]
            callback = f"/health-providers/garmin/callback?code=forged&state={state}"
        completion = pending(await client.get(callback))
        if case == "alice_failing":
            fake_alice.fail_with = 500
        elif case == "alice_slow":
            fake_alice.delay = 1.0
        elif case == "expired_completion":
            past = datetime.now(UTC) - timedelta(seconds=1)
            await OAuthState.all().update(completion_expires_at=past)
        elif case == "unknown":
            completion = secrets.token_urlsafe(32)

        response = await redeem(client, ann, completion)
        assert response.status_code == status
        assert (await response.get_json())["code"] == code
        fake_alice.fail_with, fake_alice.delay = None, 0.0
        assert await connections() == []
        assert not alice_connected(fake_alice, ann, "garmin")
        expected_exchanges = 1 if case in ("wrong_code", "alice_failing", "alice_slow") else 0
        assert completions(fake_alice) == expected_exchanges
        if case != "unknown":  # spent: trying again connects nothing either
            again = await redeem(client, ann, completion)
            assert (await again.get_json())["code"] == "completion_used"
            assert completions(fake_alice) == expected_exchanges


async def test_two_callbacks_racing_with_one_state_connect_once(
    app_client, auth_emulator, fake_alice
):
    import asyncio

    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        callback = await start_connect(client, ann)
        first, second = await asyncio.gather(client.get(callback), client.get(callback))
        outcomes = sorted([redirected(first)["status"], redirected(second)["status"]])
        assert outcomes == ["error", "pending"]
        completion = next(
            redirected(r)["completion"]
            for r in (first, second)
            if redirected(r)["status"] == "pending"
        )
        one, two = await asyncio.gather(
            redeem(client, ann, completion), redeem(client, ann, completion)
        )
        assert sorted([one.status_code, two.status_code]) == [200, 409]
        assert len(await connections()) == 1
        assert completions(fake_alice) == 1


# --- one user against another ---------------------------------------------------------------


async def test_user_b_cannot_read_complete_or_disconnect_user_a_connection(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        ann = await member(client, auth_emulator)
        bob = await member(client, auth_emulator)
        await connect(client, ann, "garmin")
        fake_alice.seed(
            ann.id,
            "garmin",
            "activities",
            [{"id": "a", "sport": "run", "start_time": at(datetime.now(UTC).date()),
              "duration_s": 3600}],
        )  # fmt: skip
        ann_row = await connections()

        # reading: Bob sees his own (absent) connection, never Ann's
        status = await (
            await client.get("/health-providers/garmin", headers=bob.headers)
        ).get_json()
        assert status["status"] == "not_connected"
        catalogue = await (await client.get("/health-providers", headers=bob.headers)).get_json()
        assert {p["connection"]["status"] for p in catalogue["providers"]} == {"not_connected"}
        insights = await client.get("/onboarding/garmin/insights", headers=bob.headers)
        assert insights.status_code == 409
        assert (await insights.get_json())["code"] == "provider_not_connected"

        # disconnecting: Bob's DELETE revokes Bob's connection at alice, not Ann's
        assert (
            await client.delete("/health-providers/garmin", headers=bob.headers)
        ).status_code == 204
        [revoke] = fake_alice.api_calls("DELETE")
        assert revoke.path == f"/v1/users/{bob.id}/connections/garmin"
        assert alice_connected(fake_alice, ann, "garmin")
        assert await connections() == ann_row

        # completing: Ann starts connecting oura; Bob steals her state and uses it with the
        # code his own consent produced. alice refuses the code (it belongs to Bob's
        # authorization, as PKCE makes it at a real provider): nobody gets connected.
        started = await client.post("/health-providers/oura/connect", headers=ann.headers)
        ann_state = (await started.get_json())["state"]
        bob_callback = await start_connect(client, bob, "oura")
        bob_code = bob_callback.split("code=")[1].split("&")[0]
        stolen = f"/health-providers/oura/callback?code={bob_code}&state={ann_state}"
        completion = pending(await client.get(stolen), "oura")
        by_bob = await redeem(client, bob, completion, "oura")  # not Bob's flow: refused
        assert (by_bob.status_code, (await by_bob.get_json())["code"]) == (
            404,
            "unknown_completion",
        )
        by_ann = await redeem(client, ann, completion, "oura")  # spent by Bob's attempt
        assert (await by_ann.get_json())["code"] == "completion_used"
        assert not alice_connected(fake_alice, ann, "oura")
        assert not alice_connected(fake_alice, bob, "oura")
        assert await connections() == ann_row
        # the stolen state is spent: it cannot be tried again either
        assert redirected(await client.get(stolen))["reason"] == "state_used"
        # and had Ann redeemed it herself, alice would refuse Bob's code (PKCE)
        started = await client.post("/health-providers/oura/connect", headers=ann.headers)
        ann_state = (await started.get_json())["state"]
        bob_callback = await start_connect(client, bob, "oura")
        bob_code = bob_callback.split("code=")[1].split("&")[0]
        stolen = f"/health-providers/oura/callback?code={bob_code}&state={ann_state}"
        completion = pending(await client.get(stolen), "oura")
        by_ann = await redeem(client, ann, completion, "oura")
        assert (by_ann.status_code, (await by_ann.get_json())["code"]) == (
            502,
            "authorization_failed",
        )
        assert not alice_connected(fake_alice, ann, "oura")
        assert not alice_connected(fake_alice, bob, "oura")
        assert await connections() == ann_row


async def test_a_flow_started_by_an_attacker_and_consented_by_a_victim_connects_no_one(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    """Login CSRF on the connection (RFC 9700 §4.7): Mallory starts connecting Garmin and
    sends the authorize URL to Vic; Vic consents with her Garmin account. Before, the
    public callback linked Vic's Garmin to Mallory; now it only hands Vic's app a
    completion, which only Mallory could redeem, and Mallory never sees it."""
    async with app_client(families(fake_alice.url)) as client:
        mallory = await member(client, auth_emulator)
        vic = await member(client, auth_emulator)
        started = await client.post("/health-providers/garmin/connect", headers=mallory.headers)
        lure = (await started.get_json())["authorize_url"]

        # Vic's browser follows the link, consents, and comes back to our callback, which
        # sends it on to Vic's app
        callback = await consent(lure)
        completion = pending(await client.get(callback))
        assert completions(fake_alice) == 0 and await connections() == []

        # Vic's app redeems it with Vic's token: not her flow, so nothing, and it is spent
        by_vic = await redeem(client, vic, completion)
        assert by_vic.status_code == 404
        assert await by_vic.get_json() == {
            "detail": "You have no pending Garmin connection with this completion.",
            "code": "unknown_completion",
        }
        # ... answered exactly like a completion that never existed
        made_up = await redeem(client, vic, secrets.token_urlsafe(32))
        assert (made_up.status_code, await made_up.get_json()) == (404, await by_vic.get_json())

        # Mallory holds only the state, which the callback spent; she has no completion.
        # Guessing one, replaying the callback, or (had it leaked) Vic's spent one: nothing.
        state = (await started.get_json())["state"]
        guess = await redeem(client, mallory, secrets.token_urlsafe(32))
        assert (await guess.get_json())["code"] == "unknown_completion"
        as_state = await redeem(client, mallory, state)
        assert (await as_state.get_json())["code"] == "unknown_completion"
        assert redirected(await client.get(callback))["reason"] == "state_used"
        leaked = await redeem(client, mallory, completion)
        assert (await leaked.get_json())["code"] == "completion_used"

        assert completions(fake_alice) == 0  # alice never exchanged the code
        assert not alice_connected(fake_alice, mallory, "garmin")
        assert not alice_connected(fake_alice, vic, "garmin")
        assert await connections() == []
        for who in (mallory, vic):
            status = await client.get("/health-providers", headers=who.headers)
            listed = {
                p["name"]: p["connection"]["status"] for p in (await status.get_json())["providers"]
            }
            assert listed["garmin"] == "not_connected"

        # Vic connecting her own Garmin still works, end to end
        await connect(client, vic, "garmin")
        assert alice_connected(fake_alice, vic, "garmin")
        assert not alice_connected(fake_alice, mallory, "garmin")
        assert [(user_id, provider) for user_id, provider, *_ in await connections()] == [
            (vic.id, "garmin")
        ]


async def test_connecting_a_widget_provider_points_to_its_route(
    app_client, auth_emulator, fake_alice
):
    async with app_client(families(fake_alice.url, terra={})) as client:
        ann = await member(client, auth_emulator)
        response = await client.post("/health-providers/coros/connect", headers=ann.headers)
        assert response.status_code == 409
        body: dict[str, Any] = await response.get_json()
        assert body == {
            "detail": "COROS is connected through POST /session.",
            "code": "connect_elsewhere",
        }
        assert fake_alice.api_calls() == []
