"""Routes and their shares: create from GPX, list, rename, delete, and the public views of a
share (manifest, GeoJSON, GPX, preview, page). No HTTP here."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import quote

from core import ApiError, User, utcnow
from plugins.public_routes import artifacts, gpx
from plugins.public_routes.clients import OsrmRoute, RoutingClient
from plugins.public_routes.models import Route
from plugins.public_routes.schemas import (
    FAMILY,
    ROUTING,
    Asset,
    Assets,
    Bounds,
    Caching,
    Feature,
    FeatureCollection,
    LineString,
    PlanIn,
    Point,
    RouteOut,
    ShareManifest,
    Stats,
)

SHARE_ID_BYTES = 16  # 128 random bits, 22 URL-safe characters
MANIFEST_MAX_AGE = 300


def new_share_id() -> str:
    """An opaque share id: random, so it says nothing of the route, its owner, when it was
    made or how many came before."""
    return secrets.token_urlsafe(SHARE_ID_BYTES)


def content_hash(points: list[list[float | None]]) -> str:
    """Versions the content-addressed assets (geometry and renderer); never shown whole."""
    payload = json.dumps([artifacts.RENDER_VERSION, points], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


async def parse_upload(data: bytes) -> gpx.Track:
    """Parse in a worker thread within the time limit, so a slow document cannot hold the
    event loop (the size and point limits bound how long the thread can run on)."""
    settings = FAMILY.settings
    if not data:
        raise ApiError(400, "gpx_missing", "Send the GPX file as the request body.")
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(gpx.parse, data, settings.max_points, settings.max_depth),
            settings.parse_timeout_seconds,
        )
    except TimeoutError as error:
        raise ApiError(413, "gpx_too_slow", "The GPX took too long to read.") from error


async def create_from_gpx(
    data: bytes, user: User | None, title: str | None, locale: str | None
) -> Route:
    track = await parse_upload(data)
    locale = locale or FAMILY.settings.default_locale
    points: list[list[float | None]] = [
        [round(lng, 7), round(lat, 7), None if ele is None else round(ele, 1)]
        for lng, lat, ele in track.points
    ]
    return await Route.create(
        share_id=new_share_id(),
        user_id=user.id if user is not None else None,
        title=title or track.name or artifacts.TEXTS[locale]["route"].capitalize(),
        locale=locale,
        source="gpx",
        points=points,
        distance_m=round(track.distance_m, 1),
        gain_m=round(track.gain_m, 1),
        loss_m=round(track.loss_m, 1),
        trail_ratio=None,  # a GPX file does not say which ways are trails
        duration_s=None,
        content_hash=content_hash(points),
    )


def routing() -> RoutingClient:
    """The routing engine's client; 503 when none is configured."""
    client = FAMILY.stash.get(ROUTING)
    if client is None:
        raise ApiError(503, "routing_not_configured", "Planning from waypoints is not set up.")
    return client


async def route_waypoints(client: RoutingClient, body: PlanIn) -> OsrmRoute:
    return await client.route([(w.lng, w.lat) for w in body.waypoints])


async def create_from_plan(planned: OsrmRoute, user: User, body: PlanIn) -> Route:
    """Store an engine's route. OSRM gives no elevation, so gain and loss are 0 until an
    elevation service is configured."""
    points: list[list[float | None]] = [
        [round(c[0], 7), round(c[1], 7), None] for c in planned.geometry.coordinates if len(c) >= 2
    ]
    if len(points) < 2:
        raise ApiError(502, "upstream_invalid", "The routing engine answered no geometry.")
    return await Route.create(
        share_id=new_share_id(),
        user_id=user.id,
        title=body.title,
        locale=body.locale or FAMILY.settings.default_locale,
        source="osrm",
        points=points,
        distance_m=round(planned.distance, 1),
        gain_m=0.0,
        loss_m=0.0,
        trail_ratio=None,
        duration_s=round(planned.duration),
        content_hash=content_hash(points),
    )


def page_path(route: Route) -> str:
    return f"/r/{route.share_id}/{quote(artifacts.slug_for(route.title, route.locale))}"


def route_out(route: Route) -> RouteOut:
    return RouteOut(
        share_id=route.share_id,
        title=route.title,
        locale=route.locale,
        url=FAMILY.settings.public_url.rstrip("/") + page_path(route),
        stats=stats(route),
        created_at=route.created_at,
    )


def stats(route: Route) -> Stats:
    return Stats(
        distance_m=route.distance_m,
        elevation_gain_m=route.gain_m,
        elevation_loss_m=route.loss_m,
        trail_ratio=route.trail_ratio,
        estimated_duration_s=route.duration_s,
    )


async def list_routes(user: User) -> list[RouteOut]:
    routes = await Route.filter(user_id=user.id, deleted_at=None).order_by("-created_at", "-id")
    return [route_out(route) for route in routes]


async def own_route(user: User, share_id: str) -> Route:
    route = await Route.get_or_none(share_id=share_id, user_id=user.id, deleted_at=None)
    if route is None:  # someone else's route looks exactly like a missing one
        raise ApiError(404, "route_not_found", "You have no route with this share id.")
    return route


async def rename(user: User, share_id: str, title: str) -> RouteOut:
    route = await own_route(user, share_id)
    route.title = title
    await route.save(update_fields=["title"])
    return route_out(route)


