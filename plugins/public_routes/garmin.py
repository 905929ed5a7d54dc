"""Garmin route-send: a signed-in user sends a share to their Garmin Connect as a course,
which syncs to their watch (docs/families/public_routes.md, docs/services/garmin.md).

The browser flow, without a completion step (docs/oauth.md, "Browser flows bound to a
cookie"): ``start`` (the user's Firebase token) stores a one-time ``state`` bound to the
share, the user and a random browser session kept in an HttpOnly cookie; the callback (or,
for a user who allowed it already, the send step) spends the state with one conditional
UPDATE and refuses unless the same cookie comes back. Then the code is exchanged (PKCE
S256), the tokens stored encrypted, and the course created. No HTTP framework here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import gpxpy.geo
from cryptography.fernet import InvalidToken, MultiFernet

from core import ApiError, Stash, User, utcnow
from plugins.public_routes import artifacts, service
from plugins.public_routes.clients import (
    GARMIN_AUTH_REFUSED,
    GARMIN_NO_COURSE_IMPORT,
    GARMIN_QUOTA,
    GARMIN_TOKEN_REJECTED,
    GarminClient,
    GarminTokens,
)
from plugins.public_routes.models import GarminSend, GarminState, GarminToken, Route
from plugins.public_routes.schemas import (
    FAMILY,
    GARMIN,
    GARMIN_CIPHER,
    GarminSendStarted,
)

log = logging.getLogger("imperfect.public_routes.garmin")

COOKIE = "garmin_send"
COOKIE_PATH = "/route-send/garmin"
SEND_PATH = f"{COOKIE_PATH}/send"
MAX_SPACING_M = 100.0  # Garmin: consecutive course points at most 100 m apart
MAX_POINTS = 10_000  # Garmin: about 10,000 points a course
# Resampled a little tighter than 100 m, so interpolating in degrees never stretches a gap
# past it.
SPACING_M = MAX_SPACING_M * 0.99
MAX_COURSE_M = SPACING_M * (MAX_POINTS - 1)
REFRESH_MARGIN = timedelta(seconds=60)  # refresh an access token this long before it ends
# A refused refresh may only mean a concurrent send rotated the grant first (a refresh token
# is good once): look this long for the row that send saves before asking for consent again.
ROTATED_WAIT_SECONDS = 2.0
STALE_STATES = timedelta(days=1)  # spent or expired states are deleted after this
# The routing engine's profile, to Garmin's activity types (a GPX upload says no sport).
PROFILE_ACTIVITIES = {
    "foot": "RUNNING",
    "running": "RUNNING",
    "walking": "HIKING",
    "hiking": "HIKING",
    "bike": "ROAD_CYCLING",
    "bicycle": "ROAD_CYCLING",
    "cycling": "ROAD_CYCLING",
    "road": "ROAD_CYCLING",
    "mtb": "MOUNTAIN_BIKING",
    "gravel": "GRAVEL_CYCLING",
}
TRAIL_RUNNING_RATIO = 0.5  # a running route mostly on trails is TRAIL_RUNNING


@dataclass(frozen=True)
class Result:
    """How a callback or send ended: a page (``outcome`` with ``status``), or a redirect."""

    status: int
    outcome: str
    route: Route | None = None
    redirect: str | None = None


class Ended(Exception):
    """Raised inside the flow to end it on ``result``'s page."""

    def __init__(self, status: int, outcome: str, route: Route | None = None) -> None:
        super().__init__(outcome)
        self.result = Result(status, outcome, route)


class CourseTooLong(Exception):
    """The route needs more than Garmin's 10,000 points 100 m apart."""


# --- configuration --------------------------------------------------------------------------


def client() -> GarminClient:
    """Garmin's client; 503 ``garmin_not_configured`` when the family has no Garmin app."""
    found = FAMILY.stash.get(GARMIN)
    if found is None:
        raise ApiError(503, "garmin_not_configured", "Sending routes to Garmin is not set up.")
    return found


