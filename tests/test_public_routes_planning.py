"""Planning through waypoints with a routing engine that speaks OSRM's HTTP API (the fake in
tests/fakes/osrm.py), its progress as Server-Sent Events, and its failures; planning from a
request in the user's words through cheshire (tests/fakes/cheshire.py) when the ``cheshire``
family is enabled; elevation from a service with Open Topo Data's API
(tests/fakes/elevation.py); and the readiness of both services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import gpxpy.geo
import pytest

from plugins.public_routes.models import Route
from tests.fakes.cheshire import API_KEY, INTERNAL, TRACE, FakeCheshire
from tests.fakes.elevation import FakeElevation
from tests.fakes.osrm import FakeOsrm
from tests.support import bearer, new_account
from tests.support.gpx import loop, track
from tests.support.ports import free_port
from tests.support.sse import declared

AS_JSON = {"Accept": "application/json"}
GPX = {"Content-Type": "application/gpx+xml"}
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


@pytest.fixture
def cheshire() -> Iterator[FakeCheshire]:
    fake = FakeCheshire().start()
    yield fake
    fake.stop()


@pytest.fixture
def elevation() -> Iterator[FakeElevation]:
    fake = FakeElevation().start()
    yield fake
    fake.stop()


def plugins(osrm_url: str, cheshire_url: str | None = None, **settings: Any) -> dict[str, Any]:
    """users and public_routes (its ``settings`` on top of ``osrm_url``); and cheshire, at
    ``cheshire_url``, when given."""
    families: dict[str, Any] = {
        "users": {"module": "plugins.users"},
        "public_routes": {
            "module": "plugins.public_routes",
            "settings": {"osrm_url": osrm_url, **settings},
        },
    }
    if cheshire_url is not None:
        families["cheshire"] = {
            "module": "plugins.cheshire",
            "settings": {"base_url": cheshire_url, "api_key": API_KEY},
        }
    return families


async def signed_in(client: Any, auth_emulator: Any) -> dict[str, str]:
    headers, _ = await signed_in_as(client, auth_emulator)
    return headers


async def signed_in_as(client: Any, auth_emulator: Any) -> tuple[dict[str, str], str]:
    """The headers of a new signed-in user, and their Firebase uid."""
    account = new_account(auth_emulator)
    headers = bearer(account)
    assert (await client.post("/users", headers=headers)).status_code == 201
    return headers, account.uid


async def stream(client: Any, path: str, body: Any, headers: dict[str, str]) -> list[Any]:
    """The ``(event, data)`` pairs of a planning stream, read as Server-Sent Events (each
    checked against the spec)."""
    answer = await client.post(path, json=body, headers={**headers, "Accept": "text/event-stream"})
    assert answer.mimetype == "text/event-stream"
    frames = await (await declared(client, path)).read(answer)
    return [(frame["event"], frame["data"]) for frame in frames]


def local(url: str) -> str:
    """The path and query of an absolute URL the app gave, to ask the test client."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


STEPS = ["accepted", "routing", "measuring", "saving"]


async def test_planning_streams_coarse_steps_and_stores_the_engines_route(
    app_client, auth_emulator, osrm
):
    async with app_client(plugins(osrm.url)) as client:
        runner = await signed_in(client, auth_emulator)
        events = await stream(client, "/routes/plan/waypoints", PLAN, runner)
        assert [name for name, _ in events] == ["progress"] * 4 + ["done"]
        assert [data["step"] for _, data in events[:4]] == STEPS
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
        # No elevation service: OSRM's geometry has no elevation, and the manifest says so.
        assert manifest["stats"]["elevation_source"] == "none"
        # ... and so claims no climbing: "A 5.2 km route.", the page's gain "unknown".
        assert "climbing" not in manifest["description"]
        assert manifest["description"].startswith("A ") and manifest["description"].endswith(
            " route."
        )
        page = urlsplit(manifest["assets"]["page"]).path
        html = (await (await client.get(page)).get_data()).decode()
        assert '<dd data-stat="gain">unknown</dd>' in html
        assert manifest["request_paraphrase"] is None and manifest["alternatives"] == []
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
        events = await (await declared(client, "/routes/plan/waypoints")).read(answer)
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


