"""``/routes`` (planning and the caller's routes) and ``/r/{share_id}/...`` (the public
share): thin handlers that parse, call the service and shape the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Blueprint, Response, request

from core import ApiError, EventStream, RateLimit, ServerSentEvent, User, endpoint
from plugins.public_routes import service
from plugins.public_routes.artifacts import slug_for
from plugins.public_routes.models import Route
from plugins.public_routes.schemas import (
    AssetQuery,
    FeatureCollection,
    PlanFailed,
    PlanIn,
    PlanProgress,
    RouteOut,
    RouteRename,
    ShareManifest,
    UploadQuery,
)

blueprint = Blueprint("public_routes", __name__)

GPX = "application/gpx+xml"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = f"public, max-age={service.MANIFEST_MAX_AGE}"
# Planning parses and renders: a signed-in user's budget, and every address's, in windows.
USER_PLANNING = (
    RateLimit("10/minute", per="user"),
    RateLimit("100/day", per="user"),
    RateLimit("30/minute", per="ip"),
)
ANONYMOUS_PLANNING = (
    RateLimit("5/minute", per="ip"),
    RateLimit("30/hour", per="ip"),
    RateLimit("100/day", per="ip"),
)
READING = (RateLimit("120/minute", per="ip"),)


def _cached(body: bytes, media_type: str, cache_control: str) -> Response:
    """A strong ETag on every public answer; a matching ``If-None-Match`` gets 304."""
    etag = service.etag_of(body)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        return Response(b"", status=304, headers=headers)
    return Response(body, content_type=media_type, headers=headers)


def _to_canonical(route: Route) -> Response:
    return Response(b"", status=301, headers={"Location": service.page_path(route)})


def _asset_cache(query: AssetQuery, route: Route) -> str:
    """Immutable only when asked by the versioned URL the manifest gives."""
    return IMMUTABLE if query.v == service.version(route) else SHORT


@blueprint.post("/routes")
@endpoint(
    raw_body=GPX,
    query=UploadQuery,
    response=RouteOut,
    status=201,
    errors=(400, 413),
    rate_limits=USER_PLANNING,
)
async def create_route(raw_body: bytes, query: UploadQuery, user: User) -> RouteOut:
    """Plan a route from an uploaded GPX file (the body); it is the caller's, with a share."""
    route = await service.create_from_gpx(raw_body, user, query.title, query.locale)
    return service.route_out(route)


@blueprint.post("/routes/anonymous/gpx")
@endpoint(
    raw_body=GPX,
    query=UploadQuery,
    response=RouteOut,
    status=201,
    auth="public",
    errors=(400, 413),
    rate_limits=ANONYMOUS_PLANNING,
)
async def create_anonymous_route(raw_body: bytes, query: UploadQuery) -> RouteOut:
    """Plan a route from a GPX file without signing in: it has a share but no owner, so it
    can be neither renamed nor deleted. Tighter limits per client address."""
    route = await service.create_from_gpx(raw_body, None, query.title, query.locale)
    return service.route_out(route)


PLANNING = EventStream({"progress": PlanProgress, "done": RouteOut, "failed": PlanFailed})


@blueprint.post("/routes/plan/waypoints")
@endpoint(body=PlanIn, stream=PLANNING, errors=(409,), rate_limits=USER_PLANNING)
async def plan_route(body: PlanIn, user: User) -> AsyncIterator[ServerSentEvent]:
    """Plan a route through waypoints with the routing engine, as Server-Sent Events:
    coarse ``progress`` steps, then ``done`` with the route (or ``failed``)."""
    engine = service.routing()  # before the first event: unconfigured is a plain 503
    yield ServerSentEvent("progress", PlanProgress(step="accepted"))
    try:
        yield ServerSentEvent("progress", PlanProgress(step="routing"))
        planned = await service.route_waypoints(engine, body)
        yield ServerSentEvent("progress", PlanProgress(step="measuring"))
        yield ServerSentEvent("progress", PlanProgress(step="saving"))
        route = await service.create_from_plan(planned, user, body)
    except ApiError as error:  # the stream has begun: the client hears of it as an event
        yield ServerSentEvent("failed", PlanFailed(code=error.code, detail=error.detail))
        return
    yield ServerSentEvent("done", service.route_out(route))