def _cipher() -> MultiFernet:
    return FAMILY.stash[GARMIN_CIPHER]


def encrypt(value: str, cipher: MultiFernet | None = None) -> str:
    return (cipher or _cipher()).encrypt(value.encode()).decode()


def decrypt(value: str, cipher: MultiFernet | None = None) -> str | None:
    """The plaintext, or None when no configured key opens it (a key rotated away)."""
    try:
        return (cipher or _cipher()).decrypt(value.encode()).decode()
    except InvalidToken:
        return None


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _base() -> str:
    return FAMILY.settings.public_url.rstrip("/")


def cookie_secure() -> bool:
    return FAMILY.settings.public_url.startswith("https://")


# --- courses --------------------------------------------------------------------------------


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(gpxpy.geo.haversine_distance(a[1], a[0], b[1], b[0]))


def resample(points: list[list[float | None]]) -> list[tuple[float, float, float | None, float]]:
    """The track at even steps of at most 100 m along it: ``(lng, lat, elevation,
    distance from the start)``, first and last points kept, elevation interpolated
    (None only where the track has none). Longer than 10,000 such points: CourseTooLong."""
    track = [(float(p[0] or 0.0), float(p[1] or 0.0)) for p in points]
    heights = _filled([p[2] if len(p) > 2 else None for p in points])
    along = [0.0, *itertools.accumulate(_metres(a, b) for a, b in itertools.pairwise(track))]
    total = along[-1]
    steps = max(1, math.ceil(total / SPACING_M))
    if steps + 1 > MAX_POINTS:
        raise CourseTooLong(total)
    out: list[tuple[float, float, float | None, float]] = []
    j = 0
    for k in range(steps + 1):
        target = total * k / steps
        while j < len(track) - 2 and along[j + 1] < target:
            j += 1
        if len(track) == 1:
            lng, lat, ele = track[0][0], track[0][1], heights[0]
        else:
            span = along[j + 1] - along[j]
            t = 0.0 if span <= 0 else min(1.0, max(0.0, (target - along[j]) / span))
            (x0, y0), (x1, y1) = track[j], track[j + 1]
            lng, lat = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
            e0, e1 = heights[j], heights[j + 1]
            ele = None if e0 is None or e1 is None else e0 + (e1 - e0) * t
        out.append((lng, lat, ele, target))
    last = track[-1]
    out[-1] = (last[0], last[1], heights[-1], total)
    return out


def _filled(heights: list[float | None]) -> list[float | None]:
    """Gaps in the elevation interpolated between the known neighbours, and held level
    before the first and after the last (no elevation at all: as is)."""
    known = [(i, h) for i, h in enumerate(heights) if h is not None]
    if not known:
        return heights
    filled: list[float | None] = [known[0][1]] * (known[0][0] + 1)
    for (i0, h0), (i1, h1) in itertools.pairwise(known):
        filled.extend(h0 + (h1 - h0) * (i - i0) / (i1 - i0) for i in range(i0 + 1, i1 + 1))
    filled.extend([known[-1][1]] * (len(heights) - len(filled)))
    return filled


def activity_type(route: Route) -> str:
    """Garmin's activity type: from the routing engine's profile for a planned route,
    TRAIL_RUNNING for a running route mostly on trails, OTHER when nothing says."""
    if route.source != "osrm":
        return "OTHER"
    kind = PROFILE_ACTIVITIES.get(FAMILY.settings.osrm_profile, "OTHER")
    if kind == "RUNNING" and (route.trail_ratio or 0.0) >= TRAIL_RUNNING_RATIO:
        return "TRAIL_RUNNING"
    return kind