# --- planning from a request, through cheshire -------------------------------------------

REQUEST = {
    "text": "Une boucle plate de 10 km au bord du lac",
    "locale": "fr",
    "near": {"lat": 45.9, "lng": 6.13},
}


async def test_a_request_is_planned_by_cheshire_and_stored_with_its_alternatives(
    app_client, auth_emulator, osrm, cheshire, elevation
):
    async with app_client(plugins(osrm.url, cheshire.url, **with_elevation(elevation))) as client:
        runner, uid = await signed_in_as(client, auth_emulator)
        events = await stream(client, "/routes/plan/request", REQUEST, runner)
        assert [name for name, _ in events] == ["progress"] * 4 + ["done"]
        assert [data["step"] for _, data in events[:4]] == STEPS  # the waypoints route's
        done = events[-1][1]
        [call] = cheshire.calls
        assert call.path == "/v1/route-plans" and call.authorization == f"Bearer {API_KEY}"
        assert call.body == {
            "request": REQUEST["text"],
            "user_id": uid,
            "locale": "fr",
            "near": REQUEST["near"],
        }
        plan = cheshire.plan(REQUEST["text"], REQUEST["near"])
        # Each of cheshire's routes, routed through the engine, in order.
        assert [c["coordinates"] for c in osrm.calls] == [
            ";".join(f"{w['lng']:.6f},{w['lat']:.6f}" for w in route["waypoints"])
            for route in plan["routes"]
        ]
        main, alternative = await Route.all().order_by("id")
        assert main.share_id == done["share_id"] and done["title"] == "Lakeside loop"
        assert {main.source, alternative.source} == {"request"}
        assert main.plan_id and main.plan_id == alternative.plan_id
        assert main.request_paraphrase == alternative.request_paraphrase == plan["paraphrase"]
        geo = await (await client.get(f"/r/{main.share_id}/route.geojson")).get_json()
        line = osrm.geometry([[w["lng"], w["lat"]] for w in plan["routes"][0]["waypoints"]])
        heights = [FakeElevation.height(lat, lng) for lng, lat in line]
        assert geo["features"][0]["geometry"]["coordinates"] == [
            [lng, lat, height] for (lng, lat), height in zip(line, heights, strict=True)
        ]
        assert len(elevation.calls) == 2  # one batch for each route

        manifest = await (await client.get(f"/r/{main.share_id}/manifest.json")).get_json()
        assert manifest["request_paraphrase"] == plan["paraphrase"]
        assert manifest["locale"] == "fr"
        gain, loss = gpxpy.geo.calculate_uphill_downhill(heights)
        assert manifest["stats"]["elevation_source"] == "service"
        assert manifest["stats"]["elevation_gain_m"] == round(gain, 1) > 0
        assert manifest["stats"]["elevation_loss_m"] == round(loss, 1) > 0
        [sibling] = manifest["alternatives"]
        assert sibling["share_id"] == alternative.share_id
        assert sibling["title"] == "Shorter loop 1"
        page = await client.get(local(sibling["url"]))
        assert page.status_code == 200 and "Shorter loop 1" in (await page.get_data()).decode()
        other = await (await client.get(f"/r/{alternative.share_id}/manifest.json")).get_json()
        assert [a["share_id"] for a in other["alternatives"]] == [main.share_id]
        assert other["request_paraphrase"] == plan["paraphrase"]
        assert other["stats"]["distance_m"] < manifest["stats"]["distance_m"]
        assert other["stats"]["elevation_source"] == "service"

        export = await (await client.get("/account/export", headers=runner)).get_json()
        exported = export["families"]["public_routes"]["routes"]
        assert [r["request_paraphrase"] for r in exported] == [plan["paraphrase"]] * 2
        # A deleted sibling is no longer offered; the caller lists both routes.
        listed = await (await client.get("/routes", headers=runner)).get_json()
        assert {r["share_id"] for r in listed} == {main.share_id, alternative.share_id}
        assert (
            await client.delete(f"/routes/{alternative.share_id}", headers=runner)
        ).status_code == 204
        manifest = await (await client.get(f"/r/{main.share_id}/manifest.json")).get_json()
        assert manifest["alternatives"] == []
        text = json.dumps(events)
        assert INTERNAL not in text and "cheshire" not in text


