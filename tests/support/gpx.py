"""GPX documents for the public_routes tests: a real track, and hostile ones."""

from __future__ import annotations

import itertools
import math

EARTH_RADIUS_M = 6_371_000.0  # the mean radius gpxpy's haversine uses


def loop(
    points: int = 200, lat: float = 45.9, lng: float = 6.13
) -> list[tuple[float, float, float]]:
    """A loop of ``points`` (lat, lng, elevation) around a lake, climbing and descending."""
    return [
        (
            round(lat + 0.02 * math.sin(2 * math.pi * i / points), 7),
            round(lng + 0.03 * math.cos(2 * math.pi * i / points), 7),
            round(450 + 120 * math.sin(math.pi * i / (points - 1)), 1),
        )
        for i in range(points)
    ]


def track(points: list[tuple[float, float, float]], name: str = "Tour du lac") -> bytes:
    body = "".join(
        f'<trkpt lat="{lat}" lon="{lng}"><ele>{ele}</ele></trkpt>' for lat, lng, ele in points
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<gpx version="1.1" creator="tests" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><name>{name}</name><trkseg>{body}</trkseg></trk></gpx>"
    ).encode()


def haversine_length(points: list[tuple[float, float, float]]) -> float:
    """The 2-D length of a track, computed here independently of the app."""
    total = 0.0
    for (lat1, lng1, _), (lat2, lng2, _) in itertools.pairwise(points):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        dp, dl = p2 - p1, math.radians(lng2 - lng1)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        total += 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))
    return total


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>&lol9;</name>
<trkseg><trkpt lat="1" lon="1"/><trkpt lat="1.1" lon="1.1"/></trkseg></trk></gpx>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE gpx [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>&secret;</name>
<trkseg><trkpt lat="1" lon="1"/><trkpt lat="1.1" lon="1.1"/></trkseg></trk></gpx>"""


def deeply_nested(depth: int = 5000) -> bytes:
    """A GPX whose extensions nest ``depth`` levels deep."""
    return (
        b'<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><extensions>'
        + b"<x>" * depth
        + b"</x>" * depth
        + b"</extensions></gpx>"
    )


def many_points(count: int) -> bytes:
    """``count`` minimal track points (about 30 bytes each)."""
    body = b'<trkpt lat="1" lon="1"/>' * count
    return (
        b'<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
        + body
        + b"</trkseg></trk></gpx>"
    )
