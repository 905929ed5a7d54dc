"""Routes and their shares: create from GPX, list, rename, delete, and the public views of a
share (manifest, GeoJSON, GPX, preview, page). No HTTP here."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import inspect
import itertools
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import gpxpy.geo
from pydantic import ValidationError
from tortoise.transactions import in_transaction

from core import ApiError, LoadedPlugin, Platform, User, utcnow
from plugins.public_routes import artifacts, gpx
from plugins.public_routes.clients import OsrmRoute, RoutingClient
from plugins.public_routes.hookspecs import (
    PARAPHRASE_MAX,
    TITLE_MAX,
    RouteRequestPlan,
    plain_text,
)
from plugins.public_routes.models import Route
from plugins.public_routes.schemas import (
    ELEVATION,
    FAMILY,
    ROUTING,
    Alternative,
    Asset,
    Assets,
    Bounds,
    Caching,
    ElevationSource,
    Feature,
    FeatureCollection,
    LineString,
    PlanIn,
    Point,
    RequestPlanIn,
    RouteOut,
    ShareManifest,
    Stats,
)

log = logging.getLogger("imperfect.public_routes")

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
    measured = await measure(points, track.gain_m, track.loss_m)
    return await Route.create(
        share_id=new_share_id(),
        user_id=user.id if user is not None else None,
        title=title or track.name or artifacts.TEXTS[locale]["route"].capitalize(),
        locale=locale,
        source="gpx",
        points=measured.points,
        distance_m=round(track.distance_m, 1),
        gain_m=measured.gain_m,
        loss_m=measured.loss_m,
        elevation_source=measured.source,
        trail_ratio=None,  # a GPX file does not say which ways are trails
        duration_s=None,
        content_hash=content_hash(measured.points),
    )


def routing() -> RoutingClient:
    """The routing engine's client; 503 when none is configured."""
    client = FAMILY.stash.get(ROUTING)
    if client is None:
        raise ApiError(503, "routing_not_configured", "Planning from waypoints is not set up.")
    return client


@dataclass(frozen=True)
class Draft:
    """One route to ask the engine for: its title and its waypoints as ``(lng, lat)``."""

    title: str
    waypoints: list[tuple[float, float]]


@dataclass(frozen=True)
class Plan:
    """What a planning stream routes and stores: the route asked for first, then its
    alternatives (sibling shares), in one locale; a request's routes carry its paraphrase."""

    drafts: list[Draft]
    locale: str
    source: str  # "osrm" (waypoints) or "request"
    paraphrase: str | None = None


@dataclass(frozen=True)
class Measured:
    """A route's points with the elevation known of them, and its gain and loss."""

    points: list[list[float | None]]
    gain_m: float
    loss_m: float
    source: ElevationSource


def waypoint_plan(body: PlanIn) -> Plan:
    waypoints = [(w.lng, w.lat) for w in body.waypoints]
    return Plan(
        [Draft(body.title, waypoints)], body.locale or FAMILY.settings.default_locale, "osrm"
    )


def planners(platform: Platform) -> list[tuple[LoadedPlugin, Any]]:
    """The families that interpret requests (``interpret_route_request``); 503 when none is."""
    found = platform.impls("interpret_route_request")
    if not found:
        raise ApiError(
            503,
            "planner_unavailable",
            "Planning from a request needs a planner (cheshire), which is not enabled here.",
        )
    return found


PLANNER_WORDS: Mapping[str, str] = {
    "upstream_unavailable": "The route planner is not answering; try again later.",
    "upstream_timeout": "The route planner took too long to answer; try again later.",
    "upstream_invalid": "The route planner could not make a plan; try again later.",
}


