"""The contract of the ``events`` family: its settings, requests and responses."""

from __future__ import annotations

import base64
import re
import struct
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic.json_schema import WithJsonSchema

from core import Family, SpecComponent, Sport, StashKey, WholeNumber, omittable, request_body


class EventsSettings(BaseModel):
    """``[plugins.events.settings]``."""

    model_config = ConfigDict(extra="forbid")

    sweep_interval_seconds: float = Field(
        3600.0,
        ge=0.05,
        le=86400,
        description="How often active goals whose event day has passed are moved to "
        "history as completed (also checked whenever a user reads their goals).",
    )
    default_radius_km: float = Field(50.0, gt=0, le=20000)


FAMILY = Family(__package__, EventsSettings)
"""This family in the running app: ``FAMILY.settings``, ``FAMILY.stash[SWEEPER]``."""


GoalStatus = Annotated[
    Literal["active", "completed", "abandoned", "replaced", "cancelled"],
    SpecComponent(
        "GoalStatus",
        "active; or history: completed (the event's day passed), abandoned (dropped by the "
        "user), replaced (another goal became active), cancelled (the event was retired).",
    ),
]

# ISO 639-1: the primary subtag of a language tag must be one of these.
_ISO_639_1_CODES = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu "
    "cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi "
    "ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks "
    "ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl "
    "nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl "
    "sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve "
    "vi vo wa wo xh yi yo za zh zu"
)
ISO_639_1 = frozenset(_ISO_639_1_CODES.split())


def _primary_pattern(codes: frozenset[str]) -> str:
    """The ISO 639-1 codes as one alternation, any case (``[eE][lnoLNO]|...``), so the
    published pattern admits exactly the languages :func:`canonical_language` knows."""
    seconds: dict[str, str] = {}
    for code in sorted(codes):
        seconds[code[0]] = seconds.get(code[0], "") + code[1]
    return "|".join(
        f"[{first}{first.upper()}][{rest}{rest.upper()}]" for first, rest in seconds.items()
    )


LANGUAGE_PATTERN = (
    f"^({_primary_pattern(ISO_639_1)})(-[A-Za-z]{{4}})?(-([A-Za-z]{{2}}|[0-9]{{3}}))?$"
)
_LANGUAGE = re.compile(LANGUAGE_PATTERN)


def canonical_language(value: str) -> str:
    """``value`` as a canonical language tag (``pt-BR``, ``zh-Hant-TW``), or ValueError.

    A tag is an ISO 639-1 language, optionally a script and a region: what translations
    are stored under and ``Accept-Language`` is matched against.
    """
    if not _LANGUAGE.match(value):
        raise ValueError("must be a language tag such as 'en', 'fr' or 'pt-BR'")
    parts = value.split("-")
    primary = parts[0].lower()
    if primary not in ISO_639_1:
        raise ValueError(f"'{parts[0]}' is not an ISO 639-1 language")
    rest = [p.title() if len(p) == 4 else p.upper() for p in parts[1:]]
    return "-".join([primary, *rest])


Language = Annotated[
    str,
    StringConstraints(min_length=2, max_length=35, pattern=LANGUAGE_PATTERN),
    AfterValidator(canonical_language),
]
_TIMEZONES = frozenset(available_timezones()) - {"Factory", "localtime"}


def _known_timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError("must be an IANA time zone such as 'Europe/Paris'")
    return value


TimeZone = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*)*$",
    ),
    AfterValidator(_known_timezone),
]
MIN_DATE, MAX_DATE = date(2000, 1, 1), date(2100, 12, 31)
# JSON Schema has no bounds for dates: the pattern says 2000-01-01 to 2100-12-31.
DATE_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
EventDate = Annotated[
    date,
    Field(ge=MIN_DATE, le=MAX_DATE),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$"), AfterValidator(str.upper)]
Line = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
    ),
]
Description = Annotated[str, StringConstraints(max_length=5000, pattern=r"^[^\x00]*$")]
Km = Annotated[float, Field(gt=0, le=1000)]


# Integers as JSON Schema means them (strict otherwise: "1" and true are not 1); the
# bounds come before the validator so that the document shows them.
Id = Annotated[int, Field(ge=1, le=2**31 - 1), WholeNumber]
TargetSeconds = Annotated[int, Field(ge=60, le=30 * 86400), WholeNumber]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value


