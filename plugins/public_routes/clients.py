"""The routing engine, through OSRM's public HTTP API (``/route/v1/{profile}/...``), an
elevation service with Open Topo Data's API (``/v1/{dataset}?locations=...``), and
Garmin Connect (OAuth 2.0 token endpoint, wellness user API, Courses API)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError

from core import ApiError, ServiceClient


class OsrmGeometry(BaseModel):
    type: str
    coordinates: list[list[float]]


class OsrmRoute(BaseModel):
    distance: float
    duration: float
    geometry: OsrmGeometry


class OsrmAnswer(BaseModel):
    code: str
    routes: list[OsrmRoute] = []


class RoutingClient:
    """Routes between waypoints; each waypoint is ``(lng, lat)``."""

    def __init__(self, http: ServiceClient, profile: str) -> None:
        self.http = http
        self.profile = profile

    async def route(self, waypoints: list[tuple[float, float]]) -> OsrmRoute:
        coordinates = ";".join(f"{lng:.6f},{lat:.6f}" for lng, lat in waypoints)
        response = await self.http.request(
            "GET",
            f"/route/v1/{self.profile}/{coordinates}",
            params={"overview": "full", "geometries": "geojson", "steps": "false"},
        )
        if response.status_code == 400:  # OSRM's answer to a route it cannot make
            raise ApiError(409, "no_route", "No route joins these waypoints.")
        if response.status_code >= 400:
            raise ApiError(502, "upstream_unavailable", "The routing engine refused the request.")
        answer = self.http.parse(response, OsrmAnswer)
        if answer.code != "Ok" or not answer.routes:
            raise ApiError(409, "no_route", "No route joins these waypoints.")
        return answer.routes[0]

    async def check(self) -> str:
        """For readiness: the cheapest real call (the road nearest a fixed point), once."""
        response = await self.http.request(
            "GET", f"/nearest/v1/{self.profile}/{PROBE[1]:.6f},{PROBE[0]:.6f}", retries=0
        )
        if response.status_code != 200 or self.http.parse(response, OsrmAnswer).code != "Ok":
            raise RuntimeError(
                f"the routing engine refused a nearest query (HTTP {response.status_code})"
            )
        return "reachable"


PROBE = (0.0, 0.0)
"""(lat, lng) the readiness checks ask about: any point will do, each service answers it."""

ELEVATION_BATCH = 100
"""Locations per Open Topo Data request: the public API's limit and the server's default."""
HIGHEST = 9000.0  # metres; an answer beyond +/- this is no elevation on Earth


class OpenTopoResult(BaseModel):
    elevation: float | None = None


class OpenTopoAnswer(BaseModel):
    status: str
    results: list[OpenTopoResult] = []


class ElevationClient:
    """Elevations of points, ``ELEVATION_BATCH`` locations per request; each point is
    ``(lng, lat)``. Refusals and answers that do not fit are ``502 upstream_invalid``; an
    outage is the ``ServiceClient``'s 502/504."""

    def __init__(self, http: ServiceClient, dataset: str) -> None:
        self.http = http
        self.dataset = dataset

    async def elevations(self, points: Sequence[tuple[float, float]]) -> list[float | None]:
        """Metres at each point, in order; ``None`` where the dataset has no value."""
        found: list[float | None] = []
        for start in range(0, len(points), ELEVATION_BATCH):
            found += await self._batch(points[start : start + ELEVATION_BATCH])
        return found

    async def check(self) -> str:
        """For readiness: one location, once."""
        await self._batch([(PROBE[1], PROBE[0])], retries=0)
        return "reachable"

    async def _batch(
        self, points: Sequence[tuple[float, float]], retries: int | None = None
    ) -> list[float | None]:
        locations = "|".join(f"{lat:.6f},{lng:.6f}" for lng, lat in points)
        response = await self.http.request(
            "GET", f"/v1/{self.dataset}", params={"locations": locations}, retries=retries
        )
        if response.status_code != 200:  # INVALID_REQUEST: an unknown dataset, too many points
            raise ApiError(502, "upstream_invalid", "The elevation service refused the request.")
        answer = self.http.parse(response, OpenTopoAnswer)
        if answer.status != "OK" or len(answer.results) != len(points):
            raise ApiError(502, "upstream_invalid", "The elevation service answered out of shape.")
        return [
            r.elevation
            if r.elevation is not None and math.isfinite(r.elevation) and abs(r.elevation) < HIGHEST
            else None
            for r in answer.results
        ]


