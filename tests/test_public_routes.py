"""The public_routes family through the real HTTP app: GPX uploads, the share contract
(manifest, GeoJSON, GPX, preview, page), the caller's routes, hostile uploads and floods,
share ids."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from PIL import Image

from plugins.public_routes.artifacts import PREVIEW_MAX_BYTES, PREVIEW_SIZE, slug_for
from plugins.public_routes.models import Route
from plugins.public_routes.service import new_share_id
from tests.support import bearer, new_account
from tests.support.gpx import (
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    deeply_nested,
    haversine_length,
    loop,
    many_points,
    track,
)

GPX = {"Content-Type": "application/gpx+xml"}
PUBLIC_URL = "https://routes.example.org"


def plugins(**settings: Any) -> dict[str, Any]:
    return {
        "users": {"module": "plugins.users"},
        "public_routes": {
            "module": "plugins.public_routes",
            "settings": {"public_url": PUBLIC_URL, **settings},
        },
    }


def peer(address: str) -> dict[str, Any]:
    """Request options for a client connecting from ``address``."""
    return {"scope_base": {"client": (address, 40000)}}


@pytest.fixture(autouse=True)
def limits_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("IMPERFECT_RATE_LIMITS", "IMPERFECT_RATE_LIMIT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    yield


async def signed_in(client: Any, auth_emulator: Any) -> dict[str, str]:
    headers = bearer(new_account(auth_emulator))
    assert (await client.post("/users", headers=headers)).status_code == 201
    return headers


def local(url: str) -> str:
    """The path and query of an absolute URL the app gave, to ask the test client."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def test_a_gpx_upload_makes_a_share_that_meets_the_contract(app_client, auth_emulator):
    points = loop(240)
    async with app_client(plugins()) as client:
        runner = await signed_in(client, auth_emulator)
        created = await client.post(
            "/routes?locale=fr",
            data=track(points, "Tour du lac d'Annecy 14.1 mi"),
            headers={**runner, **GPX},
        )
        assert created.status_code == 201, await created.get_data()
        route = await created.get_json()
        share_id = route["share_id"]
        assert route["title"] == "Tour du lac d'Annecy 14.1 mi" and route["locale"] == "fr"
        assert route["url"] == f"{PUBLIC_URL}/r/{share_id}/tour-du-lac-d-annecy"
        row = await Route.get(share_id=share_id)
        me = await (await client.get("/users/me", headers=runner)).get_json()
        assert row.user_id == me["id"] and len(row.points) == 240 and row.source == "gpx"

        spec = await (await client.get("/openapi.json")).get_json()
        answer = await client.get(f"/r/{share_id}/manifest.json")
        assert (
            answer.status_code == 200 and answer.headers["Cache-Control"] == "public, max-age=300"
        )
        etag = answer.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        manifest = await answer.get_json()
        schema = {"$ref": "#/components/schemas/ShareManifest", "components": spec["components"]}
        jsonschema.validate(manifest, schema)
        operation = spec["paths"]["/r/{share_id}/manifest.json"]["get"]
        assert operation["security"] == []
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ShareManifest"
        }

        lats, lngs = [p[0] for p in points], [p[1] for p in points]
        assert manifest["version"] == 1 and manifest["share_id"] == share_id
        assert manifest["canonical_slug"] == "tour-du-lac-d-annecy"
        assert manifest["title"] == "Tour du lac d'Annecy 14.1 mi"
        assert manifest["description"].startswith("Un parcours de ")
        assert manifest["preview_description"]
        assert manifest["request_paraphrase"] is None  # no request context: null, never ""
        assert manifest["alternatives"] == []
        assert (manifest["locale"], manifest["default_locale"], manifest["units"]) == (
            "fr",
            "en",
            "metric",
        )
        stats = manifest["stats"]
        assert stats["distance_m"] == pytest.approx(haversine_length(points), rel=0.002)
        assert stats["elevation_gain_m"] == pytest.approx(120, abs=6)
        assert stats["elevation_loss_m"] == pytest.approx(120, abs=6)
        assert stats["trail_ratio"] is None  # a GPX file does not say
        assert manifest["bounds"] == {
            "south": min(lats),
            "west": min(lngs),
            "north": max(lats),
            "east": max(lngs),
        }
        assert manifest["center"] == pytest.approx(
            {"lat": (min(lats) + max(lats)) / 2, "lng": (min(lngs) + max(lngs)) / 2}
        )
        assets = manifest["assets"]
        assert assets["page"] == route["url"]
        assert manifest["caching"] == {
            "manifest_max_age_s": 300,
            "assets_immutable": True,
            "offline_ok": True,
        }
        assert row.content_hash not in json.dumps(manifest)  # internal hashes stay internal

        # route.geojson: one Feature, empty properties, the input's geometry
        geo = await client.get(local(assets["geojson"]["url"]))
        assert geo.status_code == 200 and geo.mimetype == "application/geo+json"
        assert geo.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert geo.headers["ETag"] == assets["geojson"]["etag"]
        collection = await geo.get_json()
        assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 1
        feature = collection["features"][0]
        assert feature["type"] == "Feature" and feature["properties"] == {}
        assert feature["geometry"]["type"] == "LineString"
        assert feature["geometry"]["coordinates"] == [[lng, lat, ele] for lat, lng, ele in points]
        unversioned = await client.get(f"/r/{share_id}/route.geojson")
        assert unversioned.headers["Cache-Control"] == "public, max-age=300"
        again = await client.get(
            local(assets["geojson"]["url"]), headers={"If-None-Match": geo.headers["ETag"]}
        )
        assert again.status_code == 304 and not await again.get_data()

        # preview.jpg: a JPEG of the Open Graph size, within its bound
        preview = await client.get(local(assets["preview"]["url"]))
        assert preview.status_code == 200 and preview.mimetype == "image/jpeg"
        body = await preview.get_data()
        assert (
            len(body) <= PREVIEW_MAX_BYTES and preview.headers["ETag"] == assets["preview"]["etag"]
        )
        image = Image.open(io.BytesIO(body))
        image.load()
        assert image.format == "JPEG" and image.size == PREVIEW_SIZE
        assert len(set(image.convert("L").tobytes())) > 20  # a line and a profile, not a blank

        # route.gpx: the same track back
        gpx = await client.get(local(assets["gpx"]["url"]))
        assert gpx.status_code == 200 and gpx.mimetype == "application/gpx+xml"
        assert (await gpx.get_data()).count(b"<trkpt") == 240