Url = Annotated[str, StringConstraints(max_length=500), AfterValidator(_http_url)]
BODY = ConfigDict(extra="forbid", strict=True)


# --- the catalogue ---------------------------------------------------------------------


class PlaceIn(BaseModel):
    model_config = BODY

    name: Line
    country: Country = Field(description="ISO 3166-1 alpha-2 country code.", examples=["DE"])
    lat: Latitude
    lng: Longitude


class DistanceIn(BaseModel):
    model_config = BODY

    km: Km
    label: str = Field("", max_length=60, pattern=r"^[^\x00-\x1f\x7f]*$")


class TranslationIn(BaseModel):
    """The name and description of an event in one language."""

    model_config = request_body(
        {"name": "Marathon de Berlin", "description": "Le parcours le plus rapide du monde."}
    )

    name: Line
    description: Description = ""


EXAMPLE_EVENT: dict[str, Any] = {
    "name": "Berlin Marathon",
    "description": "The fastest course in the world.",
    "sport": "running",
    "distances": [{"km": 42.195, "label": "Marathon"}],
    "date": "2031-09-28",
    "start_time": "09:15",
    "timezone": "Europe/Berlin",
    "place": {"name": "Berlin", "country": "DE", "lat": 52.5163, "lng": 13.3777},
    "organiser_url": "https://www.bmw-berlin-marathon.com",
    "default_language": "de",
    "translations": {"fr": {"name": "Marathon de Berlin", "description": ""}},
}


class EventFields(BaseModel):
    model_config = BODY

    name: Line
    description: Description = ""
    sport: Sport
    distances: list[DistanceIn] = Field(min_length=1, max_length=10)
    date: EventDate
    start_time: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["09:15"])
    timezone: TimeZone
    place: PlaceIn
    organiser_url: Url | None = omittable()
    default_language: Language


