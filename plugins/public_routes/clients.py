"""The routing engine, through OSRM's public HTTP API (``/route/v1/{profile}/...``)."""

from __future__ import annotations

from pydantic import BaseModel

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