async def test_a_plan_without_a_paraphrase_keeps_the_request_as_written(
    app_client, auth_emulator, osrm, cheshire
):
    plan = cheshire.plan("anything", None)
    cheshire.route_plan = {**plan, "paraphrase": "  \n ", "routes": plan["routes"][:1]}
    async with app_client(plugins(osrm.url, cheshire.url)) as client:
        runner = await signed_in(client, auth_emulator)
        body = {"text": "  a  hilly\tloop  ", "locale": "en"}
        events = await stream(client, "/routes/plan/request", body, runner)
        done = events[-1][1]
        assert cheshire.calls[0].body == {
            "request": body["text"],
            "user_id": cheshire.calls[0].body["user_id"],
            "locale": "en",
        }
        manifest = await (await client.get(f"/r/{done['share_id']}/manifest.json")).get_json()
        assert manifest["request_paraphrase"] == "a hilly loop"  # never an empty string
        assert manifest["alternatives"] == []
        assert (await Route.get(share_id=done["share_id"])).plan_id is None


def waypoints(count: int, lat: float = 45.9) -> list[dict[str, Any]]:
    return [{"lat": lat, "lng": round(6.13 + 0.001 * n, 6)} for n in range(count)]


@pytest.mark.parametrize(
    ("routes", "code"),
    [
        ([{"title": "One", "waypoints": waypoints(1)}], "plan_invalid"),
        ([{"title": "Many", "waypoints": waypoints(26)}], "plan_invalid"),
        ([{"title": "Pole", "waypoints": waypoints(2, lat=95.0)}], "plan_invalid"),
        (
            [{"waypoints": [{"lat": "45.9", "lng": "6.13"}, {"lat": 45.9, "lng": 6.2}]}],
            "plan_invalid",
        ),
        ([{"waypoints": [{"lat": 45.9}, {"lng": 6.2}]}], "plan_invalid"),
        ([{"waypoints": waypoints(3)}, {"waypoints": waypoints(1)}], "plan_invalid"),
        ([], "upstream_invalid"),  # not even a plan, by cheshire's contract
    ],
    ids=[
        "one-waypoint",
        "26-waypoints",
        "off-the-globe",
        "strings",
        "half-points",
        "bad-alternative",
        "no-routes",
    ],
)
async def test_a_plan_cheshire_got_wrong_ends_with_failed_and_stores_nothing(
    app_client, auth_emulator, osrm, cheshire, routes, code
):
    cheshire.route_plan = {"plan_id": "plan_x", "paraphrase": "A loop", "routes": routes}
    async with app_client(plugins(osrm.url, cheshire.url)) as client:
        runner = await signed_in(client, auth_emulator)
        events = await stream(client, "/routes/plan/request", REQUEST, runner)
        assert [(name, data.get("step")) for name, data in events] == [
            ("progress", "accepted"),
            ("failed", None),
        ]
        assert events[-1][1]["code"] == code and events[-1][1]["detail"]
        assert osrm.calls == [] and await Route.all().count() == 0


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("refuse", "request_refused"),
        ("down", "upstream_unavailable"),
        ("error", "upstream_unavailable"),
        ("slow", "upstream_timeout"),
    ],
)
async def test_cheshire_refusing_failing_or_slow_ends_with_failed_in_our_words(
    app_client, auth_emulator, osrm, cheshire, mode, code
):
    cheshire.mode, cheshire.delay = mode, 3.0
    settings = {"planner_timeout_seconds": 0.5}
    async with app_client(plugins(osrm.url, cheshire.url, **settings)) as client:
        runner = await signed_in(client, auth_emulator)
        events = await stream(client, "/routes/plan/request", REQUEST, runner)
        assert [name for name, _ in events] == ["progress", "failed"]
        assert events[-1][1]["code"] == code
        text = json.dumps(events)
        assert INTERNAL not in text and TRACE not in text and "cheshire" not in text
        assert "HTTP" not in text and osrm.calls == []
        assert await Route.all().count() == 0


