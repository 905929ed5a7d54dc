"""Reading an uploaded GPX file without trusting it.

Two passes: defusedxml's streaming ``iterparse`` first vets the document (no DTD, so no
entity expansion or external entities; bounded nesting depth, namespace declarations and
point count, stopping at the first excess), and only then does gpxpy parse the vetted text
into its GPX model. gpxpy's own parser is plain ``xml.etree`` and registers each prefix it
sees globally, which is why it never sees a document the first pass refused. The body size
is bounded before this by core's body limit (``IMPERFECT_MAX_BODY_BYTES``), the time by
the caller (:func:`plugins.public_routes.service.parse_upload`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

import gpxpy
import gpxpy.geo
import gpxpy.gpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from core import ApiError

POINT_TAGS = frozenset({"trkpt", "rtept"})
MAX_NAMESPACES = 16


@dataclass(frozen=True)
class Track:
    """What a GPX file gave: its name and its points as (lng, lat, elevation or None)."""

    name: str | None
    points: list[tuple[float, float, float | None]]
    distance_m: float
    gain_m: float
    loss_m: float


def _refuse(code: str, detail: str, status: int = 400) -> ApiError:
    """400 for a file that cannot be a route; 413 for one too big to read."""
    return ApiError(status, code, detail)


def vet(data: bytes, max_points: int, max_depth: int) -> None:
    """Refuse a hostile or oversized document while streaming it, before any tree exists."""
    depth = points = namespaces = 0
    try:
        events = iterparse(io.BytesIO(data), events=("start", "end", "start-ns"), forbid_dtd=True)
        for event, element in events:
            if event == "start-ns":
                namespaces += 1
                if namespaces > MAX_NAMESPACES:
                    raise _refuse("gpx_too_complex", "The GPX declares too many XML namespaces.")
            elif event == "start":
                depth += 1
                if depth == 1 and element.tag.rpartition("}")[2] != "gpx":
                    raise _refuse("gpx_malformed", "The file is XML, but not GPX.")
                if depth > max_depth:
                    raise _refuse("gpx_too_deep", f"The GPX nests deeper than {max_depth} levels.")
                if element.tag.rpartition("}")[2] in POINT_TAGS:
                    points += 1
                    if points > max_points:
                        raise _refuse(
                            "gpx_too_many_points",
                            f"The GPX has more than {max_points} points.",
                            413,
                        )
            else:
                depth -= 1
                element.clear()  # the vetting pass keeps nothing
    except DefusedXmlException as error:
        raise _refuse(
            "gpx_forbidden_xml", "The GPX uses a DTD or entities, which are not accepted."
        ) from error
    except ParseError as error:
        raise _refuse("gpx_malformed", f"The file is not well-formed XML: {error}.") from error


def parse(data: bytes, max_points: int, max_depth: int) -> Track:
    """The track of a GPX upload (its tracks' points, else its routes'), with its distance
    and elevation gain and loss (gpxpy's smoothed uphill/downhill)."""
    vet(data, max_points, max_depth)
    try:
        document = gpxpy.parse(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise _refuse("gpx_malformed", "The GPX is not UTF-8 text.") from error
    except gpxpy.gpx.GPXException as error:
        raise _refuse("gpx_malformed", f"The file is not valid GPX: {error}.") from error
    located: list[gpxpy.geo.Location] = [
        point for track in document.tracks for segment in track.segments for point in segment.points
    ] or [point for route in document.routes for point in route.points]
    if len(located) < 2:
        raise _refuse("gpx_too_few_points", "The GPX needs a track or route of two points or more.")
    for point in located:
        if not (-90 <= point.latitude <= 90 and -180 <= point.longitude <= 180):
            raise _refuse("gpx_bad_coordinates", "The GPX has a point outside the globe.")
    gain, loss = gpxpy.geo.calculate_uphill_downhill([point.elevation for point in located])
    name = document.name or next((t.name for t in document.tracks if t.name), None)
    name = name or next((r.name for r in document.routes if r.name), None)
    return Track(
        name=name.strip()[:120] or None if name else None,
        points=[(p.longitude, p.latitude, p.elevation) for p in located],
        distance_m=gpxpy.geo.length_2d(located),
        gain_m=gain,
        loss_m=loss,
    )


def to_gpx(title: str, points: list[list[float | None]]) -> str:
    """The route as a GPX 1.1 document (one track), for download."""
    document = gpxpy.gpx.GPX()
    document.name = title
    track = gpxpy.gpx.GPXTrack(name=title)
    segment = gpxpy.gpx.GPXTrackSegment()
    for lng, lat, elevation in points:
        assert lng is not None and lat is not None
        segment.points.append(gpxpy.gpx.GPXTrackPoint(lat, lng, elevation=elevation))
    track.segments.append(segment)
    document.tracks.append(track)
    return document.to_xml(version="1.1")