async def request_plan(
    platform: Platform, found: list[tuple[LoadedPlugin, Any]], user: User, body: RequestPlanIn
) -> Plan:
    """Ask each planner in turn; the first plan that validates is used. A planner's failure
    is an ApiError in our words (nothing of the planner's internals passes)."""
    near = None if body.near is None else {"lat": body.near.lat, "lng": body.near.lng}
    for plugin, impl in found:
        try:
            async with asyncio.timeout(FAMILY.settings.planner_timeout_seconds):
                answer = platform.call_one(
                    plugin, impl, user=user, request_text=body.text, locale=body.locale, near=near
                )
                if inspect.isawaitable(answer):
                    answer = await answer
        except TimeoutError as error:
            log.warning("interpret_route_request of %s ran out of time", plugin.name)
            words = PLANNER_WORDS["upstream_timeout"]
            raise ApiError(504, "upstream_timeout", words) from error
        except ApiError as error:
            words = PLANNER_WORDS.get(error.code, error.detail)
            raise ApiError(error.status, error.code, words) from error
        except Exception as error:
            log.exception("interpret_route_request of %s failed", plugin.name)
            raise ApiError(502, "planner_failed", "The route planner failed; try again.") from error
        if answer is None:
            continue
        try:
            plan = RouteRequestPlan.model_validate(answer, from_attributes=True)
        except ValidationError as error:
            log.warning("interpret_route_request of %s: no usable plan: %s", plugin.name, error)
            raise ApiError(
                502,
                "plan_invalid",
                "The route planner's answer was not a usable route "
                "(2 to 25 waypoints, each on the globe); nothing was stored.",
            ) from error
        title = plan.title or artifacts.TEXTS[body.locale]["route"].capitalize()
        drafts = [Draft(title, [(w.lng, w.lat) for w in plan.waypoints])]
        for n, other in enumerate(plan.alternatives, start=2):
            alternative = other.title or f"{title[: TITLE_MAX - 5]} ({n})"
            drafts.append(Draft(alternative, [(w.lng, w.lat) for w in other.waypoints]))
        # Never an empty paraphrase: without the planner's, the request as written.
        paraphrase = plan.paraphrase or plain_text(body.text, PARAPHRASE_MAX)
        return Plan(drafts, body.locale, "request", paraphrase)
    raise ApiError(503, "planner_unavailable", "No route planner can read requests right now.")


async def route_plan(engine: RoutingClient, plan: Plan) -> list[tuple[Draft, OsrmRoute]]:
    """The engine's route for each draft: the first must route; an alternative that does
    not is left out."""
    routed = [(plan.drafts[0], await engine.route(plan.drafts[0].waypoints))]
    for draft in plan.drafts[1:]:
        try:
            routed.append((draft, await engine.route(draft.waypoints)))
        except ApiError as error:
            log.info("an alternative was left out: the engine answered %s", error.code)
    return routed


def engine_points(planned: OsrmRoute) -> list[list[float | None]]:
    points: list[list[float | None]] = [
        [round(c[0], 7), round(c[1], 7), None]
        for c in planned.geometry.coordinates
        if len(c) >= 2 and -180 <= c[0] <= 180 and -90 <= c[1] <= 90
    ]
    if len(points) < 2:
        raise ApiError(502, "upstream_invalid", "The routing engine answered no geometry.")
    return points


async def measure(
    points: list[list[float | None]], gain_m: float = 0.0, loss_m: float = 0.0
) -> Measured:
    """Elevation from the elevation service when one is configured and some points have
    none; otherwise, and whenever the service fails, what is known: the points' own
    elevations with ``gain_m`` and ``loss_m`` (the track's). The route is never lost."""
    known = sum(p[2] is not None for p in points)
    source: ElevationSource = "track" if known == len(points) else "partial" if known else "none"
    fallback = Measured(points, round(gain_m, 1), round(loss_m, 1), source)
    client = FAMILY.stash.get(ELEVATION)
    if client is None or source == "track":
        return fallback
    settings = FAMILY.settings
    try:
        async with asyncio.timeout(settings.elevation_timeout_seconds):
            count = min(len(points), settings.elevation_max_points)
            picks = sorted({round(i * (len(points) - 1) / (count - 1)) for i in range(count)})
            found = await client.elevations(
                [(points[i][0] or 0.0, points[i][1] or 0.0) for i in picks]
            )
    except (ApiError, TimeoutError) as error:
        log.warning("elevation service failed (%r): stored with the elevation known", error)
        return fallback
    samples = [(i, e) for i, e in zip(picks, found, strict=True) if e is not None]
    if not samples:
        log.warning("elevation service knew none of %d points: stored as known", len(picks))
        return fallback
    filled = await asyncio.to_thread(_interpolated, points, samples)
    gain, loss = gpxpy.geo.calculate_uphill_downhill([p[2] for p in filled])
    return Measured(filled, round(gain, 1), round(loss, 1), "service")


