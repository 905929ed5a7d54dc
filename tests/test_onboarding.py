"""The ``onboarding`` family through the real app: the intake (steps, validation,
branching, going back, versions), race recommendations (explained, deterministic), accepting
one (it becomes the active event through the ``events`` family's hook), every free-text
answer reaching hare once and in order (also while hare was down), isolation, bad input,
and the dependency on ``events``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from core import ConfigError, create_app
from core.endpoints import declared_endpoint
from plugins.onboarding import questionnaire
from plugins.onboarding.models import IntakeSession
from tests.fakes.hare import API_KEY, FakeHare
from tests.support import PASSWORD, bearer, dispatcher_of, new_account, runtime_of, users_family
from tests.support.rows import all_rows, user_rows
from tests.test_events import signed_in_routes
from tests.test_hare import drain

HUGE = "x" * 10_000


@pytest.fixture(autouse=True)
def unlimited(monkeypatch):
    monkeypatch.setenv("IMPERFECT_RATE_LIMITS", "0")


@pytest.fixture
def fake_hare() -> Iterator[FakeHare]:
    hare = FakeHare().start()
    try:
        yield hare
    finally:
        hare.stop()


def families(fcm_url: str = "", hare_url: str | None = None, onboarding: bool = True) -> dict:
    chosen: dict[str, Any] = {"root": {"module": "plugins.root"}, "users": users_family(fcm_url)}
    if hare_url is not None:
        chosen["hare"] = {
            "module": "plugins.hare",
            "settings": {"base_url": hare_url, "api_key": API_KEY},
        }
    chosen["events"] = {"module": "plugins.events"}
    if onboarding:
        chosen["onboarding"] = {"module": "plugins.onboarding"}
    return chosen


async def admin(auth_emulator) -> dict[str, str]:
    account = new_account(auth_emulator)
    auth_emulator.set_claims(account.uid, {"admin": True})
    return bearer(auth_emulator.sign_in(account.email, PASSWORD))


async def athlete(client, auth_emulator) -> dict[str, str]:
    headers = bearer(new_account(auth_emulator))
    assert (await client.post("/users", headers=headers)).status_code == 201
    return headers


CATALOGUE = [
    # name, km list, weeks ahead, place (lat, lng, country)
    ("Paris Half", [21.0975, 10], 20, (48.85, 2.35, "FR")),
    ("Lyon Marathon", [42.195], 30, (45.76, 4.83, "FR")),
    ("Berlin Half", [21.0975], 14, (52.52, 13.40, "DE")),
    ("Rome 10K", [10], 3, (41.9, 12.5, "IT")),
    ("Boston Half", [21.0975], 25, (42.36, -71.06, "US")),
    ("Annecy Ultra", [110], 40, (45.9, 6.12, "FR")),
    ("Too Soon Half", [21.0975], 1, (48.85, 2.35, "FR")),
]


async def catalogue(client, auth_emulator) -> dict[str, int]:
    boss = await admin(auth_emulator)
    ids = {}
    for name, kms, weeks, (lat, lng, country) in CATALOGUE:
        body = {
            "name": name,
            "sport": "running",
            "distances": [{"km": km} for km in kms],
            "date": (date.today() + timedelta(weeks=weeks)).isoformat(),
            "start_time": "09:00",
            "timezone": "Europe/Paris",
            "place": {"name": name.split()[0], "country": country, "lat": lat, "lng": lng},
            "default_language": "en",
        }
        response = await client.post("/events", json=body, headers=boss)
        assert response.status_code == 201, await response.get_data()
        ids[name] = (await response.get_json())["id"]
    cycling = {**body, "name": "Paris Gran Fondo", "sport": "cycling"}
    await client.post("/events", json=cycling, headers=boss)
    return ids


async def post(client, headers, step: str, answer: Any = None, action: str = "answer"):
    body: dict[str, Any] = {"step": step}
    if action != "answer":
        body["action"] = action
    else:
        body["answer"] = answer
    return await client.post("/onboarding/intake", json=body, headers=headers)


async def step_through(client, headers, answers: list[tuple[str, Any]]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for step, value in answers:
        action = "skip" if value is SKIP else "answer"
        response = await post(client, headers, step, None if value is SKIP else value, action)
        assert response.status_code == 200, (step, await response.get_data())
        state = await response.get_json()
    return state


SKIP = object()
FULL = [
    ("sport", "running"),
    ("level", "intermediate"),
    ("weekly_hours", 6),
    ("goal", "improve_time"),
    ("preferred_distance_km", 21.1),
    ("race_in_mind", True),
    ("race_description", "Something flat in Paris, my city."),
    ("home_location", {"lat": 48.8566, "lng": 2.3522}),
    ("max_travel_km", 1000),
    ("notes", "My left knee complains after 15 km."),
]


async def test_intake_to_recommendation_to_accepted_goal_with_every_text_to_hare_once_in_order(
    app_client, auth_emulator, fake_fcm, fake_hare
):
    async with app_client(families(fake_fcm.url, fake_hare.url)) as client:
        ids = await catalogue(client, auth_emulator)
        runner = await athlete(client, auth_emulator)
        me = await (await client.get("/users/me", headers=runner)).get_json()

        state = await (await client.get("/onboarding/intake", headers=runner)).get_json()
        assert state["version"] == questionnaire.CURRENT and state["status"] == "in_progress"
        assert state["step"]["id"] == "sport" and "running" in state["step"]["options"]
        assert state["can_go_back"] is False

        await step_through(client, runner, FULL[:3])
        # Not the current step: 409 naming it. What the body's schema refuses (an unknown
        # step, an answer not of the step's type, skipping a required step): 422 saying why.
        wrong = await post(client, runner, "notes", "hello")
        assert wrong.status_code == 409
        assert "'goal'" in (await wrong.get_json())["detail"]
        for step, answer, action, why in [
            ("favourite_colour", "blue", "answer", "no step 'favourite_colour'"),
            ("goal", "win_olympics", "answer", "must be one of"),
            ("goal", None, "skip", "'goal' cannot be skipped"),
        ]:
            refused = await post(client, runner, step, answer, action=action)
            assert refused.status_code == 422, (step, action)
            assert why in (await refused.get_json())["detail"][0]["msg"]

        # Back one step, and answer it again.
        back = await post(client, runner, "goal", action="back")
        assert (await back.get_json())["step"]["id"] == "weekly_hours"
        await step_through(client, runner, [("weekly_hours", 6.5), *FULL[3:6]])

        fake_hare.fail_with = 503  # hare is down while the first texts are written
        await step_through(client, runner, [FULL[6]])
        await dispatcher_of(client).run_once()
        back = await post(client, runner, "home_location", action="back")  # withdraw the text
        assert (await back.get_json())["step"]["id"] == "race_description"
        await step_through(client, runner, [("race_description", "Paris, or Berlin if flat.")])
        await dispatcher_of(client).run_once()
        fake_hare.fail_with = None
        state = await step_through(client, runner, FULL[7:])
        assert state["status"] == "completed" and state["step"] is None
        assert state["answers"]["weekly_hours"] == 6.5

        # The profile is filled (the users family implements athlete_profile_filled).
        profiles = await (await client.get("/users_profiles", headers=runner)).get_json()
        assert [(p["sport"], p["level"], p["weekly_hours"], p["goals"]) for p in profiles] == [
            ("running", "intermediate", 6.5, ["Set a personal best"])
        ]
        completed = await post(client, runner, "notes", "more")
        assert completed.status_code == 409

        made = await client.post(
            "/onboarding/race-recommendations", json={"limit": 4}, headers=runner
        )
        assert made.status_code == 201, await made.get_data()
        ranking = await made.get_json()
        names = [item["event_name"] for item in ranking["items"]]
        assert len(names) == 4 and "Too Soon Half" not in names and "Paris Gran Fondo" not in names
        assert names[0] == "Paris Half"  # the right distance, time to prepare, close to home
        for item in ranking["items"]:
            assert [f["name"] for f in item["factors"]] == [
                "distance_fit",
                "weeks_to_prepare",
                "travel",
                "level",
            ]
            assert sum(f["weight"] for f in item["factors"]) == pytest.approx(1)
            assert item["score"] == pytest.approx(
                sum(f["weight"] * f["score"] for f in item["factors"]), abs=1e-3
            )
            assert all(f["explanation"] for f in item["factors"])
        scores = [item["score"] for item in ranking["items"]]
        assert scores == sorted(scores, reverse=True)
        again = await (
            await client.post("/onboarding/race-recommendations", json={"limit": 4}, headers=runner)
        ).get_json()
        assert [(i["event_id"], i["score"]) for i in again["items"]] == [
            (i["event_id"], i["score"]) for i in ranking["items"]
        ]
        latest = await (
            await client.get("/onboarding/race-recommendations", headers=runner)
        ).get_json()
        assert latest["id"] == again["id"]

        top = ranking["items"][0]
        replied = await client.post(
            f"/onboarding/race-recommendations/{top['id']}/replies",
            json={"text": "Perfect, I know the course."},
            headers=runner,
        )
        assert replied.status_code == 201
        accepted = await client.post(
            f"/onboarding/race-recommendations/{top['id']}/accept",
            json={"target_time_seconds": 6300},
            headers=runner,
        )
        assert accepted.status_code == 200, await accepted.get_data()
        body = await accepted.get_json()
        assert body["user_event"]["event"]["id"] == ids["Paris Half"]
        assert body["recommendation"]["accepted_at"]
        active = await (await client.get("/user_events/active", headers=runner)).get_json()
        assert active["event"]["id"] == ids["Paris Half"] and active["source"] == "onboarding"
        assert active["distance"]["km"] == 21.0975 and active["target_time_seconds"] == 6300

        await drain(dispatcher_of(client))
        expected = [
            "Something flat in Paris, my city.",
            "Paris, or Berlin if flat.",
            "My left knee complains after 15 km.",
            "Perfect, I know the course.",
        ]
        assert [e["body"]["text"] for e in fake_hare.stored.values()] == expected
        keys = fake_hare.stored_keys_of(me["id"])
        assert len(keys) == 4 and all(fake_hare.accepted(k).count(201) == 1 for k in keys)
        surfaces = [fake_hare.stored[k]["body"]["surface"] for k in keys]
        assert surfaces == ["intake", "intake", "intake", "race_recommendation"]
        assert any(c.status == 503 for c in fake_hare.records())  # it was down meanwhile

        export = await (await client.get("/account/export", headers=runner)).get_json()
        mine = export["families"]["onboarding"]
        assert mine["intake"]["status"] == "completed" and len(mine["recommendation_sets"]) == 2
        assert [r["text"] for r in mine["replies"]] == ["Perfect, I know the course."]


async def test_branches_optional_steps_and_an_old_version_finishes_as_it_started(
    app_client, auth_emulator
):
    async with app_client(families()) as client:
        runner = await athlete(client, auth_emulator)
        state = await step_through(
            client,
            runner,
            [
                ("sport", "cycling"),
                ("level", "beginner"),
                ("weekly_hours", 3),
                ("goal", "stay_fit"),
                ("preferred_distance_km", 60),
                ("race_in_mind", False),  # no race_description then
                ("home_location", SKIP),  # and no max_travel_km
            ],
        )
        assert state["step"]["id"] == "notes" and state["answers"]["home_location"] is None
        assert "race_description" not in state["history"]
        state = await step_through(client, runner, [("notes", SKIP)])
        assert state["status"] == "completed"
        made = await client.post("/onboarding/race-recommendations", json={}, headers=runner)
        assert made.status_code == 201 and (await made.get_json())["items"] == []

        # A user who started before the questionnaire changed keeps their version.
        older = await athlete(client, auth_emulator)
        await client.get("/onboarding/intake", headers=older)
        await IntakeSession.filter(status="in_progress").update(version="2024-09")
        state = await step_through(
            client,
            older,
            [("sport", "running"), ("level", "advanced"), ("weekly_hours", 8)],
        )
        assert state["version"] == "2024-09" and state["step"]["id"] == "preferred_distance_km"
        # A step of the current version only: the schema takes it, this intake has none.
        missing = await post(client, older, "goal", "stay_fit")
        assert missing.status_code == 409 and (await missing.get_json())["code"] == "not_in_version"
        assert "'preferred_distance_km'" in (await missing.get_json())["detail"]
        state = await step_through(
            client, older, [("preferred_distance_km", 42.2), ("notes", SKIP)]
        )
        assert state["status"] == "completed"
        # Starting over moves to the current version.
        assert (await client.delete("/onboarding/intake", headers=older)).status_code == 204
        fresh = await (await client.get("/onboarding/intake", headers=older)).get_json()
        assert fresh["version"] == questionnaire.CURRENT and fresh["history"] == []


async def test_no_user_reads_or_changes_another_users_intake_or_recommendations(
    app_client, auth_emulator
):
    async with app_client(families()) as client:
        await catalogue(client, auth_emulator)
        a, b = await athlete(client, auth_emulator), await athlete(client, auth_emulator)
        await step_through(client, a, FULL)
        ranking = await (
            await client.post("/onboarding/race-recommendations", json={}, headers=a)
        ).get_json()
        item = ranking["items"][0]["id"]
        before = await all_rows()
        assert (await client.get("/onboarding/race-recommendations", headers=b)).status_code == 404
        for path, body in (
            (f"/onboarding/race-recommendations/{item}/accept", {}),
            (f"/onboarding/race-recommendations/{item}/replies", {"text": "mine now"}),
            ("/onboarding/race-recommendations/2147483647/accept", {}),
            ("/onboarding/race-recommendations/99999999999/accept", {}),
        ):
            response = await client.post(path, json=body, headers=b)
            assert response.status_code == 404, path
            assert (await response.get_json())["code"] == "recommendation_not_found"
        early = await client.post("/onboarding/race-recommendations", json={}, headers=b)
        assert early.status_code == 409 and (await early.get_json())["code"] == "intake_incomplete"
        theirs = await (await client.get("/onboarding/intake", headers=b)).get_json()
        assert theirs["history"] == [] and theirs["answers"] == {}
        rows = await all_rows()
        # B's GET created B's own empty session; nothing of A's changed.
        assert {k: v for k, v in rows.items() if k != "onboarding_intake_session"} == {
            k: v for k, v in before.items() if k != "onboarding_intake_session"
        }
        assert (await client.get("/user_events/active", headers=b)).status_code == 404
        # B answering, going back and starting over on B's own intake leaves A's rows.
        a_id = (await (await client.get("/users/me", headers=a)).get_json())["id"]
        a_rows = await user_rows(a_id)
        await step_through(client, b, FULL[:2])
        assert (await post(client, b, "weekly_hours", action="back")).status_code == 200
        assert (await client.delete("/onboarding/intake", headers=b)).status_code == 204
        assert await user_rows(a_id) == a_rows
        # Every signed-in route of the family is one of those above.
        assert signed_in_routes(client, "onboarding") == {
            ("GET", "/onboarding/intake"),
            ("POST", "/onboarding/intake"),
            ("DELETE", "/onboarding/intake"),
            ("POST", "/onboarding/race-recommendations"),
            ("GET", "/onboarding/race-recommendations"),
            ("POST", "/onboarding/race-recommendations/<int:recommendation_id>/accept"),
            ("POST", "/onboarding/race-recommendations/<int:recommendation_id>/replies"),
        }


BAD_INPUT: dict[tuple[str, str], list[Any]] = {
    ("POST", "/onboarding/intake"): [
        {},
        {"answer": "running"},
        {"step": "sport"},
        {"step": "sport", "answer": "chess"},
        {"step": "sport", "answer": ["running"]},
        {"step": "Sport!", "answer": "running"},
        {"step": HUGE, "answer": "running"},
        {"step": "no_such_step", "answer": 1},
        {"step": "level", "answer": "beginner"},
        {"step": "sport", "action": "jump"},
        {"step": "sport", "action": "skip"},
        {"step": "sport", "action": "back"},
        {"step": "sport", "action": "skip", "answer": "running"},
        {"step": "sport", "answer": "running", "user_id": 1},
        [],
    ],
    ("POST", "/onboarding/race-recommendations"): [
        {"limit": 0},
        {"limit": 21},
        {"limit": "5"},
        {"x": 1},
    ],
    ("POST", "/onboarding/race-recommendations/<int:recommendation_id>/accept"): [
        {"target_time_seconds": 1},
        {"target_time_seconds": "fast"},
        {"event_id": 3},
    ],
    ("POST", "/onboarding/race-recommendations/<int:recommendation_id>/replies"): [
        {},
        {"text": ""},
        {"text": "   "},
        {"text": HUGE},
        {"text": 5},
        {"text": "nul\x00"},
    ],
}
ANSWERS_REFUSED = {
    "weekly_hours": [-1, 41, "six", True, None, float("inf")],
    "preferred_distance_km": [0, 401, [], {"km": 10}],
    "race_in_mind": ["yes", 1, None],
    "race_description": ["", "   ", "x" * 1001, 5],
    "home_location": [
        {"lat": 91, "lng": 0},
        {"lat": 0, "lng": 181},
        {"lat": "48"},
        [48, 2],
        {"lat": 1, "lng": 2, "alt": 3},
    ],
    "max_travel_km": [-5, 20001],
    "notes": [HUGE],
}


async def test_bad_input_on_every_route_is_a_4xx_that_writes_nothing(app_client, auth_emulator):
    async with app_client(families()) as client:
        taking_input = set()
        for rule in client.app.url_map.iter_rules():
            owner = runtime_of(client).blueprint_owners.get(rule.endpoint.rpartition(".")[0])
            declared = declared_endpoint(client.app.view_functions[rule.endpoint])
            if owner == "onboarding" and (declared.body or declared.query):
                taking_input |= {(m, rule.rule) for m in rule.methods - {"HEAD", "OPTIONS"}}
        assert taking_input == set(BAD_INPUT)
        await catalogue(client, auth_emulator)
        runner = await athlete(client, auth_emulator)
        await client.get("/onboarding/intake", headers=runner)
        ranking_user = await athlete(client, auth_emulator)
        await step_through(client, ranking_user, FULL)
        ranking = await (
            await client.post("/onboarding/race-recommendations", json={}, headers=ranking_user)
        ).get_json()
        item = str(ranking["items"][0]["id"])
        before = await all_rows()
        for (method, rule), cases in BAD_INPUT.items():
            path = rule.replace("<int:recommendation_id>", item)
            headers = runner if rule == "/onboarding/intake" else ranking_user
            for case in cases:
                response = await client.open(path, method=method, json=case, headers=headers)
                where = f"{method} {path} {str(case)[:60]}"
                assert response.status_code in (400, 409, 422), (where, response.status_code)
        assert await all_rows() == before

        # Every step refuses answers of the wrong type or out of range, one after another.
        state = await step_through(client, runner, FULL[:5])
        for step, value in FULL[5:]:
            assert state["step"]["id"] == step
            for wrong in ANSWERS_REFUSED.get(step, []):
                kept = await all_rows()
                response = await post(client, runner, step, wrong)
                assert response.status_code in (400, 422), (step, wrong)
                assert await all_rows() == kept
            state = await step_through(client, runner, [(step, value)])
        assert state["status"] == "completed"


async def test_onboarding_requires_events_and_disabling_it_leaves_events_whole(
    app_client, core_settings, auth_emulator, imperfect
):
    without_events = families()
    del without_events["events"]
    with pytest.raises(ConfigError, match="plugin 'onboarding': requires 'events'"):
        create_app(core_settings(without_events))
    checked = imperfect(
        "check", env={"IMPERFECT_DISABLE": "events", "IMPERFECT_ENABLE": "onboarding"}
    )
    assert checked.returncode != 0
    assert re.search(r"onboarding.*requires 'events'", checked.stderr + checked.stdout)

    async with app_client(families(onboarding=False)) as client:
        spec = await (await client.get("/openapi.json")).get_json()
        assert "/events" in spec["paths"] and "/user_events" in spec["paths"]
        assert not [p for p in spec["paths"] if p.startswith("/onboarding")]
        ids = await catalogue(client, auth_emulator)
        runner = await athlete(client, auth_emulator)
        found = await (await client.get("/events?q=paris")).get_json()
        assert ids["Paris Half"] in [i["id"] for i in found["items"]]
        goal = await client.post(
            "/user_events", json={"event_id": ids["Lyon Marathon"]}, headers=runner
        )
        assert goal.status_code == 201
        assert (await client.get("/onboarding/intake", headers=runner)).status_code == 404


async def test_account_deletion_erases_every_onboarding_row(app_client, auth_emulator):
    async with app_client(families()) as client:
        await catalogue(client, auth_emulator)
        runner = await athlete(client, auth_emulator)
        await step_through(client, runner, FULL)
        ranking = await (
            await client.post("/onboarding/race-recommendations", json={}, headers=runner)
        ).get_json()
        await client.post(
            f"/onboarding/race-recommendations/{ranking['items'][0]['id']}/replies",
            json={"text": "nice"},
            headers=runner,
        )
        assert (await client.delete("/account", headers=runner)).status_code == 204
        rows = await all_rows()
        for table in (
            "onboarding_intake_session",
            "onboarding_intake_answer",
            "onboarding_recommendation_set",
            "onboarding_recommendation",
            "onboarding_recommendation_reply",
            "events_user_event",
        ):
            assert rows[table] == [], table