async def test_the_page_is_html_in_the_share_locale_and_other_slugs_redirect(app_client):
    async with app_client(plugins()) as client:
        created = await client.post(
            "/routes/anonymous/gpx?locale=de&title=Rund%20um%20den%20See%2010k",
            data=track(loop(50)),
            headers=GPX,
        )
        assert created.status_code == 201, await created.get_data()
        share_id = (await created.get_json())["share_id"]
        canonical = f"/r/{share_id}/rund-um-den-see"
        for wrong in (f"/r/{share_id}", f"/r/{share_id}/rund-um-den-see-10k", f"/r/{share_id}/x"):
            moved = await client.get(wrong)
            assert moved.status_code == 301, wrong
            assert moved.headers["Location"] == canonical
        page = await client.get(canonical)
        assert page.status_code == 200 and page.mimetype == "text/html"
        html = (await page.get_data()).decode()
        assert '<html lang="de">' in html and "<title>Rund um den See 10k</title>" in html
        assert '<meta property="og:title" content="Rund um den See 10k">' in html
        assert (
            f'<meta property="og:image" content="{PUBLIC_URL}/r/{share_id}/preview.jpg?v=' in html
        )
        assert '<meta name="twitter:card" content="summary_large_image">' in html
        assert "<main>" in html and 'alt="Streckenverlauf und Höhenprofil' in html
        assert "<script" not in html and "Anstieg" in html


async def test_titles_are_escaped_and_slugs_carry_no_distances():
    assert slug_for("Half Marathon 21.1 km", "en") == "half-marathon"
    assert slug_for("14.1 mi", "en") == "route"
    assert slug_for("10k", "fr") == "parcours"
    assert slug_for("Été à Genève — boucle 5 miles", "fr") == "été-à-genève-boucle"
    assert len(slug_for("word " * 40, "en")) <= 60


async def test_a_title_cannot_inject_markup(app_client):
    async with app_client(plugins()) as client:
        title = '"><script>alert(1)</script>'
        created = await client.post(
            "/routes/anonymous/gpx",
            query_string={"title": title},
            data=track(loop(20)),
            headers=GPX,
        )
        route = await created.get_json()
        html = (await (await client.get(local(route["url"]))).get_data()).decode()
        assert "<script>" not in html and "&lt;script&gt;" in html