def course(route: Route) -> dict[str, Any]:
    """The Courses API body for a route (CourseTooLong past Garmin's limit)."""
    points = resample(route.points)
    geo_points = []
    for lng, lat, ele, distance in points:
        point: dict[str, Any] = {
            "latitude": round(lat, 7),
            "longitude": round(lng, 7),
            "distance": round(distance, 1),
        }
        if ele is not None:  # Garmin fills in what is missing
            point["elevation"] = round(ele, 1)
        geo_points.append(point)
    return {
        "courseName": route.title,
        "description": artifacts.description(
            route.distance_m, service.known_gain(route), route.locale
        ),
        "distance": route.distance_m,
        "elevationGain": route.gain_m,
        "elevationLoss": route.loss_m,
        "activityType": activity_type(route),
        "coordinateSystem": "WGS84",
        "geoPoints": geo_points,
    }


# --- start ----------------------------------------------------------------------------------


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(state: str, verifier: str) -> str:
    settings = FAMILY.settings
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.garmin_client_id,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
            "state": state,
            "redirect_uri": settings.garmin_redirect_url,
        }
    )
    return f"{settings.garmin_authorize_url}?{query}"


def _session(cookie: str | None) -> str:
    """The browser's session: the one its cookie carries (so two tabs share it), or new."""
    if cookie and 32 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum():
        return cookie
    return secrets.token_urlsafe(32)


async def _new_state(
    user_id: int, share_id: str, session: str, consent: bool
) -> tuple[str, str, datetime]:
    """A fresh one-time state (256 bits), its PKCE verifier and expiry; stored are only
    the state's hash, the session's hash and the verifier encrypted."""
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    now = utcnow()
    expires_at = now + timedelta(seconds=FAMILY.settings.garmin_state_ttl_seconds)
    await GarminState.create(
        state_hash=_hash(state),
        session_hash=_hash(session),
        user_id=user_id,
        share_id=share_id,
        consent=consent,
        verifier=encrypt(verifier),
        expires_at=expires_at,
    )
    await GarminState.filter(expires_at__lt=now - STALE_STATES).delete()
    return state, verifier, expires_at


async def start(user: User, share_id: str, cookie: str | None) -> tuple[GarminSendStarted, str]:
    """Begin a send: where the browser goes next, and the session its cookie must carry.

    A user with stored tokens skips Garmin's consent: the browser goes to the send step."""
    client()
    route = await service.shared(share_id)
    try:
        resample(route.points)
    except CourseTooLong as error:  # said before Garmin's consent, not after it
        raise ApiError(
            409,
            "route_too_long",
            f"Garmin takes courses of up to {limit_text()}; this route is longer.",
        ) from error
    session = _session(cookie)
    consent = not await GarminToken.exists(user_id=user.id)
    state, verifier, expires_at = await _new_state(user.id, route.share_id, session, consent)
    url = (
        authorize_url(state, verifier)
        if consent
        else f"{_base()}{SEND_PATH}?{urlencode({'state': state})}"
    )
    return GarminSendStarted(authorize_url=url, consent=consent, expires_at=expires_at), session


# --- callback and send ----------------------------------------------------------------------


async def _claim(state: str, cookie: str | None, consent: bool) -> GarminState:
    """Spend the one-time state (one conditional UPDATE: of two racing requests one wins),
    then require the browser that started it. Spent whatever follows."""
    row = await GarminState.get_or_none(state_hash=_hash(state), consent=consent)
    if row is None:
        raise Ended(404, "state_unknown")
    now = utcnow()
    claimed = await GarminState.filter(id=row.id, consumed_at=None, expires_at__gt=now).update(
        consumed_at=now
    )
    if claimed != 1:
        if row.consumed_at is None and row.expires_at <= now:
            raise Ended(410, "state_expired")
        raise Ended(409, "state_used")
    if cookie is None or not hmac.compare_digest(_hash(cookie), row.session_hash):
        raise Ended(403, "wrong_browser")
    return row


async def _route(row: GarminState) -> Route:
    route = await Route.get_or_none(share_id=row.share_id, deleted_at=None)
    if route is None:
        raise Ended(404, "share_gone")
    return route