async def delete(user: User, share_id: str) -> None:
    """The share answers 404 ``share_deleted`` from now on; the geometry is gone."""
    route = await own_route(user, share_id)
    route.deleted_at = utcnow()
    route.points = []
    await route.save(update_fields=["deleted_at", "points"])


async def shared(share_id: str) -> Route:
    """The live route behind a share. Both an id never issued and a deleted route's are 404
    (the contract allows 404 or 410); the code tells them apart."""
    route = await Route.get_or_none(share_id=share_id)
    if route is None:
        raise ApiError(404, "share_not_found", "There is no share with this id.")
    if route.deleted_at is not None:
        raise ApiError(404, "share_deleted", "This route was deleted by its owner.")
    return route


def version(route: Route) -> str:
    return route.content_hash[:16]


def asset_url(route: Route, name: str) -> str:
    return f"{FAMILY.settings.public_url.rstrip('/')}/r/{route.share_id}/{name}?v={version(route)}"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def manifest(route: Route) -> ShareManifest:
    lngs = [p[0] or 0.0 for p in route.points]
    lats = [p[1] or 0.0 for p in route.points]
    base = FAMILY.settings.public_url.rstrip("/")
    text = artifacts.TEXTS[route.locale]
    return ShareManifest(
        share_id=route.share_id,
        canonical_slug=artifacts.slug_for(route.title, route.locale),
        title=route.title,
        description=artifacts.description(route.distance_m, route.gain_m, route.locale),
        preview_description=text["preview_alt"].format(title=route.title),
        request_paraphrase=None,  # a GPX upload has no request to paraphrase
        alternatives=[],
        locale=route.locale,
        default_locale=FAMILY.settings.default_locale,
        units="metric",
        stats=stats(route),
        center=Point(lat=(min(lats) + max(lats)) / 2, lng=(min(lngs) + max(lngs)) / 2),
        bounds=Bounds(south=min(lats), west=min(lngs), north=max(lats), east=max(lngs)),
        assets=Assets(
            geojson=Asset(
                url=asset_url(route, "route.geojson"),
                media_type="application/geo+json",
                etag=etag_of(geojson_bytes(route)),
            ),
            gpx=Asset(
                url=asset_url(route, "route.gpx"),
                media_type="application/gpx+xml",
                etag=etag_of(gpx_bytes(route)),
            ),
            preview=Asset(
                url=asset_url(route, "preview.jpg"),
                media_type="image/jpeg",
                etag=etag_of(preview_bytes(route)),
            ),
            page=base + page_path(route),
        ),
        caching=Caching(
            manifest_max_age_s=MANIFEST_MAX_AGE, assets_immutable=True, offline_ok=True
        ),
    )


def geojson_bytes(route: Route) -> bytes:
    coordinates = [[c for c in p if c is not None] for p in route.points]
    collection = FeatureCollection(features=[Feature(geometry=LineString(coordinates=coordinates))])
    return collection.model_dump_json().encode()


def gpx_bytes(route: Route) -> bytes:
    return gpx.to_gpx(route.title, route.points).encode()


_previews: dict[str, bytes] = {}
PREVIEW_CACHE = 256


def preview_bytes(route: Route) -> bytes:
    """Rendered once per content version and kept (a small in-memory cache)."""
    key = route.content_hash
    if key not in _previews:
        if len(_previews) >= PREVIEW_CACHE:
            _previews.pop(next(iter(_previews)))
        _previews[key] = artifacts.preview_jpeg(route.points)
    return _previews[key]


def page(route: Route) -> str:
    base = FAMILY.settings.public_url.rstrip("/")
    locale = route.locale
    text = artifacts.TEXTS[locale]
    width, height = artifacts.PREVIEW_SIZE
    return artifacts.page_html(
        locale=locale,
        og_locale={"en": "en_GB", "fr": "fr_FR", "de": "de_DE", "es": "es_ES"}[locale],
        title=route.title,
        description=artifacts.description(route.distance_m, route.gain_m, locale),
        page_url=base + page_path(route),
        preview_url=asset_url(route, "preview.jpg"),
        geojson_url=asset_url(route, "route.geojson"),
        gpx_url=asset_url(route, "route.gpx"),
        preview_width=width,
        preview_height=height,
        preview_alt=text["preview_alt"].format(title=route.title),
        texts=text,
        distance=artifacts.km(route.distance_m, locale),
        gain=f"{round(route.gain_m)} m",
        loss=f"{round(route.loss_m)} m",
        trail=None if route.trail_ratio is None else f"{round(route.trail_ratio * 100)} %",
    )


async def erase(user: User) -> None:
    await Route.filter(user_id=user.id).delete()


async def export(user: User) -> dict[str, Any]:
    routes = await Route.filter(user_id=user.id).order_by("id")
    return {
        "routes": [
            {
                "share_id": r.share_id,
                "title": r.title,
                "locale": r.locale,
                "source": r.source,
                "points": r.points,
                "stats": stats(r).model_dump(),
                "created_at": r.created_at.isoformat(),
                "deleted_at": r.deleted_at.isoformat() if r.deleted_at else None,
            }
            for r in routes
        ]
    }
