"""The contract of the ``public_routes`` family: settings, requests, responses, and the
public share manifest (its JSON Schema is the ``ShareManifest`` component of the spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core import Family, StashKey, omittable
from plugins.public_routes.clients import RoutingClient

Locale = Literal["en", "fr", "de", "es"]


class PublicRoutesSettings(BaseModel):
    """``[plugins.public_routes.settings]``."""

    model_config = ConfigDict(extra="forbid")

    # The address the public pages are reached at, for absolute Open Graph URLs.
    public_url: str = "http://127.0.0.1:8000"
    default_locale: Locale = "en"
    # GPX limits on top of core's body limit (IMPERFECT_MAX_BODY_BYTES).
    max_points: int = Field(50_000, ge=2, le=1_000_000)
    max_depth: int = Field(16, ge=4, le=64)
    parse_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # A routing engine with OSRM's HTTP API; empty: planning from waypoints answers 503.
    osrm_url: str = ""
    osrm_profile: str = Field("foot", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    osrm_connect_timeout: float = Field(2.0, gt=0, le=30)
    osrm_read_timeout: float = Field(10.0, gt=0, le=60)


FAMILY = Family(__package__, PublicRoutesSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""
ROUTING = StashKey[RoutingClient]("routing")


class UploadQuery(BaseModel):
    """What goes with an uploaded GPX; the title defaults to the track's own name."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=120)
    locale: Locale | None = None


class Waypoint(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class PlanIn(BaseModel):
    """Waypoints to route through, in order (a loop repeats the first at the end)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "title": "Lakeside loop",
                    "locale": "en",
                    "waypoints": [
                        {"lat": 45.9, "lng": 6.13},
                        {"lat": 45.92, "lng": 6.16},
                        {"lat": 45.9, "lng": 6.13},
                    ],
                }
            ]
        },
    )

    waypoints: list[Waypoint] = Field(min_length=2, max_length=25)
    title: str = Field(min_length=1, max_length=120)
    locale: Locale | None = omittable()


class PlanProgress(BaseModel):
    """A coarse step of planning: nothing of the engine's internals."""

    step: Literal["accepted", "routing", "measuring", "saving"]


class PlanFailed(BaseModel):
    code: str
    detail: str


class RouteRename(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"title": "Sunrise loop"}]}
    )

    title: str = Field(min_length=1, max_length=120)


class Stats(BaseModel):
    distance_m: float = Field(ge=0)
    elevation_gain_m: float = Field(ge=0)
    elevation_loss_m: float = Field(ge=0)
    trail_ratio: float | None = Field(None, ge=0.0, le=1.0)
    estimated_duration_s: int | None = Field(None, ge=0)


class RouteOut(BaseModel):
    """One of the caller's routes (or the route an anonymous upload just made)."""

    share_id: str
    title: str
    locale: Locale
    url: str
    stats: Stats
    created_at: datetime


class Point(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class Bounds(BaseModel):
    south: float = Field(ge=-90, le=90)
    west: float = Field(ge=-180, le=180)
    north: float = Field(ge=-90, le=90)
    east: float = Field(ge=-180, le=180)


class Asset(BaseModel):
    """A content-addressed asset: ``url`` carries the version, so it may be cached forever."""

    url: str
    media_type: str
    etag: str


class Assets(BaseModel):
    geojson: Asset
    gpx: Asset
    preview: Asset
    page: str


class Caching(BaseModel):
    """Hints for clients that keep a share offline."""

    manifest_max_age_s: int
    assets_immutable: bool
    offline_ok: bool


class Alternative(BaseModel):
    share_id: str
    title: str
    url: str


class ShareManifest(BaseModel):
    """``GET /r/{share_id}/manifest.json``: everything a client needs to show a share."""

    version: Literal[1] = 1
    share_id: str
    canonical_slug: str
    title: str
    description: str
    preview_description: str | None = None
    request_paraphrase: str | None = None
    alternatives: list[Alternative]
    locale: Locale
    default_locale: Locale
    units: Literal["metric", "imperial"]
    stats: Stats
    center: Point
    bounds: Bounds
    assets: Assets
    caching: Caching


class LineString(BaseModel):
    type: Literal["LineString"] = "LineString"
    coordinates: list[list[float]]


class Feature(BaseModel):
    type: Literal["Feature"] = "Feature"
    properties: dict[str, None] = Field(default_factory=dict, max_length=0)
    geometry: LineString


class FeatureCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature] = Field(min_length=1, max_length=1)


class AssetQuery(BaseModel):
    """``v`` is the asset's content version from the manifest; with it the answer is
    immutable."""

    model_config = ConfigDict(extra="forbid")

    v: str | None = Field(None, max_length=64)
