"""``/routes`` (planning and the caller's routes) and ``/r/{share_id}/...`` (the public
share): thin handlers that parse, call the service and shape the answer."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from quart import Blueprint, Response, request

from core import (
    ApiError,
    EventStream,
    RateLimit,
    ServerSentEvent,
    User,
    current_platform,
    endpoint,
)
from plugins.public_routes import garmin, service
from plugins.public_routes.artifacts import slug_for
from plugins.public_routes.clients import RoutingClient
from plugins.public_routes.garmin_page import result_html
from plugins.public_routes.models import Route
from plugins.public_routes.schemas import (
    FAMILY,
    AssetQuery,
    FeatureCollection,
    GarminCallbackQuery,
    GarminSendIn,
    GarminSendQuery,
    GarminSendStarted,
    PlanFailed,
    PlanIn,
    PlanProgress,
    RequestPlanIn,
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


async def _planning(
    engine: RoutingClient, user: User, plan: service.Plan | Callable[[], Awaitable[service.Plan]]
) -> AsyncIterator[ServerSentEvent]:
    """The planning stream both planning routes answer: ``accepted`` (then ``plan`` is made,
    when it is a request's), ``routing``, ``measuring`` (elevation), ``saving``, and ``done``
    with the route asked for; any failure is a ``failed`` event and stores nothing."""
    yield ServerSentEvent("progress", PlanProgress(step="accepted"))
    try:
        made = plan if isinstance(plan, service.Plan) else await plan()
        yield ServerSentEvent("progress", PlanProgress(step="routing"))
        routed = await service.route_plan(engine, made)
        yield ServerSentEvent("progress", PlanProgress(step="measuring"))
        measured = [
            (draft, planned, await service.measure(service.engine_points(planned)))
            for draft, planned in routed
        ]
        yield ServerSentEvent("progress", PlanProgress(step="saving"))
        route = await service.save_plan(made, measured, user)
    except ApiError as error:  # the stream has begun: the client hears of it as an event
        yield ServerSentEvent("failed", PlanFailed(code=error.code, detail=error.detail))
        return
    yield ServerSentEvent("done", service.route_out(route))


@blueprint.post("/routes/plan/waypoints")
@endpoint(body=PlanIn, stream=PLANNING, errors=(409,), rate_limits=USER_PLANNING)
async def plan_route(body: PlanIn, user: User) -> AsyncIterator[ServerSentEvent]:
    """Plan a route through waypoints with the routing engine, as Server-Sent Events:
    coarse ``progress`` steps, then ``done`` with the route (or ``failed``)."""
    engine = service.routing()  # before the first event: unconfigured is a plain 503
    async for event in _planning(engine, user, service.waypoint_plan(body)):
        yield event


@blueprint.post("/routes/plan/request")
@endpoint(body=RequestPlanIn, stream=PLANNING, errors=(409,), rate_limits=USER_PLANNING)
async def plan_request(body: RequestPlanIn, user: User) -> AsyncIterator[ServerSentEvent]:
    """Plan a route from a request in the user's words ("a flat 10 km loop by the lake"):
    a planner (the ``cheshire`` family) turns it into waypoints, the routing engine routes
    them. The same Server-Sent Events as ``/routes/plan/waypoints``; the share's manifest
    has the request's ``request_paraphrase`` and, when the planner offered more than one
    route, the others as ``alternatives`` (each a share of its own). ``failed`` codes of
    the planner: ``request_refused``, ``plan_invalid`` (its answer was not 2 to 25 waypoints
    on the globe), ``upstream_unavailable``, ``upstream_timeout``, ``planner_failed``.

    503 ``planner_unavailable`` (before any event): no enabled family plans from requests
    (``cheshire`` is disabled); 503 ``routing_not_configured``: no routing engine."""
    platform = current_platform()
    found = service.planners(platform)  # before the first event: plain 503s
    engine = service.routing()
    async for event in _planning(
        engine, user, functools.partial(service.request_plan, platform, found, user, body)
    ):
        yield event


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
    """The share's manifest: texts, stats, centre and bounds, versioned asset URLs, and for
    a route planned from a request, its paraphrase and its sibling shares (alternatives)."""
    route = await service.shared(share_id)
    body = service.manifest(route, await service.siblings(route)).model_dump_json().encode()
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


# Route-send: a send costs Garmin calls (quota per partner and per user), so a user's
# budget and every address's, in windows; the browser steps are public, so per address.
GARMIN_START = (
    RateLimit("10/minute", per="user"),
    RateLimit("50/day", per="user"),
    RateLimit("30/minute", per="ip"),
    RateLimit("300/day", per="ip"),
)
GARMIN_BROWSER = (
    RateLimit("20/minute", per="ip"),
    RateLimit("300/day", per="ip"),
)
# The result pages' statuses (each an HTML page saying what happened).
GARMIN_PAGES = {status: str for status in (302, 400, 403, 404, 409, 410, 413, 429, 502, 503)}


def _garmin_page(result: garmin.Result) -> Response:
    if result.redirect is not None:
        return Response(b"", status=302, headers={"Location": result.redirect})
    route = result.route
    locale = route.locale if route is not None else FAMILY.settings.default_locale
    body = result_html(
        result.outcome,
        locale,
        title=route.title if route is not None else "",
        share_url=garmin.page_url(route),
        limit=garmin.limit_text(),
    )
    headers = {"Cache-Control": "no-store"}
    if result.status in (429, 503):
        headers["Retry-After"] = "60"
    return Response(
        body, status=result.status, content_type="text/html; charset=utf-8", headers=headers
    )


@blueprint.post("/route-send/garmin/start")
@endpoint(
    body=GarminSendIn,
    response=GarminSendStarted,
    errors=(404, 409),
    rate_limits=GARMIN_START,
    headers={"Set-Cookie": f"`{garmin.COOKIE}`: the browser session the next step checks."},
)
async def garmin_start(body: GarminSendIn, user: User) -> Response:
    """Start sending a share to the caller's Garmin Connect as a course. The browser then
    navigates to ``authorize_url`` (Garmin's consent, or straight to the send step when the
    caller allowed it before), in the browser that made this call: the flow is bound to
    the HttpOnly cookie this answer sets. 409 ``route_too_long`` for a route longer than
    Garmin takes; 503 ``garmin_not_configured`` when off."""
    started, session = await garmin.start(user, body.share_id, request.cookies.get(garmin.COOKIE))
    response = Response(started.model_dump_json(), content_type="application/json")
    response.set_cookie(
        garmin.COOKIE,
        session,
        max_age=FAMILY.settings.garmin_state_ttl_seconds,
        path=garmin.COOKIE_PATH,
        secure=garmin.cookie_secure(),
        httponly=True,
        samesite="Lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/route-send/garmin/callback")
@endpoint(
    query=GarminCallbackQuery,
    auth="public",
    media_type="text/html",
    rate_limits=GARMIN_BROWSER,
    responses=GARMIN_PAGES,
)
async def garmin_callback(query: GarminCallbackQuery) -> Response:
    """Garmin's redirect back from its consent screen: spends the state, checks the
    browser's cookie, exchanges the code and creates the course; an HTML page says how it
    went (or a redirect to consent again)."""
    result = await garmin.finish_consent(
        query.state, query.code, query.error, request.cookies.get(garmin.COOKIE)
    )
    return _garmin_page(result)


@blueprint.get("/route-send/garmin/send")
@endpoint(
    query=GarminSendQuery,
    auth="public",
    media_type="text/html",
    rate_limits=GARMIN_BROWSER,
    responses=GARMIN_PAGES,
)
async def garmin_send(query: GarminSendQuery) -> Response:
    """The send step for a caller who allowed it before: creates the course with the
    stored token; an HTML page says how it went (a grant Garmin no longer honours
    redirects to its consent screen)."""
    return _garmin_page(await garmin.send_stored(query.state, request.cookies.get(garmin.COOKIE)))
