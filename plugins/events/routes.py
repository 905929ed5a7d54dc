"""``/events`` (discovery, one event, admin edits) and ``/user_events`` (the caller's goal
and its history). Thin: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from core import User, endpoint
from plugins.events import service
from plugins.events.schemas import (
    FAMILY,
    EventIn,
    EventLanguageQuery,
    EventOut,
    EventPage,
    EventPatch,
    EventQuery,
    GoalHistoryPage,
    GoalHistoryQuery,
    TranslationIn,
    UserEventIn,
    UserEventOut,
)

blueprint = Blueprint("events", __name__)

# Public discovery: each client address has its own budget.
DISCOVERY_LIMITS = ("120/minute", "2000/hour")


async def _event_answer(event_id: int, lang: str | None, status: int = 200) -> Response:
    event = await service.find_event(event_id, include_retired=True)
    detail, served = await service.localised(
        event, lang, request.headers.get("Accept-Language", "")
    )
    body = EventOut.model_validate(detail).model_dump_json()
    return Response(
        body,
        status=status,
        content_type="application/json",
        headers={"Content-Language": served, "Vary": "Accept-Language"},
    )


# --- discovery -------------------------------------------------------------------------


@blueprint.get("/events")
@endpoint(
    query=EventQuery,
    response=EventPage,
    auth="public",
    rate_limits=DISCOVERY_LIMITS,
    rate_limit_by="ip",
)
async def list_events(query: EventQuery) -> dict[str, Any]:
    """Find events: text, sport, dates, distances, country and place, combined.

    Events come in `(date, id)` order, upcoming ones only unless `date_from` says
    otherwise; `next_cursor` continues after the last event of the page, so events added
    meanwhile never shift a page (none is skipped or repeated). A range that holds nothing
    (`date_to` before `date_from`, `distance_max_km` below `distance_min_km`) and a `q`
    without a letter or digit find no event.
    """
    return await service.discover(query, FAMILY.settings.default_radius_km)


@blueprint.get("/events/<int:event_id>")
@endpoint(
    query=EventLanguageQuery,
    response=EventOut,
    auth="public",
    rate_limits=DISCOVERY_LIMITS,
    rate_limit_by="ip",
    headers={
        "Content-Language": "The language tag of `name` and `description` (the body's "
        "`language`): the one asked for when the event has it, else the event's default.",
        "Vary": "`Accept-Language`: the body depends on it.",
    },
)
async def read_event(event_id: int, query: EventLanguageQuery) -> Response:
    """One event, in the language asked for (`lang`, else `Accept-Language`), else in its
    default language (`Content-Language` says which)."""
    event = await service.find_event(event_id)
    return await _event_answer(event.id, query.lang)


# --- admin -----------------------------------------------------------------------------


@blueprint.post("/events")
@endpoint(body=EventIn, response=EventOut, status=201, auth="admin", errors=(409,))
async def create_event(body: EventIn) -> Response:
    """Add an event to the catalogue (admins)."""
    event = await service.create_event(body)
    return await _event_answer(event.id, None, status=201)


@blueprint.patch("/events/<int:event_id>")
@endpoint(body=EventPatch, response=EventOut, auth="admin", errors=(400,))
async def update_event(event_id: int, body: EventPatch) -> Response:
    """Change an event (admins); only the fields sent change."""
    event = await service.update_event(event_id, body)
    return await _event_answer(event.id, None)


@blueprint.delete("/events/<int:event_id>")
@endpoint(status=204, auth="admin")
async def retire_event(event_id: int) -> None:
    """Retire an event (admins): it leaves discovery, and active goals on it move to
    history as cancelled (their users get a push)."""
    await service.retire_event(event_id)


@blueprint.put("/events/<int:event_id>/translations/<language>")
@endpoint(
    body=TranslationIn, response=EventOut, responses={201: EventOut}, auth="admin", errors=(400,)
)
async def put_translation(event_id: int, language: str, body: TranslationIn) -> Response:
    """Add or replace the event's name and description in one language (admins); 201 when
    the language is new. For the default language it changes the event's own text."""
    created = await service.upsert_translation(event_id, language, body)
    served = service.canonical_language(language)
    return await _event_answer(event_id, served, status=201 if created else 200)


@blueprint.delete("/events/<int:event_id>/translations/<language>")
@endpoint(status=204, auth="admin", errors=(400,))
async def delete_translation(event_id: int, language: str) -> None:
    """Remove one translation (admins)."""
    await service.delete_translation(event_id, language)


# --- the caller's goal -----------------------------------------------------------------


@blueprint.post("/user_events")
@endpoint(body=UserEventIn, response=UserEventOut, status=201, errors=(404, 409))
async def set_user_event(body: UserEventIn, user: User) -> dict[str, Any]:
    """Make an event the caller's active goal; the current one moves to history as
    replaced. The caller gets a push."""
    goal = await service.set_goal(user, body.event_id, body.distance_id, body.target_time_seconds)
    return service.goal_out(goal)


@blueprint.get("/user_events/active")
@endpoint(response=UserEventOut, errors=(404,))
async def read_active_user_event(user: User) -> dict[str, Any]:
    """The caller's active goal (404 when there is none)."""
    return service.goal_out(await service.active_goal(user))


@blueprint.delete("/user_events/active")
@endpoint(response=UserEventOut, errors=(404,))
async def abandon_user_event(user: User) -> dict[str, Any]:
    """Drop the caller's active goal: it moves to history as abandoned."""
    return service.goal_out(await service.abandon_goal(user))


@blueprint.get("/user_events/history")
@endpoint(query=GoalHistoryQuery, response=GoalHistoryPage)
async def list_user_event_history(query: GoalHistoryQuery, user: User) -> dict[str, Any]:
    """The caller's past goals, newest first (completed, abandoned, replaced, cancelled)."""
    return await service.history(user, query.limit, query.before)
