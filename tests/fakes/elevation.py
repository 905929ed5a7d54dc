"""A fake elevation service speaking Open Topo Data's API, on a real socket.

``GET /v1/{dataset}?locations=lat,lng|lat,lng...`` answers ``{"results": [{"dataset",
"elevation", "location": {"lat", "lng"}}], "status": "OK"}``, the results in the order of
the locations, as https://www.opentopodata.org/api/ describes. Like the real server it
refuses, with ``400 {"status": "INVALID_REQUEST", "error": ...}``, an unknown dataset, a
location it cannot parse and more than ``max_locations`` (100, the public API's limit)
locations in one request; a point outside the dataset (beyond 60° of latitude, where
SRTM stops) has ``"elevation": null``.

The terrain is a plane, :meth:`FakeElevation.height`, so tests know the elevation of any
point. Tests control it: ``fail_with`` (answer every call with this status and
``SERVER_ERROR``), ``delay`` (seconds before each answer). ``calls`` records each
request's dataset and locations, as ``(lat, lng)`` pairs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, request

from tests.fakes.server import FakeServer

COVERED_LATITUDE = 60.0


@dataclass
class ElevationCall:
    dataset: str
    locations: list[tuple[float, float]]


@dataclass
class FakeElevation:
    datasets: tuple[str, ...] = ("srtm30m",)
    max_locations: int = 100
    fail_with: int | None = None
    delay: float = 0.0
    calls: list[ElevationCall] = field(default_factory=list)
    url: str = ""
    _server: FakeServer | None = None

    @staticmethod
    def height(lat: float, lng: float) -> float | None:
        """The fake's terrain: rising 10 m per 0.001° north, 4 m per 0.001° east of
        (45.9, 6.13); ``None`` outside the dataset."""
        if abs(lat) > COVERED_LATITUDE:
            return None
        return round(450.0 + (lat - 45.9) * 10_000 + (lng - 6.13) * 4_000, 1)

    def app(self) -> Quart:
        app = Quart("fake-elevation")

        @app.get("/v1/<dataset>")
        async def elevations(dataset: str) -> Any:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_with is not None:
                return {"status": "SERVER_ERROR", "error": "Server error."}, self.fail_with
            if dataset not in self.datasets:
                return _invalid(f"Dataset '{dataset}' not in config.")
            raw = request.args.get("locations", "")
            try:
                locations = [
                    (float(lat), float(lng))
                    for lat, lng in (pair.split(",") for pair in raw.split("|"))
                ]
            except ValueError:
                return _invalid("Unable to parse locations.")
            self.calls.append(ElevationCall(dataset, locations))
            if len(locations) > self.max_locations:
                return _invalid(
                    f"Too many locations provided ({len(locations)}), "
                    f"the limit is {self.max_locations}."
                )
            if any(not (-90 <= lat <= 90 and -180 <= lng <= 180) for lat, lng in locations):
                return _invalid("Latitude or longitude out of range.")
            return {
                "results": [
                    {
                        "dataset": dataset,
                        "elevation": self.height(lat, lng),
                        "location": {"lat": lat, "lng": lng},
                    }
                    for lat, lng in locations
                ],
                "status": "OK",
            }

        return app

    def start(self) -> FakeElevation:
        self._server = FakeServer(self.app()).start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


def _invalid(error: str) -> tuple[dict[str, str], int]:
    return {"status": "INVALID_REQUEST", "error": error}, 400