async def test_users_list_rename_and_delete_only_their_own_routes(app_client, auth_emulator):
    async with app_client(plugins()) as client:
        alice, bob = await signed_in(client, auth_emulator), await signed_in(client, auth_emulator)
        first = await (
            await client.post("/routes", data=track(loop(30), "Morning"), headers={**alice, **GPX})
        ).get_json()
        second = await (
            await client.post("/routes", data=track(loop(30), "Evening"), headers={**alice, **GPX})
        ).get_json()
        listed = await (await client.get("/routes", headers=alice)).get_json()
        assert [r["share_id"] for r in listed] == [second["share_id"], first["share_id"]]
        assert await (await client.get("/routes", headers=bob)).get_json() == []

        share = first["share_id"]
        for attempt in (
            client.patch(f"/routes/{share}", json={"title": "Mine now"}, headers=bob),
            client.delete(f"/routes/{share}", headers=bob),
        ):
            refused = await attempt
            assert (
                refused.status_code == 404
                and (await refused.get_json())["code"] == "route_not_found"
            )
        row = await Route.get(share_id=share)
        assert row.title == "Morning" and row.deleted_at is None

        renamed = await client.patch(
            f"/routes/{share}", json={"title": "Sunrise loop"}, headers=alice
        )
        assert renamed.status_code == 200 and (await renamed.get_json())["title"] == "Sunrise loop"
        old = await client.get(f"/r/{share}/morning")
        assert old.status_code == 301 and old.headers["Location"] == f"/r/{share}/sunrise-loop"
        bad = await client.patch(f"/routes/{share}", json={"title": ""}, headers=alice)
        assert bad.status_code == 422 and (await Route.get(share_id=share)).title == "Sunrise loop"

        assert (await client.delete(f"/routes/{share}", headers=alice)).status_code == 204
        for path in ("manifest.json", "route.geojson", "route.gpx", "preview.jpg", "sunrise-loop"):
            gone = await client.get(f"/r/{share}/{path}")
            assert gone.status_code == 404 and (await gone.get_json())["code"] == "share_deleted"
        assert (await Route.get(share_id=share)).points == []
        unknown = await client.get(f"/r/{new_share_id()}/manifest.json")
        assert (
            unknown.status_code == 404 and (await unknown.get_json())["code"] == "share_not_found"
        )
        assert [
            r["share_id"] for r in await (await client.get("/routes", headers=alice)).get_json()
        ] == [second["share_id"]]


async def test_export_and_account_deletion(app_client, auth_emulator):
    async with app_client(plugins()) as client:
        runner = await signed_in(client, auth_emulator)
        route = await (
            await client.post("/routes", data=track(loop(10)), headers={**runner, **GPX})
        ).get_json()
        export = await (await client.get("/account/export", headers=runner)).get_json()
        exported = export["families"]["public_routes"]["routes"]
        assert [r["share_id"] for r in exported] == [route["share_id"]] and len(
            exported[0]["points"]
        ) == 10
        assert (await client.delete("/account", headers=runner)).status_code == 204
        assert await Route.filter(share_id=route["share_id"]).count() == 0
        assert (await client.get(f"/r/{route['share_id']}/manifest.json")).status_code == 404


HOSTILE = {
    "entity expansion": (BILLION_LAUGHS, "gpx_forbidden_xml", 400),
    "external entity": (EXTERNAL_ENTITY, "gpx_forbidden_xml", 400),
    "deep nesting": (deeply_nested(), "gpx_too_deep", 400),
    "too many points": (many_points(1001), "gpx_too_many_points", 413),
    "malformed": (b"<gpx><trk>", "gpx_malformed", 400),
    "not gpx": (b"<kml xmlns='http://www.opengis.net/kml/2.2'/>", "gpx_malformed", 400),
    "one point": (many_points(1), "gpx_too_few_points", 400),
    "empty": (b"", "gpx_missing", 400),
    "off the globe": (track([(91.0, 0.0, 0.0), (0.0, 0.0, 0.0)]), "gpx_bad_coordinates", 400),
}


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_and_malformed_gpx_is_refused_and_writes_nothing(app_client, name):
    body, code, status = HOSTILE[name]
    async with app_client(plugins(max_points=1000)) as client:
        refused = await client.post("/routes/anonymous/gpx", data=body, headers=GPX)
        assert refused.status_code == status, await refused.get_data()
        assert (await refused.get_json())["code"] == code
        assert await Route.all().count() == 0


