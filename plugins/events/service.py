"""The catalogue, discovery and users' goals. No HTTP here.

Discovery is keyset-paginated on ``(date, id)``: a page starts strictly after the last
event of the previous one, so events inserted meanwhile never shift a page (none is
skipped, none repeated). Text search runs on the database's full-text index: PostgreSQL's
``to_tsvector('simple', search_text)`` (a GIN index) or SQLite's FTS5 table
``events_event_fts``. Both index ``search_text``, which this module writes already
normalised (accents removed, case folded, one space between words), and both are asked
the same question, every query word as a prefix, so they find the same events.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, RawSQL, Subquery
from tortoise.transactions import in_transaction

from core import ApiError, PushMessage, User, current_platform, utcnow
from plugins.events.models import Event, EventDistance, EventTranslation, UserEvent
from plugins.events.schemas import (
    EventFields,
    EventIn,
    EventPatch,
    EventQuery,
    TranslationIn,
    UserEventOut,
    canonical_language,
    decode_cursor,
    encode_cursor,
)

log = logging.getLogger(__name__)
MAX_ID = 2**31 - 1
EARTH_RADIUS_KM = 6371.0088
GOAL_ATTEMPTS = 40  # concurrent goal changes of one user: each attempt, one of them wins
_WORD = re.compile(r"[^\W_]+")


# --- text ------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The words of ``text`` as the index holds them: accents removed, case folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _WORD.findall(stripped.casefold())


def search_text(name: str, place_name: str, translated_names: Iterable[str]) -> str:
    return " ".join(words(" ".join([name, place_name, *translated_names])))


def _text_match(tokens: list[str]) -> RawSQL:
    """The ids of the events with every token, as a word prefix, in ``search_text``, from
    the full-text index: a subquery for ``id IN``, so that the condition is the index's own
    in every plan (compared with a bound ``true``, a prepared statement's generic plan could
    not use the index, and computed ``to_tsvector`` row by row instead).

    The tokens come from :func:`words`, letters and digits only, so they are safe in SQL.
    """
    assert all(_WORD.fullmatch(t) for t in tokens)
    if Event._meta.db.capabilities.dialect == "postgres":
        query = " & ".join(f"{t}:*" for t in tokens)
        return RawSQL(
            '(SELECT "id" FROM "events_event" WHERE '
            f"to_tsvector('simple', \"search_text\") @@ to_tsquery('simple', '{query}'))"
        )
    match = " ".join(f'"{t}"*' for t in tokens)
    return RawSQL(f"(SELECT rowid FROM events_event_fts WHERE events_event_fts MATCH '{match}')")


# --- places ----------------------------------------------------------------------------


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _bounding_box(lat: float, lng: float, radius_km: float) -> Q | None:
    """A box holding every point within ``radius_km`` (a cheap filter before the exact one)."""
    dlat = math.degrees(radius_km / EARTH_RADIUS_KM) * 1.001
    if dlat >= 180:
        return None
    box = Q(latitude__gte=lat - dlat, latitude__lte=lat + dlat)
    widest = min(90.0, abs(lat) + dlat)
    if widest >= 89.9:
        return box  # the circle reaches a pole: every longitude
    dlng = math.degrees(radius_km / (EARTH_RADIUS_KM * math.cos(math.radians(widest)))) * 1.001
    if dlng >= 180:
        return box
    low, high = lng - dlng, lng + dlng
    if low < -180:
        longitudes = Q(longitude__gte=low + 360) | Q(longitude__lte=high)
    elif high > 180:
        longitudes = Q(longitude__gte=low) | Q(longitude__lte=high - 360)
    else:
        longitudes = Q(longitude__gte=low, longitude__lte=high)
    return box & longitudes


# --- shaping ---------------------------------------------------------------------------


def place_of(event: Event) -> dict[str, Any]:
    return {
        "name": event.place_name,
        "country": event.country,
        "lat": event.latitude,
        "lng": event.longitude,
    }


def distance_of(distance: EventDistance) -> dict[str, Any]:
    return {"id": distance.id, "km": distance.km, "label": distance.label}


async def _distances(event_ids: list[int]) -> dict[int, list[EventDistance]]:
    found: dict[int, list[EventDistance]] = {i: [] for i in event_ids}
    for distance in await EventDistance.filter(event_id__in=event_ids).order_by("km", "id"):
        found[distance.event_id].append(distance)
    return found


def summary_of(
    event: Event, distances: list[EventDistance], distance_km: float | None = None
) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "sport": event.sport,
        "date": event.date,
        "start_time": event.start_time,
        "timezone": event.timezone,
        "place": place_of(event),
        "distances": [distance_of(d) for d in distances],
        "distance_km": None if distance_km is None else round(distance_km, 3),
    }


def starts_at(event: Event) -> datetime:
    hour, minute = (int(part) for part in event.start_time.split(":"))
    return datetime.combine(event.date, time(hour, minute), ZoneInfo(event.timezone))


def has_passed(event: Event, now: datetime | None = None) -> bool:
    """True from the day after the event, on the calendar of the event's place."""
    local_today = (now or utcnow()).astimezone(ZoneInfo(event.timezone)).date()
    return local_today > event.date


