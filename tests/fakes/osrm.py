"""A fake routing engine speaking OSRM's HTTP API (``GET /route/v1/{profile}/{coordinates}``
and ``GET /nearest/v1/{profile}/{lng},{lat}``), on a real socket.

It answers like OSRM: ``{"code": "Ok", "routes": [{"distance", "duration", "geometry"}],
"waypoints": [...]}`` with ``geometries=geojson``, and a 400 with ``{"code": "InvalidQuery"}``
(or ``"NoRoute"`` when told) otherwise. The route it draws goes through each waypoint with
``steps`` points in between on the straight line, so tests know the geometry it returned.
Tests control it: ``fail_with`` (answer every call with this status), ``no_route`` (answer
400 ``NoRoute``), ``unreachable`` (``(lng, lat)`` points no road reaches: a route through
one is ``NoRoute``), ``delay`` (seconds before each answer). ``calls`` records each route
request's path and query, ``nearest_calls`` each nearest request's coordinates.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, request

from tests.fakes.server import FakeServer

EARTH_RADIUS_M = 6_371_000.0


def _metres(a: list[float], b: list[float]) -> float:
    lat1, lat2 = math.radians(a[1]), math.radians(b[1])
    dlat, dlng = lat2 - lat1, math.radians(b[0] - a[0])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


@dataclass
class FakeOsrm:
    steps: int = 10
    fail_with: int | None = None
    no_route: bool = False
    unreachable: set[tuple[float, float]] = field(default_factory=set)
    delay: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    nearest_calls: list[str] = field(default_factory=list)
    url: str = ""
    _server: FakeServer | None = None

    def geometry(self, waypoints: list[list[float]]) -> list[list[float]]:
        """The line the fake answers for these ``[lng, lat]`` waypoints."""
        line = [waypoints[0]]
        for start, end in itertools.pairwise(waypoints):
            for i in range(1, self.steps + 1):
                t = i / self.steps
                line.append(
                    [
                        round(start[0] + (end[0] - start[0]) * t, 6),
                        round(start[1] + (end[1] - start[1]) * t, 6),
                    ]
                )
        return line

    def app(self) -> Quart:
        app = Quart("fake-osrm")

        @app.get("/route/v1/<profile>/<coordinates>")
        async def route(profile: str, coordinates: str) -> Any:
            self.calls.append({"profile": profile, "coordinates": coordinates, **request.args})
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_with is not None:
                return {"code": "Error", "message": "down"}, self.fail_with
            try:
                waypoints = [[float(v) for v in pair.split(",")] for pair in coordinates.split(";")]
            except ValueError:
                return {"code": "InvalidUrl", "message": "bad coordinates"}, 400
            if len(waypoints) < 2 or request.args.get("geometries") != "geojson":
                return {"code": "InvalidQuery", "message": "need two points, geojson"}, 400
            if self.no_route or any((w[0], w[1]) in self.unreachable for w in waypoints):
                return {"code": "NoRoute", "message": "Impossible route between points"}, 400
            line = self.geometry(waypoints)
            distance = sum(_metres(a, b) for a, b in itertools.pairwise(line))
            return {
                "code": "Ok",
                "routes": [
                    {
                        "distance": round(distance, 1),
                        "duration": round(distance / 1.4, 1),
                        "weight": round(distance / 1.4, 1),
                        "weight_name": "duration",
                        "legs": [],
                        "geometry": {"type": "LineString", "coordinates": line},
                    }
                ],
                "waypoints": [{"name": "", "location": w, "distance": 0.0} for w in waypoints],
            }

        @app.get("/nearest/v1/<profile>/<coordinates>")
        async def nearest(profile: str, coordinates: str) -> Any:
            self.nearest_calls.append(coordinates)
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_with is not None:
                return {"code": "Error", "message": "down"}, self.fail_with
            try:
                lng, lat = (float(v) for v in coordinates.split(","))
            except ValueError:
                return {"code": "InvalidUrl", "message": "one lng,lat pair"}, 400
            return {
                "code": "Ok",
                "waypoints": [
                    {"name": "", "location": [lng, lat], "distance": 0.0, "nodes": [1, 2]}
                ],
            }

        return app

    def start(self) -> FakeOsrm:
        self._server = FakeServer(self.app()).start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