async def test_an_oversized_upload_is_refused_by_the_body_limit(app_client):
    # 10 million points would be some 240 MB: core's body limit refuses it unread.
    async with app_client(plugins(), max_body_bytes=65_536) as client:
        refused = await client.post("/routes/anonymous/gpx", data=many_points(3000), headers=GPX)
        assert refused.status_code == 413
        assert await Route.all().count() == 0
        fits = await client.post("/routes/anonymous/gpx", data=track(loop(100)), headers=GPX)
        assert fits.status_code == 201


async def test_parsing_has_a_time_limit(app_client):
    async with app_client(plugins(parse_timeout_seconds=0.000001)) as client:
        refused = await client.post("/routes/anonymous/gpx", data=track(loop(5_000)), headers=GPX)
        assert refused.status_code == 413 and (await refused.get_json())["code"] == "gpx_too_slow"
        assert await Route.all().count() == 0


async def test_a_flood_from_one_client_does_not_harm_another(app_client):
    body = track(loop(100))
    async with app_client(plugins()) as client:
        spec = await (await client.get("/openapi.json")).get_json()
        assert "429" in spec["paths"]["/routes/anonymous/gpx"]["post"]["responses"]

        async def upload(address: str) -> tuple[int, float]:
            started = time.perf_counter()
            answer = await client.post(
                "/routes/anonymous/gpx", data=body, headers=GPX, **peer(address)
            )
            return answer.status_code, time.perf_counter() - started

        flood = [upload("203.0.113.9") for _ in range(40)]
        others = [upload(f"198.51.100.{i}") for i in range(1, 9)]
        results = await asyncio.gather(*flood, *others)
        flooded, served = results[:40], results[40:]
        assert sorted(code for code, _ in flooded).count(201) == 5  # 5 a minute per address
        assert {code for code, _ in flooded} == {201, 429}
        assert [code for code, _ in served] == [201] * 8  # every other client got through
        assert max(seconds for _, seconds in served) < 5
        assert await Route.all().count() == 13
        refused = await client.post(
            "/routes/anonymous/gpx", data=body, headers=GPX, **peer("203.0.113.9")
        )
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        print(
            f"other clients' upload latency during the flood: median "
            f"{statistics.median(s for _, s in served) * 1000:.0f} ms"
        )


async def test_signed_in_planning_has_a_per_user_budget(app_client, auth_emulator):
    async with app_client(plugins()) as client:
        runner, other = (
            await signed_in(client, auth_emulator),
            await signed_in(client, auth_emulator),
        )
        body = track(loop(10))
        codes = [
            (
                await client.post(
                    "/routes", data=body, headers={**runner, **GPX}, **peer(f"192.0.2.{i}")
                )
            ).status_code
            for i in range(11)
        ]
        assert codes == [201] * 10 + [429]  # 10 a minute per user, whatever the address
        assert (
            await client.post("/routes", data=body, headers={**other, **GPX})
        ).status_code == 201


def test_share_ids_are_unique_and_leak_no_order():
    ids = [new_share_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {22}
    # In creation order, each id is greater than the one before about half the time: their
    # sort order says nothing of which came first (a counter or a timestamp gives ~100 %).
    rises = sum(a < b for a, b in itertools.pairwise(ids)) / (len(ids) - 1)
    assert 0.49 < rises < 0.51
    # Neighbours share no more leading characters than chance (a timestamp prefix would).
    shared = [
        sum(1 for _ in itertools.takewhile(lambda c: c[0] == c[1], zip(a, b, strict=True)))
        for a, b in itertools.pairwise(ids)
    ]
    assert statistics.mean(shared) < 0.05
    # Rank correlation between creation order and sort order is ~0.
    rank = {value: position for position, value in enumerate(sorted(ids))}
    n = len(ids)
    d2 = sum((i - rank[v]) ** 2 for i, v in enumerate(ids))
    assert abs(1 - 6 * d2 / (n * (n * n - 1))) < 0.02