@blueprint.get("/routes")
@endpoint(response=list[RouteOut])
async def list_routes(user: User) -> list[RouteOut]:
    """The caller's routes, newest first (deleted ones left out)."""
    return await service.list_routes(user)


@blueprint.patch("/routes/<share_id>")
@endpoint(body=RouteRename, response=RouteOut, errors=(404,))
async def rename_route(share_id: str, body: RouteRename, user: User) -> RouteOut:
    """Rename one of the caller's routes; its share's slug follows (old slugs redirect)."""
    return await service.rename(user, share_id, body.title)


@blueprint.delete("/routes/<share_id>")
@endpoint(status=204, errors=(404,))
async def delete_route(share_id: str, user: User) -> None:
    """Delete one of the caller's routes: its share answers 404 ``share_deleted`` from then on."""
    await service.delete(user, share_id)


@blueprint.get("/r/<share_id>")
@endpoint(status=301, auth="public", errors=(404,), rate_limits=READING, media_type="text/html")
async def share_root(share_id: str) -> Response:
    """A share without its slug: a permanent redirect to its canonical page."""
    route = await service.shared(share_id)
    return _to_canonical(route)


@blueprint.get("/r/<share_id>/<slug>")
@endpoint(
    auth="public",
    errors=(404,),
    rate_limits=READING,
    media_type="text/html",
    responses={301: str},
)
async def share_page(share_id: str, slug: str) -> Response:
    """The public page of a share: HTML without JavaScript, in the share's locale. Any
    other slug than the canonical one redirects (301) to it."""
    route = await service.shared(share_id)
    if slug != slug_for(route.title, route.locale):
        return _to_canonical(route)
    return _cached(service.page(route).encode(), "text/html; charset=utf-8", SHORT)


@blueprint.get("/r/<share_id>/manifest.json")
@endpoint(response=ShareManifest, auth="public", errors=(404,), rate_limits=READING)
async def share_manifest(share_id: str) -> Response:
    """The share's manifest: texts, stats, centre and bounds, versioned asset URLs."""
    route = await service.shared(share_id)
    body = service.manifest(route).model_dump_json().encode()
    return _cached(body, "application/json", SHORT)


@blueprint.get("/r/<share_id>/route.geojson")
@endpoint(
    query=AssetQuery,
    response=FeatureCollection,
    auth="public",
    errors=(404,),
    rate_limits=READING,
    media_type="application/geo+json",
)
async def share_geojson(share_id: str, query: AssetQuery) -> Response:
    """The share's geometry: one Feature with empty properties and a LineString."""
    route = await service.shared(share_id)
    return _cached(service.geojson_bytes(route), "application/geo+json", _asset_cache(query, route))


@blueprint.get("/r/<share_id>/route.gpx")
@endpoint(
    query=AssetQuery,
    auth="public",
    errors=(404,),
    rate_limits=READING,
    media_type=GPX,
)
async def share_gpx(share_id: str, query: AssetQuery) -> Response:
    """The share's route as a GPX 1.1 track, for GPS devices and other apps."""
    route = await service.shared(share_id)
    return _cached(service.gpx_bytes(route), GPX, _asset_cache(query, route))


@blueprint.get("/r/<share_id>/preview.jpg")
@endpoint(
    query=AssetQuery,
    auth="public",
    errors=(404,),
    rate_limits=READING,
    media_type="image/jpeg",
)
async def share_preview(share_id: str, query: AssetQuery) -> Response:
    """The link preview (1200x630 JPEG): the route line and its elevation profile."""
    route = await service.shared(share_id)
    return _cached(service.preview_bytes(route), "image/jpeg", _asset_cache(query, route))
