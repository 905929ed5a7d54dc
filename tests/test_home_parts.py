"""What ``health_providers`` gives the ``home`` family through home's hooks, through the real
app and a fake alice on a socket: the connection summary on the Home state, the
training-load board section from alice's activities, activity details; alice down or slow
is a clean 502/504 before anything is sent, or the section's ``error`` event on a board.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.alice import FakeAlice
from tests.health_support import connect, families, member
from tests.support.sse import declared

BOARDS = "/user_states/me/boards"
JSON = {"Accept": "application/json"}


@pytest.fixture(autouse=True)
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPERFECT_RATE_LIMITS", "0")


def with_home(alice: FakeAlice) -> dict[str, Any]:
    return families(alice.url, home={"module": "plugins.home"})


def run(activity_id: str, days_ago: float, hours: float) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "id": activity_id,
        "sport": "run",
        "start_time": start.isoformat(),
        "duration_s": hours * 3600,
        "distance_m": hours * 12000,
    }


async def board(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """A new board's events, as the JSON fallback (checked against the spec)."""
    response = await client.post(BOARDS, headers={**JSON, **headers})
    return await (await declared(client, BOARDS)).read(response)


async def test_the_home_state_has_the_connection_summary(app_client, auth_emulator, fake_alice):
    async with app_client(with_home(fake_alice)) as client:
        runner = await member(client, auth_emulator)
        state = await (await client.get("/user_states/me", headers=runner.headers)).get_json()
        assert state["parts"]["connections"] == {"providers": [], "count": 0, "last_sync_at": None}
        await connect(client, runner, "garmin")
        state = await (await client.get("/user_states/me", headers=runner.headers)).get_json()
        assert state["parts"]["connections"]["providers"] == ["garmin"]
        assert state["parts"]["connections"]["count"] == 1
        assert state["unavailable"] == []


async def test_training_load_is_a_board_section_from_alices_activities(
    app_client, auth_emulator, fake_alice
):
    async with app_client(with_home(fake_alice)) as client:
        runner = await member(client, auth_emulator)
        events = await board(client, runner.headers)
        assert "training_load" not in [e["data"].get("name") for e in events]  # no connection
        await connect(client, runner, "garmin")
        # 6 h in the last week against 12 h over four weeks (3 h a week): building fast
        fake_alice.seed(
            runner.id,
            "garmin",
            "activities",
            [
                run("a1", 1, 2),
                run("a2", 3, 4),
                run("a3", 15, 3),
                run("a4", 22, 3),
                run("old", 40, 9),
            ],
        )
        events = await board(client, runner.headers)
        (section,) = [e["data"] for e in events if e["event"] == "section"]
        assert section["name"] == "training_load" and section["family"] == "health_providers"
        assert section["summary"].startswith("6.0 h in the last 7 days; building fast")
        metrics = {m["label"]: m["value"] for m in section["metrics"]}
        assert metrics == {
            "last 7 days": 6.0,
            "weekly average (4 weeks)": 3.0,
            "acute:chronic": 2.0,
        }
        assert section["data"] == {"activities": 4, "providers": ["garmin"]}
        reads = fake_alice.api_calls("GET", f"/v1/users/{runner.id}/activities")
        assert reads[-1].query["provider"] == "garmin"


async def test_alice_down_is_the_sections_error_event_and_the_board_completes(
    app_client, auth_emulator, fake_alice
):
    async with app_client(with_home(fake_alice)) as client:
        runner = await member(client, auth_emulator)
        await connect(client, runner, "garmin")
        fake_alice.fail_with = 503
        started = time.monotonic()
        events = await board(client, runner.headers)
        assert time.monotonic() - started < 5
        (error,) = [e["data"] for e in events if e["event"] == "error"]
        assert error["section"] == "training_load" and error["reason"] == "failed"
        assert "alice" in error["detail"]
        assert events[-1]["event"] == "done"


async def test_an_activity_is_read_from_alice_and_only_its_owner_sees_it(
    app_client, auth_emulator, fake_alice
):
    async with app_client(with_home(fake_alice)) as client:
        runner, other = await member(client, auth_emulator), await member(client, auth_emulator)
        detail = {**run("act-1", 1, 1.5), "average_heart_rate": 151, "elevation_gain_m": 120.0}
        fake_alice.seed(runner.id, "garmin", "activities", [detail])
        response = await client.get("/user_states/me/activities/act-1", headers=runner.headers)
        assert response.status_code == 200, await response.get_data()
        body = await response.get_json()
        assert body["id"] == "act-1" and body["provider"] == "garmin"
        assert body["average_heart_rate"] == 151 and body["duration_s"] == 5400
        assert fake_alice.api_calls("GET")[-1].path == f"/v1/users/{runner.id}/activities/act-1"
        for who, path in ((other, "act-1"), (runner, "nope"), (runner, "bad%20id")):
            missing = await client.get(f"/user_states/me/activities/{path}", headers=who.headers)
            assert missing.status_code == 404
            assert (await missing.get_json())["code"] == "activity_not_found"


@pytest.mark.parametrize(
    ("misbehave", "status", "code"),
    [({"fail_with": 500}, 502, "upstream_unavailable"), ({"delay": 1.5}, 504, "upstream_timeout")],
)
async def test_alice_down_or_slow_is_a_clean_502_or_504(
    app_client, auth_emulator, fake_alice, misbehave, status, code
):
    async with app_client(with_home(fake_alice)) as client:
        runner = await member(client, auth_emulator)
        for name, value in misbehave.items():
            setattr(fake_alice, name, value)
        started = time.monotonic()
        response = await client.get("/user_states/me/activities/act-1", headers=runner.headers)
        assert time.monotonic() - started < 4  # bounded by the client's timeouts and retries
        assert response.status_code == status
        body = await response.get_json()
        assert body["code"] == code and "alice" in body["detail"]


async def test_without_health_providers_activities_are_unavailable(app_client, auth_emulator):
    plugins = {"users": {"module": "plugins.users"}, "home": {"module": "plugins.home"}}
    async with app_client(plugins) as client:
        runner = await member(client, auth_emulator)
        response = await client.get("/user_states/me/activities/act-1", headers=runner.headers)
        assert response.status_code == 503
        assert (await response.get_json())["code"] == "activities_unavailable"