class GarminTokens(BaseModel):
    """The token endpoint's answer (both grants)."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int | None = None
    scope: str | None = None


class GarminUser(BaseModel):
    user_id: str = Field(alias="userId")


class GarminCourse(BaseModel):
    course_id: int = Field(alias="courseId")


GARMIN_AUTH_REFUSED = "garmin_grant_refused"
GARMIN_TOKEN_REJECTED = "garmin_token_rejected"
GARMIN_NO_COURSE_IMPORT = "garmin_course_import_not_allowed"
GARMIN_QUOTA = "garmin_quota_exceeded"


class GarminClient:
    """Garmin Connect for one partner app: tokens by ``client_id``/``client_secret``, API
    calls by the user's Bearer token. Garmin's refusals become :class:`ApiError` with the
    ``GARMIN_*`` codes above; an outage is the ``ServiceClient``'s 502/504."""

    def __init__(
        self, http: ServiceClient, token_url: str, client_id: str, client_secret: str
    ) -> None:
        self.http = http
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> GarminTokens:
        """The authorization code for tokens (PKCE: the verifier of the challenge sent)."""
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": redirect_uri,
            }
        )

    async def refresh(self, refresh_token: str) -> GarminTokens:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: Mapping[str, str]) -> GarminTokens:
        response = await self.http.request(
            "POST",
            self.token_url,
            data={**form, "client_id": self.client_id, "client_secret": self.client_secret},
        )
        if response.status_code != 200:  # an invalid, expired or spent code or refresh token
            raise ApiError(502, GARMIN_AUTH_REFUSED, "Garmin refused the authorization.")
        try:  # not ServiceClient.parse: its log of what did not fit would show the tokens
            return GarminTokens.model_validate_json(response.content)
        except ValidationError:
            raise ApiError(
                502, "upstream_invalid", "Garmin Connect answered with an unexpected body."
            ) from None

    async def user_id(self, access_token: str) -> str:
        """Garmin's stable id of the user, the same across tokens."""
        response = await self._api("GET", "/wellness-api/rest/user/id", access_token)
        return self.http.parse(response, GarminUser).user_id

    async def create_course(self, access_token: str, course: Mapping[str, Any]) -> int:
        response = await self._api(
            "POST", "/training-api/courses/v1/course", access_token, json=course
        )
        return self.http.parse(response, GarminCourse).course_id

    async def deregister(self, access_token: str) -> None:
        """Garmin forgets this app's access to the user (required on account deletion).
        A token Garmin no longer knows means it is gone already: done too."""
        try:
            await self._api("DELETE", "/wellness-api/rest/user/registration", access_token)
        except ApiError as error:
            if error.code != GARMIN_TOKEN_REJECTED:
                raise

    async def _api(
        self, method: str, path: str, access_token: str, json: Any = None
    ) -> httpx.Response:
        response = await self.http.request(
            method, path, json=json, headers={"Authorization": f"Bearer {access_token}"}
        )
        if response.status_code in (200, 201, 204):
            return response
        if response.status_code == 401:
            raise ApiError(401, GARMIN_TOKEN_REJECTED, "Garmin no longer accepts this token.")
        if response.status_code == 412:
            raise ApiError(
                403, GARMIN_NO_COURSE_IMPORT, "Garmin Connect does not allow course import."
            )
        if response.status_code == 429:
            raise ApiError(429, GARMIN_QUOTA, "Garmin's call quota is spent for now.")
        raise ApiError(
            502, "upstream_unavailable", f"Garmin refused the call (HTTP {response.status_code})."
        )