# --- discovery -------------------------------------------------------------------------


def today() -> date:
    return utcnow().date()


async def discover(query: EventQuery, default_radius_km: float) -> dict[str, Any]:
    """One page of events matching every filter, in ``(date, id)`` order."""
    rows = Event.filter(retired_at=None, date__gte=query.date_from or today())
    if query.date_to is not None:
        rows = rows.filter(date__lte=query.date_to)
    if query.sport is not None:
        rows = rows.filter(sport=query.sport)
    if query.country is not None:
        rows = rows.filter(country=query.country)
    if query.distance_min_km is not None or query.distance_max_km is not None:
        offered = EventDistance.all()
        if query.distance_min_km is not None:
            offered = offered.filter(km__gte=query.distance_min_km)
        if query.distance_max_km is not None:
            offered = offered.filter(km__lte=query.distance_max_km)
        rows = rows.filter(id__in=Subquery(offered.values("event_id")))
    if query.q is not None:
        tokens = list(dict.fromkeys(words(query.q)))
        if not tokens:  # no word to find: no event has it
            return {"items": [], "next_cursor": None}
        rows = rows.filter(id__in=_text_match(tokens))
    point = query.point()
    radius = query.radius_km or default_radius_km
    if point is not None and (box := _bounding_box(*point, radius)) is not None:
        rows = rows.filter(box)
    after = decode_cursor(query.cursor) if query.cursor else None

    page: list[tuple[Event, float | None]] = []
    chunk = max(2 * query.limit, 50) if point else query.limit + 1
    while len(page) <= query.limit:
        batch = rows
        if after is not None:
            batch = batch.filter(Q(date__gt=after[0]) | Q(date=after[0], id__gt=after[1]))
        found = await batch.order_by("date", "id").limit(chunk)
        for event in found:
            away = None
            if point is not None:
                away = haversine_km(point[0], point[1], event.latitude, event.longitude)
                if away > radius:
                    continue
            page.append((event, away))
        if len(found) < chunk:
            break
        after = (found[-1].date, found[-1].id)
    more = len(page) > query.limit
    page = page[: query.limit]
    distances = await _distances([event.id for event, _ in page])
    last = page[-1][0] if page else None
    return {
        "items": [summary_of(event, distances[event.id], away) for event, away in page],
        "next_cursor": encode_cursor(last.date, last.id) if more and last else None,
    }


# --- one event, in a language ----------------------------------------------------------


def _accepted(header: str) -> list[str]:
    """The tags of an ``Accept-Language`` header, most wanted first (malformed ones and
    ``*`` are ignored, as RFC 9110 lets a server do)."""
    ranked = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        match = re.fullmatch(r"\s*q\s*=\s*([01](\.\d{0,3})?)\s*", params) if params else None
        if params and match is None:
            continue
        if match:
            weight = float(match.group(1))
        try:
            canonical = canonical_language(tag.strip())
        except ValueError:
            continue
        if weight > 0:
            ranked.append((-weight, position, canonical))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(available: list[str], default: str, wanted: list[str]) -> str:
    """The first of ``wanted`` that ``available`` has (exactly, else by language alone),
    else ``default``."""
    for tag in wanted:
        if tag in available:
            return tag
        primary = tag.split("-")[0]
        same = [a for a in available if a.split("-")[0] == primary]
        if same:
            return primary if primary in same else same[0]
    return default


