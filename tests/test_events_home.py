"""What ``events`` gives the ``home`` family through home's hooks, through the real app with
both families on: the active goal and its days to go on the Home state (on the calendar of
the event's place), a ``countdown`` board section for a user with a goal and none without,
each user seeing only their own goal; with ``events`` off, neither is there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plugins.events import service
from plugins.events.models import Event
from tests.support import users_family
from tests.test_events import admin, athlete, create
from tests.test_events import plugins as events_plugins
from tests.test_home import BOARDS, json_board

HONOLULU = "Pacific/Honolulu"  # UTC-10: its calendar day is not the UTC one for ten hours


@pytest.fixture(autouse=True)
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPERFECT_RATE_LIMITS", "0")


def with_home(events_on: bool = True) -> dict[str, Any]:
    chosen = events_plugins() if events_on else {"users": users_family()}
    return {**chosen, "home": {"module": "plugins.home"}}


def local_today(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


async def home_state(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/user_states/me", headers=headers)
    assert response.status_code == 200, await response.get_data()
    state = await response.get_json()
    assert state["unavailable"] == []
    return state


def sections_of(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["data"]["name"]: e["data"] for e in events if e["event"] == "section"}


async def test_the_active_goal_and_its_countdown_are_on_home_for_its_owner_only(
    app_client, auth_emulator
):
    async with app_client(with_home()) as client:
        boss = await admin(client, auth_emulator)
        runner = await athlete(client, auth_emulator)
        other = await athlete(client, auth_emulator)
        race_day = local_today(HONOLULU) + timedelta(days=30)
        race = await create(
            client,
            boss,
            name="Honolulu Marathon",
            date=race_day.isoformat(),
            timezone=HONOLULU,
            place={"name": "Honolulu", "country": "US", "lat": 21.3069, "lng": -157.8583},
        )

        # No goal yet: an empty active_goal part, and no countdown on the board
        assert (await home_state(client, runner))["parts"]["active_goal"] == {
            "goal": None,
            "days_to_go": None,
        }
        # (the board's first event names every registered section; one with nothing to
        # say for this user has no section event and is not stored)
        events = await json_board(client, runner)
        assert events[0]["data"]["sections"] == ["countdown", "check_ins"]
        assert sections_of(events) == {}  # (nor check_ins, without a check-in)
        stored = await (await client.get(f"{BOARDS}/latest", headers=runner)).get_json()
        assert stored["sections"] == []

        marathon = next(d for d in race["distances"] if d["km"] == 42.195)
        answer = await client.post(
            "/user_events",
            json={"event_id": race["id"], "distance_id": marathon["id"]},
            headers=runner,
        )
        assert answer.status_code == 201, await answer.get_data()
        goal = await answer.get_json()

        # The part is the goal as /user_events/active shows it, and the days on Honolulu's
        # calendar (30 whatever the UTC day is)
        part = (await home_state(client, runner))["parts"]["active_goal"]
        active = await (await client.get("/user_events/active", headers=runner)).get_json()
        assert part == {"goal": active, "days_to_go": 30}
        assert part["goal"]["id"] == goal["id"]

        events = await json_board(client, runner)
        countdown = sections_of(events)["countdown"]
        assert countdown == {
            "name": "countdown",
            "title": "Countdown",
            "order": 10,
            "family": "events",
            "summary": "Honolulu Marathon is in 30 days",
            "metrics": [
                {"label": "days to go", "value": 30, "unit": "days"},
                {"label": "distance", "value": 42.195, "unit": "km"},
            ],
            "data": {"goal_id": goal["id"], "event_id": race["id"], "date": race_day.isoformat()},
        }
        narrative = "".join(e["data"]["text"] for e in events if e["event"] == "narrative")
        assert "Countdown: Honolulu Marathon is in 30 days." in narrative
        stored = await (await client.get(f"{BOARDS}/latest", headers=runner)).get_json()
        assert stored["sections"] == [countdown]

        # Another user sees none of it
        assert (await home_state(client, other))["parts"]["active_goal"]["goal"] is None
        assert "countdown" not in sections_of(await json_board(client, other))

        # The day before and race day itself (on its calendar): "tomorrow", then "today"
        for days, when in ((1, "tomorrow"), (0, "today")):
            moved = await client.patch(
                f"/events/{race['id']}",
                json={"date": (local_today(HONOLULU) + timedelta(days=days)).isoformat()},
                headers=boss,
            )
            assert moved.status_code == 200, await moved.get_data()
            part = (await home_state(client, runner))["parts"]["active_goal"]
            assert part["days_to_go"] == days
            countdown = sections_of(await json_board(client, runner))["countdown"]
            assert countdown["summary"] == f"Honolulu Marathon is {when}"
            assert countdown["metrics"][0]["value"] == days

        # Dropped: the part is empty again and the section is gone
        assert (await client.delete("/user_events/active", headers=runner)).status_code == 200
        assert (await home_state(client, runner))["parts"]["active_goal"]["goal"] is None
        assert "countdown" not in sections_of(await json_board(client, runner))


async def test_days_to_go_count_on_the_calendar_of_the_events_place(app_client):
    async with app_client(with_home()):
        event = Event(date=date(2030, 4, 21), timezone=HONOLULU)
        # 05:00 UTC on the 20th is still the 19th in Honolulu: two days to go, not one
        assert service.days_to_go(event, datetime(2030, 4, 20, 5, tzinfo=UTC)) == 2
        assert service.days_to_go(event, datetime(2030, 4, 20, 11, tzinfo=UTC)) == 1
        assert service.days_to_go(event, datetime(2030, 4, 22, 9, 59, tzinfo=UTC)) == 0


async def test_without_events_there_is_no_active_goal_part_and_no_countdown(
    app_client, auth_emulator
):
    async with app_client(with_home(events_on=False)) as client:
        runner = await athlete(client, auth_emulator)
        assert "active_goal" not in (await home_state(client, runner))["parts"]
        events = await json_board(client, runner)
        assert events[0]["data"]["sections"] == ["check_ins"]
        assert "countdown" not in sections_of(events)
        assert (await client.get("/user_events/active", headers=runner)).status_code == 404