async def test_an_engine_that_cannot_route_the_plan_fails_it_and_alternatives_are_optional(
    app_client, auth_emulator, osrm, cheshire
):
    async with app_client(plugins(osrm.url, cheshire.url)) as client:
        runner = await signed_in(client, auth_emulator)
        osrm.no_route = True
        events = await stream(client, "/routes/plan/request", REQUEST, runner)
        assert [name for name, _ in events] == ["progress", "progress", "failed"]
        assert events[-1][1]["code"] == "no_route" and await Route.all().count() == 0
        # An alternative the engine cannot route is left out; the route asked for is kept.
        osrm.no_route = False
        cheshire.alternatives = 2
        plan = cheshire.plan(REQUEST["text"], REQUEST["near"])
        second = plan["routes"][1]["waypoints"][1]
        osrm.unreachable = {(second["lng"], second["lat"])}
        events = await stream(client, "/routes/plan/request", REQUEST, runner)
        assert events[-1][0] == "done" and len(osrm.calls) == 1 + 3
        main, kept = await Route.all().order_by("id")
        assert kept.title == "Shorter loop 2" and main.plan_id == kept.plan_id
        manifest = await (await client.get(f"/r/{main.share_id}/manifest.json")).get_json()
        assert [a["share_id"] for a in manifest["alternatives"]] == [kept.share_id]


@pytest.mark.parametrize(
    "body",
    [
        {**REQUEST, "text": "x" * 501},
        {**REQUEST, "text": "   \n\t "},
        {**REQUEST, "text": "a loop\x00 by the lake"},
        {**REQUEST, "text": "a loop\x1b[31m by the lake"},
        {**REQUEST, "locale": "it"},
        {**REQUEST, "near": {"lat": 91, "lng": 6.1}},
        {**REQUEST, "text": 42},
        {"text": "a loop"},
        {**REQUEST, "waypoints": []},
    ],
    ids=["too-long", "blank", "nul", "escape", "locale", "near", "number", "no-locale", "extra"],
)
async def test_a_hostile_or_malformed_request_is_refused_before_cheshire_is_asked(
    app_client, auth_emulator, osrm, cheshire, body
):
    async with app_client(plugins(osrm.url, cheshire.url)) as client:
        runner = await signed_in(client, auth_emulator)
        answer = await client.post("/routes/plan/request", json=body, headers=runner)
        assert answer.status_code == 422
        assert cheshire.calls == [] and await Route.all().count() == 0


async def test_without_cheshire_planning_from_a_request_answers_503_and_the_spec_says_so(
    app_client, auth_emulator, osrm
):
    async with app_client(plugins(osrm.url)) as client:
        runner = await signed_in(client, auth_emulator)
        answer = await client.post(
            "/routes/plan/request", json=REQUEST, headers={**runner, **AS_JSON}
        )
        assert answer.status_code == 503
        error = await answer.get_json()
        assert error["code"] == "planner_unavailable" and "cheshire" in error["detail"]
        assert osrm.calls == [] and await Route.all().count() == 0
        spec = await (await client.get("/openapi.json")).get_json()
        operation = spec["paths"]["/routes/plan/request"]["post"]
        assert "planner_unavailable" in operation["description"]
        assert "503" in operation["responses"]
        # The waypoints route does not need a planner.
        events = await stream(client, "/routes/plan/waypoints", PLAN, runner)
        assert events[-1][0] == "done"


async def test_with_cheshire_but_no_routing_engine_a_request_answers_503(
    app_client, auth_emulator, cheshire
):
    async with app_client(plugins("", cheshire.url)) as client:
        runner = await signed_in(client, auth_emulator)
        answer = await client.post("/routes/plan/request", json=REQUEST, headers=runner)
        assert answer.status_code == 503
        assert (await answer.get_json())["code"] == "routing_not_configured"
        assert cheshire.calls == []


# --- elevation from a service --------------------------------------------------------------


def with_elevation(fake: FakeElevation | str, **settings: Any) -> dict[str, Any]:
    url = fake if isinstance(fake, str) else fake.url
    return {"elevation_url": url, "elevation_dataset": "srtm30m", **settings}