def _ended_by(error: ApiError, route: Route) -> Ended:
    """Garmin's refusal or outage as the page that explains it."""
    if error.code == GARMIN_NO_COURSE_IMPORT:
        return Ended(403, "no_course_import", route)
    if error.code == GARMIN_QUOTA:
        return Ended(429, "quota", route)
    if error.code in (GARMIN_AUTH_REFUSED, GARMIN_TOKEN_REJECTED):
        return Ended(502, "garmin_refused", route)
    return Ended(503, "garmin_down", route)


async def _store_tokens(user_id: int, garmin_user_id: str, tokens: GarminTokens) -> None:
    """One row per user: a new consent replaces the old tokens."""
    fields = {
        "garmin_user_id": garmin_user_id,
        "access_token": encrypt(tokens.access_token),
        "refresh_token": encrypt(tokens.refresh_token),
        "expires_at": utcnow() + timedelta(seconds=tokens.expires_in),
    }
    await GarminToken.update_or_create(defaults=fields, user_id=user_id)


async def _access_token(
    garmin: GarminClient, token: GarminToken, cipher: MultiFernet | None = None
) -> str | None:
    """A live access token, refreshed (and the refresh token rotated) when it ends within
    a minute; None when Garmin refuses the refresh or no key opens it: consent again.
    ``cipher`` defaults to the family's (outside a request, the caller gives it)."""
    if token.expires_at > utcnow() + REFRESH_MARGIN:
        return decrypt(token.access_token, cipher)
    refresh = decrypt(token.refresh_token, cipher)
    if refresh is None:
        return None
    try:
        tokens = await garmin.refresh(refresh)
    except ApiError as error:
        if error.code == GARMIN_AUTH_REFUSED:
            return await _rotated_meanwhile(token, cipher)
        raise
    token.access_token = encrypt(tokens.access_token, cipher)
    token.refresh_token = encrypt(tokens.refresh_token, cipher)
    token.expires_at = utcnow() + timedelta(seconds=tokens.expires_in)
    await token.save(update_fields=["access_token", "refresh_token", "expires_at", "updated_at"])
    return tokens.access_token


async def _rotated_meanwhile(token: GarminToken, cipher: MultiFernet | None) -> str | None:
    """The live access token a concurrent send stored after rotating this grant, or None
    (the grant is dead: consent again)."""
    deadline = asyncio.get_running_loop().time() + ROTATED_WAIT_SECONDS
    while True:
        current = await GarminToken.get_or_none(id=token.id)
        if current is None:
            return None
        if current.refresh_token != token.refresh_token:  # saved by another send
            live = current.expires_at > utcnow() + REFRESH_MARGIN
            return decrypt(current.access_token, cipher) if live else None
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(0.05)


async def _consent_again(row: GarminState, cookie: str, route: Route) -> Result:
    """The stored grant is dead: forget it and send the browser to Garmin's consent, under
    a fresh state bound to the same session."""
    await GarminToken.filter(user_id=row.user_id).delete()
    state, verifier, _ = await _new_state(row.user_id, route.share_id, cookie, consent=True)
    return Result(302, "consent", route, redirect=authorize_url(state, verifier))


async def _send(
    garmin: GarminClient,
    user_id: int,
    access_token: str,
    route: Route,
    rejected: Callable[[], Awaitable[Result]] | None = None,
) -> Result:
    """Create the course and record the send; ``rejected`` is where a token Garmin no
    longer accepts leads (none: a refusal page)."""
    try:
        body = course(route)
    except CourseTooLong as error:
        raise Ended(413, "too_long", route) from error
    try:
        course_id = await garmin.create_course(access_token, body)
    except ApiError as error:
        if error.code == GARMIN_TOKEN_REJECTED and rejected is not None:
            return await rejected()
        raise _ended_by(error, route) from error
    await GarminSend.create(
        user_id=user_id,
        share_id=route.share_id,
        course_id=course_id,
        course_name=route.title,
        points=len(body["geoPoints"]),
    )
    return Result(200, "sent", route)


