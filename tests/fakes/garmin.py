"""A fake Garmin Connect on a real socket: the OAuth 2.0 PKCE consent and token endpoints,
the wellness user API and the Courses API, checking what Garmin checks
(/work/shared/reference/external-services.md §4, docs/services/garmin.md).

- ``GET /oauth2Confirm``: the consent screen. It stands for the signed-in Garmin user
  (``user``) agreeing at once, or declining when ``deny`` is set: a 302 to the
  ``redirect_uri`` with ``code`` and ``state`` (or ``error=access_denied``). It refuses
  (400, no redirect) an unknown ``client_id``, a ``response_type`` other than ``code``, a
  missing challenge or a method other than ``S256``.
- ``POST /di-oauth2-service/oauth/token`` (form): ``authorization_code`` needs the client
  id and secret, a code issued to that client, unused and unexpired (one-time: a second
  use is ``invalid_grant``), the same ``redirect_uri`` as the authorize call and a
  ``code_verifier`` whose S256 is the challenge; ``refresh_token`` needs the client and a
  live refresh token, and rotates it (the old one is spent).
- ``GET /wellness-api/rest/user/id``, ``GET …/user/permissions``,
  ``DELETE …/user/registration`` (204; every token of that user stops working).
- ``POST /training-api/courses/v1/course`` and ``GET …/course/{id}``: a live Bearer token
  (401 otherwise), 412 without ``COURSE_IMPORT``, 429 when ``quota_exceeded``; the body
  is checked field by field (types, enums, no ``courseId``, at most 10,000 points at most
  100 m apart) and a bad one is 400.

Switches: ``deny``, ``course_import``, ``quota_exceeded``, ``down`` (503 everywhere),
``access_ttl`` (seconds an access token lives; 0 issues tokens already expired),
``refresh_delay`` (seconds a granted refresh takes to answer, its old token spent at once),
``expire_access_tokens()``, ``forget_grants()``. ``calls`` records ``(method, path)`` of
every request, ``token_requests`` each token form, ``courses`` each created course.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from quart import Quart, request

from tests.fakes.server import FakeServer

EARTH_RADIUS_M = 6_371_000.0
ACTIVITY_TYPES = {
    "RUNNING",
    "HIKING",
    "OTHER",
    "MOUNTAIN_BIKING",
    "TRAIL_RUNNING",
    "ROAD_CYCLING",
    "GRAVEL_CYCLING",
}
COORDINATE_SYSTEMS = {"WGS84", "GCJ02", "BD09"}
CODE_TTL = 600.0
FIRST_ID = 9_100_000_001  # course ids past 2**31, as Garmin's Long ids are
VERIFIER_CHARACTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two ``(lat, lng)`` points."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlat, dlng = lat2 - lat1, math.radians(b[1] - a[1])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    user: str
    issued: float
    used: bool = False


@dataclass
class _Access:
    user: str
    expires: float


@dataclass
class FakeGarmin:
    client_id: str = "imperfect-test-client"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user: str = "garmin-user-7f3a"
    deny: bool = False
    course_import: bool = True
    quota_exceeded: bool = False
    down: bool = False
    access_ttl: int = 86_400
    refresh_delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    courses: dict[int, dict[str, Any]] = field(default_factory=dict)
    deregistered: list[str] = field(default_factory=list)
    url: str = ""
    _codes: dict[str, _Code] = field(default_factory=dict)
    _access: dict[str, _Access] = field(default_factory=dict)
    _refresh: dict[str, str] = field(default_factory=dict)  # live refresh token -> user
    _course_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_ID))
    _server: FakeServer | None = None

    # --- what tests read and set ------------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/oauth2Confirm"

    @property
    def token_url(self) -> str:
        return f"{self.url}/di-oauth2-service/oauth/token"

    def settings(self) -> dict[str, str]:
        """The family settings pointing at this fake."""
        return {
            "garmin_client_id": self.client_id,
            "garmin_client_secret": self.client_secret,
            "garmin_authorize_url": self.authorize_url,
            "garmin_token_url": self.token_url,
            "garmin_api_url": self.url,
        }

    def expire_access_tokens(self) -> None:
        for access in self._access.values():
            access.expires = 0.0

    def forget_grants(self) -> None:
        """The user revoked this app on Garmin's side: every token stops working."""
        self._access.clear()
        self._refresh.clear()

    def issued_access_tokens(self) -> list[str]:
        return list(self._access)

    def live_tokens(self, user: str) -> int:
        now = time.time()
        return sum(1 for a in self._access.values() if a.user == user and a.expires > now)

    # --- the service ------------------------------------------------------------------------

    def _issue(self, user: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = _Access(user, time.time() + self.access_ttl)
        self._refresh[refresh] = user
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.access_ttl,
            "refresh_token": refresh,
            "refresh_token_expires_in": 7_776_000,
            "scope": "COURSE_IMPORT PARTNER_READ" if self.course_import else "PARTNER_READ",
            "jti": secrets.token_hex(8),
        }

    def _bearer(self) -> str | None:
        """The user of the request's live Bearer token, or None."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        found = self._access.get(header.removeprefix("Bearer "))
        if found is None or found.expires <= time.time():
            return None
        return found.user

    def _permissions(self) -> list[str]:
        granted = ["ACTIVITY_EXPORT", "HEALTH_EXPORT"]
        return [*granted, "COURSE_IMPORT"] if self.course_import else granted

    def app(self) -> Quart:
        app = Quart("fake-garmin")

        @app.before_request
        async def record() -> Any:
            self.calls.append((request.method, request.path))
            if self.down:
                return {"error": "service unavailable"}, 503
            return None

        @app.get("/oauth2Confirm")
        async def authorize() -> Any:
            args = request.args
            if args.get("client_id") != self.client_id:
                return "unknown client", 400
            if args.get("response_type") != "code":
                return "response_type must be code", 400
            if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
                return "PKCE S256 is required", 400
            redirect_uri = args.get("redirect_uri", "")
            if not redirect_uri.startswith(("http://", "https://")):
                return "redirect_uri is required", 400
            state = args.get("state", "")
            if self.deny:
                query = {"error": "access_denied", "state": state}
            else:
                code = secrets.token_urlsafe(24)
                self._codes[code] = _Code(
                    self.client_id, redirect_uri, args["code_challenge"], self.user, time.time()
                )
                query = {"code": code, "state": state}
            return "", 302, {"Location": f"{redirect_uri}?{urlencode(query)}"}

        @app.post("/di-oauth2-service/oauth/token")
        async def token() -> Any:
            if request.mimetype != "application/x-www-form-urlencoded":
                return {"error": "invalid_request"}, 400
            form = dict(await request.form)
            self.token_requests.append(form)
            if (form.get("client_id"), form.get("client_secret")) != (
                self.client_id,
                self.client_secret,
            ):
                return {"error": "invalid_client"}, 401
            grant = form.get("grant_type")
            if grant == "authorization_code":
                code = self._codes.get(form.get("code", ""))
                if code is None or code.used or time.time() - code.issued > CODE_TTL:
                    return {"error": "invalid_grant", "error_description": "bad code"}, 400
                code.used = True  # one-time, whatever follows
                verifier = form.get("code_verifier", "")
                if not (43 <= len(verifier) <= 128 and set(verifier) <= VERIFIER_CHARACTERS):
                    return {"error": "invalid_request", "error_description": "verifier"}, 400
                if challenge_of(verifier) != code.challenge:
                    return {"error": "invalid_grant", "error_description": "PKCE failed"}, 400
                if form.get("redirect_uri") != code.redirect_uri:
                    return {"error": "invalid_grant", "error_description": "redirect_uri"}, 400
                return self._issue(code.user)
            if grant == "refresh_token":
                user = self._refresh.pop(form.get("refresh_token", ""), None)
                if user is None:
                    return {"error": "invalid_grant", "error_description": "refresh token"}, 400
                await asyncio.sleep(self.refresh_delay)
                return self._issue(user)
            return {"error": "unsupported_grant_type"}, 400

        @app.get("/wellness-api/rest/user/id")
        async def user_id() -> Any:
            user = self._bearer()
            if user is None:
                return {"errorMessage": "Unauthorized"}, 401
            return {"userId": user}

        @app.get("/wellness-api/rest/user/permissions")
        async def permissions() -> Any:
            if self._bearer() is None:
                return {"errorMessage": "Unauthorized"}, 401
            return self._permissions()

        @app.delete("/wellness-api/rest/user/registration")
        async def deregister() -> Any:
            user = self._bearer()
            if user is None:
                return {"errorMessage": "Unauthorized"}, 401
            self.deregistered.append(user)
            self._access = {k: v for k, v in self._access.items() if v.user != user}
            self._refresh = {k: v for k, v in self._refresh.items() if v != user}
            return "", 204

        @app.post("/training-api/courses/v1/course")
        async def create_course() -> Any:
            user = self._bearer()
            if user is None:
                return {"errorMessage": "Unauthorized"}, 401
            if self.quota_exceeded:
                return {"errorMessage": "Quota exceeded"}, 429
            if not self.course_import:
                return {"errorMessage": "User permission COURSE_IMPORT missing"}, 412
            body = await request.get_json(silent=True)
            problem = course_problem(body)
            if problem is not None:
                return {"errorMessage": problem}, 400
            course_id = next(self._course_ids)
            stored = {**body, "courseId": course_id, "userId": user, "elapsedSeconds": None}
            self.courses[course_id] = stored
            return stored

        @app.get("/training-api/courses/v1/course/<int:course_id>")
        async def read_course(course_id: int) -> Any:
            user = self._bearer()
            if user is None:
                return {"errorMessage": "Unauthorized"}, 401
            found = self.courses.get(course_id)
            if found is None or found["userId"] != user:
                return {"errorMessage": "Not found"}, 404
            return found

        return app

    def start(self) -> FakeGarmin:
        self._server = FakeServer(self.app()).start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def course_problem(body: Any) -> str | None:
    """What Garmin would refuse in a course body, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if "courseId" in body:
        return "courseId is set by Garmin"
    if not isinstance(body.get("courseName"), str) or not body["courseName"].strip():
        return "courseName is required"
    for name in ("distance", "elevationGain", "elevationLoss"):
        if not _number(body.get(name)) or body[name] < 0:
            return f"{name} is required (metres)"
    if body.get("activityType") not in ACTIVITY_TYPES:
        return "activityType is not one of Garmin's"
    if body.get("coordinateSystem") not in COORDINATE_SYSTEMS:
        return "coordinateSystem is not one of Garmin's"
    points = body.get("geoPoints")
    if not isinstance(points, list) or not points:
        return "geoPoints must be a non-empty list"
    if len(points) > 10_000:
        return "at most 10,000 geoPoints"
    for point in points:
        if not isinstance(point, dict):
            return "each geoPoint is an object"
        lat, lng = point.get("latitude"), point.get("longitude")
        if not (_number(lat) and _number(lng) and -90 <= lat <= 90 and -180 <= lng <= 180):
            return "each geoPoint needs latitude and longitude"
        if "elevation" in point and not _number(point["elevation"]):
            return "elevation is a number"
    for a, b in itertools.pairwise(points):
        if metres((a["latitude"], a["longitude"]), (b["latitude"], b["longitude"])) > 100.0:
            return "consecutive geoPoints are more than 100 m apart"
    return None