class EventIn(EventFields):
    """A new event. ``source_id`` is the id the event has in the catalogue it came from
    (imports are idempotent by it)."""

    model_config = request_body(
        {**EXAMPLE_EVENT, "source_id": "bmw-berlin-2031"},
        {k: v for k, v in EXAMPLE_EVENT.items() if k not in ("translations", "organiser_url")},
    )

    source_id: str | None = omittable(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    translations: dict[Language, TranslationIn] = Field(default_factory=dict, max_length=50)


class EventPatch(BaseModel):
    """Changes to an event: only the fields sent change. ``distances`` replaces the list
    (a distance with the same km keeps its id, so goals on it stay)."""

    model_config = request_body({"date": "2031-09-29", "start_time": "08:30"}, {"description": ""})

    name: Line = omittable()
    description: Description = omittable()
    sport: Sport = omittable()
    distances: list[DistanceIn] = omittable(min_length=1, max_length=10)
    date: EventDate = omittable()
    start_time: str = omittable(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    timezone: TimeZone = omittable()
    place: PlaceIn = omittable()
    organiser_url: Url | None = omittable()
    default_language: Language = omittable()


class DistanceOut(BaseModel):
    id: int
    km: float
    label: str


class PlaceOut(BaseModel):
    name: str
    country: str
    lat: float
    lng: float


class EventSummary(BaseModel):
    """An event as listed by discovery (in its default language)."""

    id: int
    name: str
    sport: Sport
    date: date
    start_time: str
    timezone: str
    place: PlaceOut
    distances: list[DistanceOut]
    distance_km: float | None = Field(
        None, description="With `near=`: how far the event is from that point."
    )


class EventOut(EventSummary):
    """One event, in the language the answer's ``Content-Language`` names."""

    description: str
    language: str = Field(description="The language of name and description.")
    default_language: str
    languages: list[str] = Field(description="Every language the event is available in.")
    starts_at: datetime = Field(description="The start, with the event's UTC offset.")
    organiser_url: str | None
    source_id: str | None
    retired: bool


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


# A cursor is 12 bytes, base64url: the day (days since 2000-01-01, 4 signed bytes) and the
# event id (8 unsigned bytes), big-endian. Every string of 16 such characters is a position in the
# (date, id) order, clamped to the catalogue's dates, so the pattern says exactly which
# cursors the API takes.
_CURSOR = struct.Struct(">iQ")
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{16}$"
MAX_EVENT_ID = 2**31 - 1


def encode_cursor(day: date, event_id: int) -> str:
    packed = _CURSOR.pack((day - MIN_DATE).days, event_id)
    return base64.urlsafe_b64encode(packed).decode()


def decode_cursor(cursor: str) -> tuple[date, int]:
    """The position after which the next page starts. A position outside the catalogue's
    dates (or ids) stands for the nearest one inside: no event lies between them."""
    days, event_id = _CURSOR.unpack(base64.urlsafe_b64decode(cursor))
    if days < 0:
        return MIN_DATE, 0
    if days > (MAX_DATE - MIN_DATE).days:
        return MAX_DATE, MAX_EVENT_ID
    return MIN_DATE + timedelta(days=days), min(event_id, MAX_EVENT_ID)


# `lat,lng` in decimal degrees, -90..90 and -180..180 (what _near reads).
NEAR_PATTERN = (
    r"^-?(90(\.0{1,12})?|[1-8]?[0-9](\.[0-9]{1,12})?),"
    r"-?(180(\.0{1,12})?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]{1,12})?)$"
)


def _near(value: str) -> tuple[float, float]:
    lat, lng = value.split(",")
    return float(lat), float(lng)


class EventQuery(BaseModel):
    """Discovery filters; every one is optional and they combine (AND)."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Words to find in the name (any language) and place; each word matches "
        "the start of a word (`berl mara` finds 'Berlin Marathon'), accents and case ignored. "
        "A `q` without a letter or digit finds nothing.",
    )
    sport: Sport | None = None
    date_from: EventDate | None = Field(
        None, description="Default: today (UTC). After `date_to`: no event matches."
    )
    date_to: EventDate | None = None
    distance_min_km: float | None = Field(None, ge=0, le=1000)
    distance_max_km: float | None = Field(
        None, ge=0, le=1000, description="Below `distance_min_km`: no event matches."
    )
    country: Country | None = Field(None, description="ISO 3166-1 alpha-2, any case.")
    near: Annotated[str, StringConstraints(pattern=NEAR_PATTERN)] | None = Field(
        None,
        description="`lat,lng` in decimal degrees: only events within `radius_km` of it.",
        examples=["52.52,13.405"],
    )
    radius_km: float | None = Field(
        None, gt=0, le=20000, description="Default: 50 km. Only read with `near`."
    )
    cursor: str | None = Field(
        None, pattern=CURSOR_PATTERN, description="A `next_cursor` of an earlier page."
    )
    limit: int = Field(20, ge=1, le=100)

    def point(self) -> tuple[float, float] | None:
        return None if self.near is None else _near(self.near)


class EventLanguageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lang: Language | None = Field(
        None, description="The language wanted; overrides `Accept-Language`."
    )


# --- goals -----------------------------------------------------------------------------


class UserEventIn(BaseModel):
    """Make an event (one of its distances) the caller's active goal; the current one, if
    any, moves to history as replaced."""

    model_config = request_body(
        {"event_id": 1, "distance_id": 1, "target_time_seconds": 12600},
        {"event_id": 1},
    )

    event_id: Id
    distance_id: Id | None = omittable(description="Default: the event's longest distance.")
    target_time_seconds: TargetSeconds | None = omittable()


class GoalEvent(BaseModel):
    id: int
    name: str
    sport: Sport
    date: date
    place: PlaceOut


class UserEventOut(BaseModel):
    id: int
    status: GoalStatus
    event: GoalEvent
    distance: DistanceOut | None
    target_time_seconds: int | None
    source: str
    started_at: datetime
    ended_at: datetime | None


class GoalHistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    before: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Only goals older than this id."
    )


class GoalHistoryPage(BaseModel):
    items: list[UserEventOut]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


class Sweeper:
    """The background task that completes goals whose event day has passed."""

    def __init__(self) -> None:
        self.task: Any = None
        self.runs = 0
        self.completed = 0


SWEEPER = StashKey[Sweeper]("sweeper")
