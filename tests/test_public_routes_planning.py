"""Planning through waypoints with a routing engine that speaks OSRM's HTTP API (the fake in
tests/fakes/osrm.py), its progress as Server-Sent Events, and its failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from plugins.public_routes.models import Route
from tests.fakes.osrm import FakeOsrm
from tests.support import bearer, new_account

AS_JSON = {"Accept": "application/json"}
PLAN = {
    "title": "Lakeside loop",
    "locale": "en",
    "waypoints": [
        {"lat": 45.9, "lng": 6.13},
        {"lat": 45.92, "lng": 6.16},
        {"lat": 45.9, "lng": 6.2},
    ],
}


@pytest.fixture
def osrm() -> Iterator[FakeOsrm]:
    fake = FakeOsrm().start()
    yield fake
    fake.stop()


def plugins(osrm_url: str) -> dict[str, Any]:
    return {
        "users": {"module": "plugins.users"},
        "public_routes": {"module": "plugins.public_routes", "settings": {"osrm_url": osrm_url}},
    }


async def signed_in(client: Any, auth_emulator: Any) -> dict[str, str]:
    headers = bearer(new_account(auth_emulator))
    assert (await client.post("/users", headers=headers)).status_code == 201
    return headers


async def test_planning_streams_coarse_steps_and_stores_the_engines_route(
    app_client, auth_emulator, osrm
):
    async with app_client(plugins(osrm.url)) as client:
        runner = await signed_in(client, auth_emulator)
        answer = await client.post(
            "/routes/plan/waypoints", json=PLAN, headers={**runner, "Accept": "text/event-stream"}
        )
        assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
        frames = [f for f in (await answer.get_data()).decode().split("\n\n") if f.strip()]
        events = [
            (
                next(line[7:] for line in f.splitlines() if line.startswith("event: ")),
                json.loads(next(line[6:] for line in f.splitlines() if line.startswith("data: "))),
            )
            for f in frames
            if not f.startswith(":")
        ]
        assert [name for name, _ in events] == ["progress"] * 4 + ["done"]
        assert [data["step"] for _, data in events[:4]] == [
            "accepted",
            "routing",
            "measuring",
            "saving",
        ]
        done = events[-1][1]
        assert osrm.calls == [
            {
                "profile": "foot",
                "coordinates": "6.130000,45.900000;6.160000,45.920000;6.200000,45.900000",
                "overview": "full",
                "geometries": "geojson",
                "steps": "false",
            }
        ]
        expected = osrm.geometry([[w["lng"], w["lat"]] for w in PLAN["waypoints"]])
        row = await Route.get(share_id=done["share_id"])
        assert row.source == "osrm" and row.title == "Lakeside loop"
        geo = await (await client.get(f"/r/{done['share_id']}/route.geojson")).get_json()
        assert geo["features"][0]["geometry"]["coordinates"] == expected
        manifest = await (await client.get(f"/r/{done['share_id']}/manifest.json")).get_json()
        assert manifest["stats"]["distance_m"] == done["stats"]["distance_m"] > 5000
        assert manifest["stats"]["estimated_duration_s"] == round(done["stats"]["distance_m"] / 1.4)
        assert (await client.get(f"/r/{done['share_id']}/preview.jpg")).status_code == 200


@pytest.mark.parametrize(
    ("setup", "code"),
    [({"no_route": True}, "no_route"), ({"fail_with": 503}, "upstream_unavailable")],
)
async def test_an_engine_that_cannot_route_ends_the_stream_with_failed(
    app_client, auth_emulator, osrm, setup, code
):
    for name, value in setup.items():
        setattr(osrm, name, value)
    async with app_client(plugins(osrm.url)) as client:
        runner = await signed_in(client, auth_emulator)
        answer = await client.post(
            "/routes/plan/waypoints", json=PLAN, headers={**runner, **AS_JSON}
        )
        assert answer.status_code == 200
        events = (await answer.get_json())["events"]
        assert [e["event"] for e in events] == ["progress", "progress", "failed"]
        assert events[-1]["data"]["code"] == code and "OSRM" not in json.dumps(events)
        assert await Route.all().count() == 0


async def test_without_a_routing_engine_planning_answers_503(app_client, auth_emulator):
    async with app_client(plugins("")) as client:
        runner = await signed_in(client, auth_emulator)
        answer = await client.post(
            "/routes/plan/waypoints", json=PLAN, headers={**runner, **AS_JSON}
        )
        assert answer.status_code == 503
        assert (await answer.get_json())["code"] == "routing_not_configured"
        bad = await client.post(
            "/routes/plan/waypoints",
            json={**PLAN, "waypoints": PLAN["waypoints"][:1]},
            headers=runner,
        )
        assert bad.status_code == 422 and await Route.all().count() == 0