def gpx_without_elevation(points: list[tuple[float, float]]) -> bytes:
    body = "".join(f'<trkpt lat="{lat}" lon="{lng}"/>' for lat, lng in points)
    return (
        '<gpx version="1.1" creator="tests" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><name>Flat file</name><trkseg>{body}</trkseg></trk></gpx>"
    ).encode()


async def test_a_planned_route_takes_its_elevation_from_the_service_in_batches_of_100(
    app_client, auth_emulator, osrm, elevation
):
    osrm.steps = 60  # 3 waypoints: 121 points, two requests
    async with app_client(plugins(osrm.url, **with_elevation(elevation))) as client:
        runner = await signed_in(client, auth_emulator)
        events = await stream(client, "/routes/plan/waypoints", PLAN, runner)
        done = events[-1][1]
        line = osrm.geometry([[w["lng"], w["lat"]] for w in PLAN["waypoints"]])
        assert [len(call.locations) for call in elevation.calls] == [100, 21]
        assert {call.dataset for call in elevation.calls} == {"srtm30m"}
        asked = [location for call in elevation.calls for location in call.locations]
        assert asked == [(lat, lng) for lng, lat in line]
        heights = [FakeElevation.height(lat, lng) for lng, lat in line]
        geo = await (await client.get(f"/r/{done['share_id']}/route.geojson")).get_json()
        assert geo["features"][0]["geometry"]["coordinates"] == [
            [lng, lat, height] for (lng, lat), height in zip(line, heights, strict=True)
        ]
        gain, loss = gpxpy.geo.calculate_uphill_downhill(heights)
        manifest = await (await client.get(f"/r/{done['share_id']}/manifest.json")).get_json()
        assert manifest["stats"]["elevation_source"] == "service"
        assert manifest["stats"]["elevation_gain_m"] == round(gain, 1) > 100
        assert manifest["stats"]["elevation_loss_m"] == round(loss, 1) > 0
        assert done["stats"] == manifest["stats"]


async def test_a_long_route_asks_for_at_most_elevation_max_points_and_interpolates(
    app_client, auth_emulator, osrm, elevation
):
    osrm.steps = 200  # 401 points
    settings = with_elevation(elevation, elevation_max_points=50)
    async with app_client(plugins(osrm.url, **settings)) as client:
        runner = await signed_in(client, auth_emulator)
        done = (await stream(client, "/routes/plan/waypoints", PLAN, runner))[-1][1]
        [call] = elevation.calls
        line = osrm.geometry([[w["lng"], w["lat"]] for w in PLAN["waypoints"]])
        assert len(call.locations) == 50
        assert call.locations[0] == (line[0][1], line[0][0])
        assert call.locations[-1] == (line[-1][1], line[-1][0])
        geo = await (await client.get(f"/r/{done['share_id']}/route.geojson")).get_json()
        sampled = set(call.locations)
        for lng, lat, height in geo["features"][0]["geometry"]["coordinates"]:
            expected = FakeElevation.height(lat, lng)
            if (lat, lng) in sampled:
                assert height == expected
            else:  # by distance between samples 8 points apart: off only at the corners
                assert height == pytest.approx(expected, abs=5)


async def test_a_gpx_without_elevation_asks_the_service_one_with_elevation_does_not(
    app_client, auth_emulator, elevation
):
    flat = [(round(45.9 + 0.001 * n, 6), round(6.13 + 0.0005 * n, 6)) for n in range(30)]
    async with app_client(plugins("", **with_elevation(elevation))) as client:
        runner = await signed_in(client, auth_emulator)
        created = await client.post(
            "/routes", data=gpx_without_elevation(flat), headers={**runner, **GPX}
        )
        assert created.status_code == 201
        stats = (await created.get_json())["stats"]
        assert [call.locations for call in elevation.calls] == [flat]
        heights = [FakeElevation.height(lat, lng) for lat, lng in flat]
        assert stats["elevation_source"] == "service"
        assert stats["elevation_gain_m"] == round(heights[-1] - heights[0], 1)
        assert stats["elevation_loss_m"] == 0
        # A track with its own elevation keeps it: the service is not asked.
        created = await client.post("/routes", data=track(loop(60)), headers={**runner, **GPX})
        assert (await created.get_json())["stats"]["elevation_source"] == "track"
        assert len(elevation.calls) == 1