def _interpolated(
    points: list[list[float | None]], samples: list[tuple[int, float]]
) -> list[list[float | None]]:
    """Each point's own elevation, else one interpolated by distance along the route
    between the service's samples (the nearest sample's beyond the first and last)."""
    along = [0.0]
    for a, b in itertools.pairwise(points):
        along.append(
            along[-1]
            + gpxpy.geo.haversine_distance(a[1] or 0.0, a[0] or 0.0, b[1] or 0.0, b[0] or 0.0)
        )
    at = [along[i] for i, _ in samples]
    filled: list[list[float | None]] = []
    for n, (lng, lat, own) in enumerate(points):
        if own is None:
            right = bisect.bisect_left(at, along[n])
            if right == 0 or right == len(at):
                own = samples[min(right, len(at) - 1)][1]
            else:
                (d0, e0), (d1, e1) = (
                    (at[right - 1], samples[right - 1][1]),
                    (at[right], samples[right][1]),
                )
                own = e0 + (e1 - e0) * ((along[n] - d0) / (d1 - d0) if d1 > d0 else 0.0)
            own = round(own, 1)
        filled.append([lng, lat, own])
    return filled


async def save_plan(
    plan: Plan, routed: list[tuple[Draft, OsrmRoute, Measured]], user: User
) -> Route:
    """Store every route of the plan, in one transaction; the first is the one asked for.
    More than one share one ``plan_id``, which lists each as the others' alternative."""
    plan_id = new_share_id() if len(routed) > 1 else None
    async with in_transaction():
        saved = [
            await Route.create(
                share_id=new_share_id(),
                user_id=user.id,
                title=draft.title,
                locale=plan.locale,
                source=plan.source,
                points=measured.points,
                distance_m=round(planned.distance, 1),
                gain_m=measured.gain_m,
                loss_m=measured.loss_m,
                elevation_source=measured.source,
                trail_ratio=None,
                duration_s=round(planned.duration),
                request_paraphrase=plan.paraphrase,
                plan_id=plan_id,
                content_hash=content_hash(measured.points),
            )
            for draft, planned, measured in routed
        ]
    return saved[0]


async def siblings(route: Route) -> list[Route]:
    """The other live routes of the same request plan: the share's alternatives."""
    if route.plan_id is None:
        return []
    rows = Route.filter(plan_id=route.plan_id, deleted_at=None).exclude(id=route.id)
    return await rows.order_by("id")


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
        elevation_source=route.elevation_source,
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


def manifest(route: Route, alternatives: Sequence[Route] = ()) -> ShareManifest:
    """``alternatives``: the route's :func:`siblings`."""
    lngs = [p[0] or 0.0 for p in route.points]
    lats = [p[1] or 0.0 for p in route.points]
    base = FAMILY.settings.public_url.rstrip("/")
    text = artifacts.TEXTS[route.locale]
    return ShareManifest(
        share_id=route.share_id,
        canonical_slug=artifacts.slug_for(route.title, route.locale),
        title=route.title,
        description=artifacts.description(route.distance_m, known_gain(route), route.locale),
        preview_description=text["preview_alt"].format(title=route.title),
        request_paraphrase=route.request_paraphrase,  # null without a request, never ""
        alternatives=[
            Alternative(share_id=r.share_id, title=r.title, url=base + page_path(r))
            for r in alternatives
        ],
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
        description=artifacts.description(route.distance_m, known_gain(route), locale),
        page_url=base + page_path(route),
        preview_url=asset_url(route, "preview.jpg"),
        geojson_url=asset_url(route, "route.geojson"),
        gpx_url=asset_url(route, "route.gpx"),
        preview_width=width,
        preview_height=height,
        preview_alt=text["preview_alt"].format(title=route.title),
        texts=text,
        distance=artifacts.km(route.distance_m, locale),
        gain=text["unknown"] if known_gain(route) is None else f"{round(route.gain_m)} m",
        loss=text["unknown"] if known_gain(route) is None else f"{round(route.loss_m)} m",
        trail=None if route.trail_ratio is None else f"{round(route.trail_ratio * 100)} %",
    )


def known_gain(route: Route) -> float | None:
    """The route's elevation gain, or None when nothing measured its elevation (its stats
    then say 0, ``elevation_source: none``)."""
    return None if route.elevation_source == "none" else route.gain_m


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
                "request_paraphrase": r.request_paraphrase,
                "points": r.points,
                "stats": stats(r).model_dump(),
                "created_at": r.created_at.isoformat(),
                "deleted_at": r.deleted_at.isoformat() if r.deleted_at else None,
            }
            for r in routes
        ]
    }