async def find_event(event_id: int, *, include_retired: bool = False) -> Event:
    event = None
    if event_id <= MAX_ID:
        event = await Event.get_or_none(id=event_id)
    if event is None or (event.retired_at is not None and not include_retired):
        raise ApiError(404, "event_not_found", f"There is no event {event_id}.")
    return event


async def localised(
    event: Event, lang: str | None, accept_language: str
) -> tuple[dict[str, Any], str]:
    translations = {t.language: t for t in await EventTranslation.filter(event_id=event.id)}
    available = sorted({event.default_language, *translations})
    wanted = [lang] if lang else _accepted(accept_language)
    served = choose_language(available, event.default_language, wanted)
    name, description = event.name, event.description
    if served != event.default_language and served in translations:
        name, description = translations[served].name, translations[served].description
    distances = await _distances([event.id])
    detail = {
        **summary_of(event, distances[event.id]),
        "name": name,
        "description": description,
        "language": served,
        "default_language": event.default_language,
        "languages": available,
        "starts_at": starts_at(event),
        "organiser_url": event.organiser_url,
        "source_id": event.source_id,
        "retired": event.retired_at is not None,
    }
    return detail, served


# --- admin -----------------------------------------------------------------------------


def _columns(data: EventFields | EventPatch, fields: set[str]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name in fields - {"place", "distances", "translations", "source_id"}:
        columns[name] = getattr(data, name)
    if "place" in fields and data.place is not None:
        columns.update(
            place_name=data.place.name,
            country=data.place.country,
            latitude=data.place.lat,
            longitude=data.place.lng,
        )
    return columns


async def _reindex(event: Event) -> None:
    names = await EventTranslation.filter(event_id=event.id).values_list("name", flat=True)
    event.search_text = search_text(event.name, event.place_name, [str(n) for n in names])
    await event.save(update_fields=["search_text", "updated_at"])


async def _replace_distances(event: Event, wanted: list[Any]) -> None:
    """Make the event's distances ``wanted``; a distance with the same km keeps its row
    (and the goals on it)."""
    existing = await EventDistance.filter(event_id=event.id).order_by("id")
    kept: dict[float, EventDistance] = {}
    for distance in existing:
        kept.setdefault(distance.km, distance)
    wanted_km: dict[float, str] = {}
    for item in wanted:
        wanted_km.setdefault(item.km, item.label)
    for km, label in wanted_km.items():
        row = kept.get(km)
        if row is None:
            await EventDistance.create(event_id=event.id, km=km, label=label)
        elif row.label != label:
            row.label = label
            await row.save(update_fields=["label"])
    staying = {kept[km].id for km in wanted_km if km in kept}
    leaving = [d.id for d in existing if d.id not in staying]
    if leaving:
        await EventDistance.filter(id__in=leaving).delete()


async def create_event(data: EventIn) -> Event:
    async with in_transaction():
        if data.source_id and await Event.exists(source_id=data.source_id):
            raise ApiError(
                409, "event_exists", f"An event with source_id '{data.source_id}' exists."
            )
        try:
            event = await Event.create(
                source_id=data.source_id, **_columns(data, set(EventFields.model_fields))
            )
        except IntegrityError as error:
            raise ApiError(409, "event_exists", "An event with this source_id exists.") from error
        await _replace_distances(event, data.distances)
        for language, translation in data.translations.items():
            await EventTranslation.create(
                event_id=event.id,
                language=language,
                name=translation.name,
                description=translation.description,
            )
        await _reindex(event)
    return event


async def update_event(event_id: int, patch: EventPatch) -> Event:
    changes = patch.model_dump(exclude_unset=True)
    nulls = [k for k, v in changes.items() if v is None and k != "organiser_url"]
    if nulls:
        raise ApiError(400, "invalid_event", f"{nulls[0]} cannot be null.")
    async with in_transaction():
        event = await find_event(event_id)
        columns = _columns(patch, set(changes))
        if columns:
            await event.update_from_dict(columns).save(update_fields=[*columns, "updated_at"])
        if patch.distances is not None:
            await _replace_distances(event, patch.distances)
        await _reindex(event)
    return event


async def retire_event(event_id: int) -> None:
    """Take the event out of discovery; active goals on it move to history, cancelled."""
    async with in_transaction():
        event = await find_event(event_id)
        now = utcnow()
        event.retired_at = now
        await event.save(update_fields=["retired_at", "updated_at"])
        goals = await UserEvent.filter(event_id=event.id, status="active").prefetch_related("user")
        for goal in goals:
            await UserEvent.filter(id=goal.id, status="active").update(
                status="cancelled", ended_at=now
            )
            await _notify(cast(User, goal.user), f"{event.name} was cancelled.", goal.id)


async def upsert_translation(event_id: int, language: str, data: TranslationIn) -> bool:
    """``True`` when the translation is new."""
    try:
        language = canonical_language(language)
    except ValueError as error:
        raise ApiError(400, "invalid_language", f"'{language[:40]}' {error}.") from error
    async with in_transaction():
        event = await find_event(event_id)
        if language == event.default_language:
            await event.update_from_dict({"name": data.name, "description": data.description}).save(
                update_fields=["name", "description", "updated_at"]
            )
            created = False
        else:
            row, created = await EventTranslation.get_or_create(
                event_id=event.id,
                language=language,
                defaults={"name": data.name, "description": data.description},
            )
            if not created:
                row.name, row.description = data.name, data.description
                await row.save(update_fields=["name", "description"])
        await _reindex(event)
    return created


async def delete_translation(event_id: int, language: str) -> None:
    event = await find_event(event_id)
    try:
        language = canonical_language(language)
    except ValueError as error:
        raise ApiError(400, "invalid_language", f"'{language[:40]}' {error}.") from error
    async with in_transaction():
        deleted = await EventTranslation.filter(event_id=event.id, language=language).delete()
        if not deleted:
            raise ApiError(
                404, "translation_not_found", f"Event {event_id} has no '{language}' translation."
            )
        await _reindex(event)


# --- import and export -----------------------------------------------------------------


async def import_event(data: EventIn) -> str:
    """Create or update the event with ``data.source_id``: ``created``, ``updated`` or
    ``unchanged``. Running an import twice changes nothing the second time."""
    if not data.source_id:
        raise ValueError("source_id: required to import (imports are idempotent by it)")
    existing = await Event.get_or_none(source_id=data.source_id)
    if existing is None:
        await create_event(data)
        return "created"
    if existing.retired_at is None and await export_event(existing) == _exported(data):
        return "unchanged"
    async with in_transaction():
        fields = set(EventFields.model_fields)
        columns = _columns(data, fields)
        await existing.update_from_dict({**columns, "retired_at": None}).save()
        await _replace_distances(existing, data.distances)
        await (
            EventTranslation.filter(event_id=existing.id)
            .exclude(language__in=list(data.translations))
            .delete()
        )
        for language, translation in data.translations.items():
            await EventTranslation.update_or_create(
                event_id=existing.id,
                language=language,
                defaults={"name": translation.name, "description": translation.description},
            )
        await _reindex(existing)
    return "updated"


def _exported(data: EventIn) -> dict[str, Any]:
    dumped = data.model_dump(mode="json")
    seen: dict[float, dict[str, Any]] = {}
    for d in dumped["distances"]:
        seen.setdefault(d["km"], d)
    dumped["distances"] = sorted(seen.values(), key=lambda d: d["km"])
    return dumped


async def export_event(event: Event) -> dict[str, Any]:
    """The event as an import row (``EventIn``'s fields), so an export imports back."""
    distances = await EventDistance.filter(event_id=event.id).order_by("km", "id")
    translations = await EventTranslation.filter(event_id=event.id).order_by("language")
    return {
        "name": event.name,
        "description": event.description,
        "sport": event.sport,
        "distances": [{"km": d.km, "label": d.label} for d in distances],
        "date": event.date.isoformat(),
        "start_time": event.start_time,
        "timezone": event.timezone,
        "place": place_of(event),
        "organiser_url": event.organiser_url,
        "default_language": event.default_language,
        "source_id": event.source_id,
        "translations": {
            t.language: {"name": t.name, "description": t.description} for t in translations
        },
    }


async def export_catalogue(include_retired: bool) -> list[dict[str, Any]]:
    events = Event.all() if include_retired else Event.filter(retired_at=None)
    return [await export_event(event) for event in await events.order_by("date", "id")]


# --- for other families (the hooks this family defines) --------------------------------


async def candidates(
    sport: str, date_from: date, date_to: date, limit: int
) -> list[dict[str, Any]]:
    events = (
        await Event.filter(retired_at=None, sport=sport, date__gte=date_from, date__lte=date_to)
        .order_by("date", "id")
        .limit(limit)
    )
    distances = await _distances([e.id for e in events])
    return [
        {
            "id": e.id,
            "name": e.name,
            "date": e.date,
            "country": e.country,
            "lat": e.latitude,
            "lng": e.longitude,
            "distances": [distance_of(d) for d in distances[e.id]],
        }
        for e in events
    ]


# --- goals -----------------------------------------------------------------------------


async def _notify(user: User, body: str, goal_id: int) -> None:
    await current_platform().call_each(
        "send_push",
        user=user,
        push=PushMessage(
            title="Your goal changed",
            body=body,
            category="events",
            data={"user_event_id": str(goal_id)},
        ),
    )


async def set_goal(
    user: User,
    event_id: int,
    distance_id: int | None,
    target_time_seconds: int | None,
    source: str = "user",
) -> UserEvent:
    """Make the event the caller's active goal; the current one moves to history (replaced).

    The database allows one active goal per user (a partial unique index): of concurrent
    changes, one commits each round and the others start again on top of it, so the last
    one to commit is the active goal and no request fails for having raced another.
    """
    event = await find_event(event_id)
    if has_passed(event):
        raise ApiError(409, "event_passed", f"{event.name} took place on {event.date}.")
    distances = await EventDistance.filter(event_id=event.id).order_by("-km", "id")
    if distance_id is None:
        distance = distances[0] if distances else None
    else:
        distance = next((d for d in distances if d.id == distance_id), None)
        if distance is None:
            raise ApiError(
                404, "distance_not_found", f"Event {event_id} has no distance {distance_id}."
            )
    for attempt in range(GOAL_ATTEMPTS):
        try:
            async with in_transaction():
                now = utcnow()
                await UserEvent.filter(user_id=user.id, status="active").update(
                    status="replaced", ended_at=now
                )
                goal = await UserEvent.create(
                    user_id=user.id,
                    event_id=event.id,
                    distance_id=distance.id if distance else None,
                    target_time_seconds=target_time_seconds,
                    status="active",
                    source=source,
                )
                await _notify(user, f"Your goal is now {event.name}.", goal.id)
            return await goal_with_event(goal)
        except IntegrityError:
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
    raise ApiError(409, "goal_conflict", "Your goal is being changed by another request; retry.")


async def goal_with_event(goal: UserEvent) -> UserEvent:
    await goal.fetch_related("event", "distance")
    return goal


def goal_out(goal: UserEvent) -> dict[str, Any]:
    event: Event = goal.event
    distance: EventDistance | None = goal.distance
    return {
        "id": goal.id,
        "status": goal.status,
        "event": {
            "id": event.id,
            "name": event.name,
            "sport": event.sport,
            "date": event.date,
            "place": place_of(event),
        },
        "distance": distance_of(distance) if distance else None,
        "target_time_seconds": goal.target_time_seconds,
        "source": goal.source,
        "started_at": goal.started_at,
        "ended_at": goal.ended_at,
    }


async def complete_passed(user_id: int | None = None, now: datetime | None = None) -> int:
    """Move active goals whose event day has passed (on the event's calendar) to history
    as completed; how many. Run by the sweep and before every read of a user's goals."""
    now = now or utcnow()
    due = UserEvent.filter(status="active", event__date__lte=now.date() + timedelta(days=1))
    if user_id is not None:
        due = due.filter(user_id=user_id)
    completed = 0
    for goal in await due.prefetch_related("event"):
        if has_passed(goal.event, now):
            completed += await UserEvent.filter(id=goal.id, status="active").update(
                status="completed", ended_at=now
            )
    return completed


async def active_goal(user: User) -> UserEvent:
    await complete_passed(user.id)
    goal = await UserEvent.get_or_none(user_id=user.id, status="active")
    if goal is None:
        raise ApiError(404, "no_active_goal", "You have no active goal.")
    return await goal_with_event(goal)


async def abandon_goal(user: User) -> UserEvent:
    await complete_passed(user.id)
    async with in_transaction():
        goal = await UserEvent.get_or_none(user_id=user.id, status="active")
        if goal is None:
            raise ApiError(404, "no_active_goal", "You have no active goal.")
        now = utcnow()
        changed = await UserEvent.filter(id=goal.id, status="active").update(
            status="abandoned", ended_at=now
        )
        if not changed:
            raise ApiError(404, "no_active_goal", "You have no active goal.")
        goal.status, goal.ended_at = "abandoned", now
        await _notify(user, "You dropped your goal.", goal.id)
    return await goal_with_event(goal)


async def history(user: User, limit: int, before: int | None) -> dict[str, Any]:
    await complete_passed(user.id)
    goals = UserEvent.filter(user_id=user.id).exclude(status="active")
    if before is not None:
        goals = goals.filter(id__lt=before)
    page = await goals.order_by("-id").limit(limit + 1).prefetch_related("event", "distance")
    more = len(page) > limit
    page = page[:limit]
    return {
        "items": [goal_out(g) for g in page],
        "next_before": page[-1].id if more and page else None,
    }


async def sweep_forever(interval: float, counters: Any) -> None:
    while True:
        try:
            counters.completed += await complete_passed()
            counters.runs += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # a database blip: try again next time
            log.exception("the sweep of passed goals failed")
        await asyncio.sleep(interval)


# --- for the home family (its hooks, implemented in __init__.py) ----------------------


def days_to_go(event: Event, now: datetime | None = None) -> int:
    """Days from today to the event, on the calendar of the event's place (the calendar
    :func:`has_passed` uses): 0 on race day, and never negative while the goal is active."""
    local_today = (now or utcnow()).astimezone(ZoneInfo(event.timezone)).date()
    return (event.date - local_today).days


async def _current_goal(user: User) -> UserEvent | None:
    try:
        return await active_goal(user)
    except ApiError as error:
        if error.code != "no_active_goal":
            raise
        return None


async def home_part(user: User) -> dict[str, Any]:
    """The Home state's active goal (as ``GET /user_events/active`` shows it) and its days
    to go; both ``None`` without a goal, so the app can offer to set one."""
    goal = await _current_goal(user)
    if goal is None:
        return {"active_goal": {"goal": None, "days_to_go": None}}
    shown = UserEventOut.model_validate(goal_out(goal)).model_dump(mode="json")
    return {"active_goal": {"goal": shown, "days_to_go": days_to_go(goal.event)}}


async def countdown_section(user: User) -> dict[str, Any] | None:
    """The board's countdown to the active goal's event; ``None`` (no section) without one."""
    goal = await _current_goal(user)
    if goal is None:
        return None
    event: Event = goal.event
    distance: EventDistance | None = goal.distance
    days = days_to_go(event)
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    metrics: list[dict[str, Any]] = [{"label": "days to go", "value": days, "unit": "days"}]
    if distance is not None:
        metrics.append({"label": "distance", "value": distance.km, "unit": "km"})
    return {
        "summary": f"{event.name} is {when}",
        "metrics": metrics,
        "data": {"goal_id": goal.id, "event_id": event.id, "date": event.date.isoformat()},
    }


# --- accounts --------------------------------------------------------------------------


async def erase(user: User) -> None:
    await UserEvent.filter(user_id=user.id).delete()


async def export(user: User) -> Mapping[str, Any]:
    goals = (
        await UserEvent.filter(user_id=user.id).order_by("id").prefetch_related("event", "distance")
    )
    return {"user_events": [_json(goal_out(g)) for g in goals]}


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value
