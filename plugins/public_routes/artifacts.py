"""What a share shows: its slug, its preview image, its texts in the share's locale and its
HTML page. Pure functions of the stored route: no network, no map tiles."""

from __future__ import annotations

import io
import math
import re
import unicodedata
from collections.abc import Sequence

from jinja2 import Environment, select_autoescape
from PIL import Image, ImageDraw

from plugins.public_routes.page import SHARE_PAGE

PREVIEW_SIZE = (1200, 630)  # the Open Graph / Twitter large-card size
PREVIEW_MAX_BYTES = 250_000
RENDER_VERSION = "1"  # part of the content hash: a new renderer gives new asset URLs
SLUG_MAX = 60
UNIT_WORDS = frozenset(
    {"k", "km", "kms", "m", "mi", "mile", "miles", "ft", "feet", "meter", "meters", "metres"}
)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "route": "route",
        "distance": "Distance",
        "gain": "Elevation gain",
        "loss": "Elevation loss",
        "trail": "On trails",
        "description": "A {distance} route with {gain} of climbing.",
        "description_without_elevation": "A {distance} route.",
        "unknown": "unknown",
        "preview_alt": "Map line and elevation profile of the route {title}",
        "download": "Download",
        "geojson": "GeoJSON",
        "gpx": "GPX",
        "stats": "Route statistics",
    },
    "fr": {
        "route": "parcours",
        "distance": "Distance",
        "gain": "Dénivelé positif",
        "loss": "Dénivelé négatif",
        "trail": "Sur sentiers",
        "description": "Un parcours de {distance} avec {gain} de montée.",
        "description_without_elevation": "Un parcours de {distance}.",
        "unknown": "inconnu",
        "preview_alt": "Tracé et profil d'altitude du parcours {title}",
        "download": "Télécharger",
        "geojson": "GeoJSON",
        "gpx": "GPX",
        "stats": "Statistiques du parcours",
    },
    "de": {
        "route": "strecke",
        "distance": "Distanz",
        "gain": "Anstieg",
        "loss": "Abstieg",
        "trail": "Auf Trails",
        "description": "Eine Strecke von {distance} mit {gain} Anstieg.",
        "description_without_elevation": "Eine Strecke von {distance}.",
        "unknown": "unbekannt",
        "preview_alt": "Streckenverlauf und Höhenprofil von {title}",
        "download": "Herunterladen",
        "geojson": "GeoJSON",
        "gpx": "GPX",
        "stats": "Streckendaten",
    },
    "es": {
        "route": "ruta",
        "distance": "Distancia",
        "gain": "Desnivel positivo",
        "loss": "Desnivel negativo",
        "trail": "En senderos",
        "description": "Una ruta de {distance} con {gain} de subida.",
        "description_without_elevation": "Una ruta de {distance}.",
        "unknown": "desconocido",
        "preview_alt": "Trazado y perfil de altitud de la ruta {title}",
        "download": "Descargar",
        "geojson": "GeoJSON",
        "gpx": "GPX",
        "stats": "Estadísticas de la ruta",
    },
}

_page = Environment(
    autoescape=select_autoescape(default=True, default_for_string=True)
).from_string(SHARE_PAGE)


def slug_for(title: str, locale: str) -> str:
    """A short display slug of the title in its own script: lower-case words joined by
    hyphens, without numbers or units (``14-1-mi`` and ``10k`` never appear), at most
    60 characters; the locale's word for "route" when nothing is left."""
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", title).casefold())
    kept = [w for w in words if not any(c.isdigit() for c in w) and w not in UNIT_WORDS]
    slug = ""
    for word in kept:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > SLUG_MAX:
            break
        slug = candidate
    return slug or TEXTS[locale]["route"]


def km(metres: float, locale: str) -> str:
    text = f"{metres / 1000:.1f} km"
    return text.replace(".", ",") if locale in ("fr", "de", "es") else text


def description(distance_m: float, gain_m: float | None, locale: str) -> str:
    """The share's one-line description; ``gain_m`` None when the elevation is unknown
    (then no climbing is claimed)."""
    if gain_m is None:
        return TEXTS[locale]["description_without_elevation"].format(
            distance=km(distance_m, locale)
        )
    return TEXTS[locale]["description"].format(
        distance=km(distance_m, locale), gain=f"{round(gain_m)} m"
    )


def _project(points: Sequence[Sequence[float | None]]) -> list[tuple[float, float]]:
    """Equirectangular projection around the route's mean latitude (fine at route scale)."""
    lat0 = math.radians(sum(float(p[1] or 0) for p in points) / len(points))
    return [(float(p[0] or 0) * math.cos(lat0), float(p[1] or 0)) for p in points]


def _fit(
    values: list[tuple[float, float]], box: tuple[int, int, int, int]
) -> list[tuple[int, int]]:
    left, top, right, bottom = box
    xs, ys = [v[0] for v in values], [v[1] for v in values]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
    scale = min((right - left) / span, (bottom - top) / span)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    mx, my = (left + right) / 2, (top + bottom) / 2
    return [(round(mx + (x - cx) * scale), round(my - (y - cy) * scale)) for x, y in values]


def preview_jpeg(points: Sequence[Sequence[float | None]]) -> bytes:
    """The link preview: the route line above, its elevation profile below, as a JPEG no
    larger than ``PREVIEW_MAX_BYTES``."""
    width, height = PREVIEW_SIZE
    image = Image.new("RGB", PREVIEW_SIZE, (244, 241, 234))
    draw = ImageDraw.Draw(image)
    line = _fit(_project(points), (60, 40, width - 60, 440))
    draw.line(line, fill=(214, 69, 37), width=6, joint="curve")
    draw.ellipse(
        (line[0][0] - 9, line[0][1] - 9, line[0][0] + 9, line[0][1] + 9), fill=(40, 140, 60)
    )
    draw.ellipse(
        (line[-1][0] - 9, line[-1][1] - 9, line[-1][0] + 9, line[-1][1] + 9), fill=(30, 30, 30)
    )
    elevations = [float(p[2]) for p in points if p[2] is not None]
    top, bottom = 470, height - 20
    draw.rectangle((0, top - 10, width, height), fill=(230, 226, 215))
    if len(elevations) >= 2:
        low, high = min(elevations), max(elevations)
        rise = max(high - low, 1.0)
        step = (width - 80) / (len(elevations) - 1)
        profile = [
            (round(40 + i * step), round(bottom - (e - low) / rise * (bottom - top)))
            for i, e in enumerate(elevations)
        ]
        draw.polygon([(40, bottom), *profile, (width - 40, bottom)], fill=(120, 150, 110))
    for quality in (85, 70, 55, 40):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
        if out.tell() <= PREVIEW_MAX_BYTES:
            break
    return out.getvalue()


def page_html(**context: object) -> str:
    """The public page, autoescaped."""
    return _page.render(**context)
