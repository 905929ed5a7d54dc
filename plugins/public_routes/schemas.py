"""The contract of the ``public_routes`` family: settings, requests, responses, and the
public share manifest (its JSON Schema is the ``ShareManifest`` component of the spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from cryptography.fernet import Fernet, MultiFernet
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from core import Family, StashKey, omittable, request_body
from plugins.public_routes.clients import ElevationClient, GarminClient, RoutingClient

Locale = Literal["en", "fr", "de", "es"]
ElevationSource = Literal["service", "track", "partial", "none"]


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
    # An elevation service with Open Topo Data's API (GET /v1/{dataset}?locations=...), for
    # planned routes and GPX tracks without elevation; either empty: from the track only.
    elevation_url: str = ""
    elevation_dataset: str = Field("", pattern=r"^([a-z0-9_-]{1,40}(,[a-z0-9_-]{1,40}){0,3})?$")
    # Points looked up per route (evenly spread; the others interpolated), and seconds for
    # the whole lookup: past it the route is stored without the service's elevation.
    elevation_max_points: int = Field(500, ge=2, le=5000)
    elevation_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # Seconds a natural-language planner (cheshire) may take to turn a request into a plan.
    planner_timeout_seconds: float = Field(40.0, gt=0, le=300)
    # Garmin Connect route-send (/route-send/garmin/*); no client id: those routes answer 503.
    garmin_client_id: str = ""
    garmin_client_secret: SecretStr = SecretStr("")
    garmin_authorize_url: str = "https://connect.garmin.com/oauth2Confirm"
    garmin_token_url: str = "https://diauth.garmin.com/di-oauth2-service/oauth/token"
    garmin_api_url: str = "https://apis.garmin.com"
    # Fernet keys that encrypt Garmin tokens at rest, comma-separated: the first encrypts,
    # every one decrypts (put a new key first to rotate, drop the old one once re-encrypted).
    garmin_token_keys: SecretStr = SecretStr("")
    garmin_state_ttl_seconds: int = Field(600, ge=60, le=3600)
    garmin_connect_timeout: float = Field(3.0, gt=0, le=30)
    garmin_read_timeout: float = Field(15.0, gt=0, le=60)

    @model_validator(mode="after")
    def _garmin_complete(self) -> PublicRoutesSettings:
        """A client id without its secret or keys is a mistake, not "off"."""
        if self.garmin_client_id:
            if not self.garmin_client_secret.get_secret_value():
                raise ValueError("garmin_client_id is set: set garmin_client_secret too")
            garmin_fernet(self)  # raises on a missing or malformed key
        return self

    @property
    def garmin_redirect_url(self) -> str:
        """Where Garmin sends the browser back: registered with Garmin as is."""
        return f"{self.public_url.rstrip('/')}/route-send/garmin/callback"


def garmin_fernet(settings: PublicRoutesSettings) -> MultiFernet:
    """The token cipher: the first key encrypts, every key decrypts."""
    keys = [k.strip() for k in settings.garmin_token_keys.get_secret_value().split(",")]
    keys = [k for k in keys if k]
    if not keys:
        raise ValueError("garmin_client_id is set: set garmin_token_keys (Fernet keys)")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as error:
        raise ValueError(
            "garmin_token_keys: each key must be a Fernet key "
            "(32 url-safe base64-encoded bytes, Fernet.generate_key())"
        ) from error


FAMILY = Family(__package__, PublicRoutesSettings)
"""This family in the running app, whatever ``plugins.toml`` calls it."""
ROUTING = StashKey[RoutingClient]("routing")
ELEVATION = StashKey[ElevationClient]("elevation")
GARMIN = StashKey[GarminClient]("garmin")
GARMIN_CIPHER = StashKey[MultiFernet]("garmin_cipher")


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


class RequestPlanIn(BaseModel):
    """A route asked for in the user's words; a planner (cheshire) turns it into waypoints."""

    model_config = request_body(
        {
            "text": "A flat 10 km loop along the lake, starting from the old town",
            "locale": "en",
            "near": {"lat": 45.899, "lng": 6.129},
        }
    )

    text: str = Field(min_length=1, max_length=500, description="The request, as written.")
    locale: Locale
    near: Waypoint | None = omittable(description="Where the route should be.")

    @field_validator("text")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the request is blank")
        if any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in value):
            raise ValueError("the request holds control characters")
        return value


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
    elevation_source: ElevationSource | None = Field(
        None,
        description="Where gain and loss come from: `service` (the elevation service), "
        "`track` (the GPX file's own elevations), `partial` (the points with an elevation, "
        "some have none), `none` (no elevation known, e.g. the service was down: gain and "
        "loss are 0 and mean unknown); null for routes stored before it was recorded.",
    )


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


class GarminSendIn(BaseModel):
    """The share to send to the caller's Garmin Connect as a course."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"share_id": "q3Yk1xq0m2Vb8gWc5tLr9A"}]},
    )

    share_id: str = Field(min_length=1, max_length=32)


class GarminSendStarted(BaseModel):
    """Where the browser goes next: Garmin's consent screen (``consent``), or this API's
    send step when the caller already allowed it. Either ends on a result page."""

    authorize_url: str
    consent: bool
    expires_at: datetime


class GarminCallbackQuery(BaseModel):
    """What Garmin's consent screen sends the browser back with: ``code`` and ``state``,
    or ``error`` (``access_denied`` when the user declined). Other parameters are ignored."""

    model_config = ConfigDict(extra="ignore")

    state: str = Field(min_length=1, max_length=128)
    code: str | None = Field(None, max_length=2048)
    error: str | None = Field(None, max_length=128)
    error_description: str | None = Field(None, max_length=1024)


class GarminSendQuery(BaseModel):
    """The send step's one-time ``state``, from ``POST /route-send/garmin/start``."""

    model_config = ConfigDict(extra="forbid")

    state: str = Field(min_length=1, max_length=128)