@pytest.mark.parametrize("failure", ["down", "slow", "closed"])
async def test_with_the_elevation_service_down_the_route_is_still_stored_and_says_so(
    app_client, auth_emulator, osrm, elevation, failure
):
    url = elevation.url
    if failure == "down":
        elevation.fail_with = 503
    elif failure == "slow":
        elevation.delay = 5.0
    else:
        url = f"http://127.0.0.1:{free_port()}"
    settings = with_elevation(url, elevation_timeout_seconds=0.5)
    async with app_client(plugins(osrm.url, **settings)) as client:
        runner = await signed_in(client, auth_emulator)
        events = await stream(client, "/routes/plan/waypoints", PLAN, runner)
        assert [name for name, _ in events] == ["progress"] * 4 + ["done"]
        done = events[-1][1]
        manifest = await (await client.get(f"/r/{done['share_id']}/manifest.json")).get_json()
        assert manifest["stats"]["elevation_source"] == "none"  # nothing known of it
        assert manifest["stats"]["elevation_gain_m"] == manifest["stats"]["elevation_loss_m"] == 0
        # A GPX with some elevation keeps what it has.
        partial = (
            track(loop(40)).replace(b"<ele>", b"<!-- <ele>", 5).replace(b"</ele>", b"</ele> -->", 5)
        )
        created = await client.post("/routes", data=partial, headers={**runner, **GPX})
        assert created.status_code == 201
        stats = (await created.get_json())["stats"]
        assert stats["elevation_source"] == "partial" and stats["elevation_gain_m"] > 0
        assert await Route.all().count() == 2


# --- readiness -------------------------------------------------------------------------------


async def readiness(client: Any) -> tuple[int, dict[str, Any]]:
    answer = await client.get("/readyz")
    return answer.status_code, await answer.get_json()


async def test_readiness_checks_the_routing_engine_and_the_elevation_service(
    app_client, osrm, elevation
):
    async with app_client(plugins(osrm.url, **with_elevation(elevation))) as client:
        status, report = await readiness(client)
        assert status == 200 and report["status"] == "ready"
        checks = report["plugins"]["public_routes"]["checks"]
        reachable = {"ok": True, "error": None, "detail": "reachable"}
        assert checks["routing_engine"] == checks["elevation_service"] == reachable
        assert osrm.nearest_calls == ["0.000000,0.000000"]
        assert [call.locations for call in elevation.calls] == [[(0.0, 0.0)]]

        osrm.fail_with = elevation.fail_with = 503
        status, report = await readiness(client)
        assert status == 200 and report["status"] == "degraded"  # a sibling down: not a 503
        assert report["degraded"] == ["public_routes"]
        checks = report["plugins"]["public_routes"]["checks"]
        assert not checks["routing_engine"]["ok"] and not checks["elevation_service"]["ok"]
        assert "127.0.0.1" not in json.dumps(report)
        assert len(osrm.nearest_calls) == 2  # the check is never retried

        osrm.fail_with = elevation.fail_with = None
        assert (await readiness(client))[1]["status"] == "ready"


async def test_readiness_with_both_services_unreachable_or_unconfigured(app_client):
    closed = f"http://127.0.0.1:{free_port()}"
    async with app_client(plugins(closed, **with_elevation(closed))) as client:
        status, report = await readiness(client)
        assert status == 200 and report["status"] == "degraded"
        checks = report["plugins"]["public_routes"]["checks"]
        assert checks["routing_engine"] == {"ok": False, "error": "unreachable", "detail": None}
        assert checks["elevation_service"]["error"] == "unreachable"
    async with app_client(plugins("")) as client:
        status, report = await readiness(client)
        assert status == 200 and report["status"] == "ready"
        checks = report["plugins"]["public_routes"]["checks"]
        assert checks["routing_engine"]["ok"]
        assert checks["routing_engine"]["detail"].startswith("off: no osrm_url")
        assert "elevation_service" not in checks  # elevation from the track: nothing to check