async def _ending(flow: Coroutine[Any, Any, Result]) -> Result:
    """Run a flow to its result page, whichever way it ends."""
    try:
        return await flow
    except Ended as ended:
        return ended.result
    except ApiError as error:
        if error.code == "garmin_not_configured":
            return Result(503, "not_configured")
        raise


async def finish_consent(
    state: str, code: str | None, error: str | None, cookie: str | None
) -> Result:
    """Garmin's redirect back after the consent screen."""
    return await _ending(_consented(state, code, error, cookie))


async def _consented(state: str, code: str | None, error: str | None, cookie: str | None) -> Result:
    garmin = client()
    row = await _claim(state, cookie, consent=True)
    route = await _route(row)
    if error == "access_denied":
        raise Ended(403, "denied", route)
    if error is not None:
        raise Ended(502, "garmin_refused", route)
    verifier = decrypt(row.verifier)
    if not code or verifier is None:
        raise Ended(400, "invalid", route)
    try:
        tokens = await garmin.exchange(code, verifier, FAMILY.settings.garmin_redirect_url)
        garmin_user_id = await garmin.user_id(tokens.access_token)
    except ApiError as failure:
        raise _ended_by(failure, route) from failure
    await _store_tokens(row.user_id, garmin_user_id, tokens)
    return await _send(garmin, row.user_id, tokens.access_token, route)


async def send_stored(state: str, cookie: str | None) -> Result:
    """The send step of a user who allowed it already: the stored token, refreshed when
    needed; a grant Garmin no longer honours goes back through consent."""
    return await _ending(_stored(state, cookie))


async def _stored(state: str, cookie: str | None) -> Result:
    garmin = client()
    row = await _claim(state, cookie, consent=False)
    assert cookie is not None  # _claim checked it
    route = await _route(row)
    token = await GarminToken.get_or_none(user_id=row.user_id)
    if token is None:
        return await _consent_again(row, cookie, route)
    try:
        access = await _access_token(garmin, token)
    except ApiError as error:
        raise _ended_by(error, route) from error
    if access is None:
        return await _consent_again(row, cookie, route)
    return await _send(
        garmin, row.user_id, access, route, lambda: _consent_again(row, cookie, route)
    )


# --- account --------------------------------------------------------------------------------


async def forget(stash: Stash, user: User) -> None:
    """Deregister at Garmin, then delete the user's tokens, states and sends. Safe to repeat.

    Garmin down raises before anything is deleted, so core keeps the deletion pending and
    retries it. A grant Garmin refuses to refresh, or tokens no configured key opens, are
    dead already: nothing to deregister. ``stash`` is the family's (core may call this
    outside a request)."""
    token = await GarminToken.get_or_none(user_id=user.id)
    if token is not None:
        garmin = stash.get(GARMIN)
        if garmin is None:
            log.warning("Garmin is not configured: user %s is not deregistered there", user.id)
        else:
            access = await _access_token(garmin, token, stash[GARMIN_CIPHER])
            if access is not None:
                await garmin.deregister(access)
    await GarminToken.filter(user_id=user.id).delete()
    await GarminState.filter(user_id=user.id).delete()
    await GarminSend.filter(user_id=user.id).delete()


async def export(user: User) -> list[dict[str, Any]]:
    """The user's sends (never their tokens)."""
    sends = await GarminSend.filter(user_id=user.id).order_by("id")
    return [
        {
            "share_id": s.share_id,
            "course_id": s.course_id,
            "course_name": s.course_name,
            "points": s.points,
            "created_at": s.created_at.isoformat(),
        }
        for s in sends
    ]


def page_url(route: Route | None) -> str | None:
    return None if route is None else _base() + service.page_path(route)


def limit_text() -> str:
    """Garmin's longest course, for the result page (the same in every locale)."""
    return f"{MAX_COURSE_M / 1000:.0f} km"
