"""The Home screen's state, activities, feedback and check-ins. No HTTP here.

What users write (feedback text, check-in text) goes to ``hare`` through its
``record_source_event`` hook, in the transaction that stores it: it is stored here first,
so nothing is lost while hare is down (hare's outbox delivers it later).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError as PydanticValidationError
from tortoise.transactions import in_transaction

from core import ApiError, LoadedPlugin, Platform, SourceEvent, User, utcnow
from plugins.home.hookspecs import NAME
from plugins.home.models import Board, BoardEvent, CheckIn, Feedback
from plugins.home.schemas import (
    Activity,
    ActivityFeedback,
    CheckInIn,
    CheckInOut,
    FeedbackIn,
    FeedbackOut,
    HomeState,
    SectionFeedback,
    Unavailable,
)

log = logging.getLogger("imperfect.home")

_PART_NAME = re.compile(NAME)
STREAK_DAYS = 366  # the longest streak counted: a year of check-ins


# --- GET /user_states/me -----------------------------------------------------------------


async def home_state(platform: Platform, user: User, timeout: float) -> HomeState:
    """Every family's parts at once, each within ``timeout``; the slow and the broken are
    reported, never waited for beyond their time."""
    impls = platform.impls("home_parts")

    async def part(plugin: LoadedPlugin, impl: Any) -> Mapping[str, Any]:
        async with asyncio.timeout(timeout):
            result = platform.call_one(plugin, impl, user=user)
            return await result if inspect.isawaitable(result) else result

    results = await asyncio.gather(*(part(p, i) for p, i in impls), return_exceptions=True)
    parts: dict[str, dict[str, Any]] = {}
    unavailable: list[Unavailable] = []
    for (plugin, _), result in zip(impls, results, strict=True):
        if isinstance(result, TimeoutError):
            log.warning("home part of %s took longer than %gs", plugin.name, timeout)
            unavailable.append(Unavailable(family=plugin.name, reason="timed_out"))
            continue
        if isinstance(result, BaseException) or not _valid_parts(result):
            log.warning("home part of %s failed: %r", plugin.name, result)
            unavailable.append(Unavailable(family=plugin.name, reason="failed"))
            continue
        for name, value in result.items():
            if name in parts:
                log.warning("home part %r of %s is already given; ignored", name, plugin.name)
                continue
            parts[name] = dict(value)
    return HomeState(parts=parts, unavailable=unavailable)


def _valid_parts(result: object) -> bool:
    return isinstance(result, Mapping) and all(
        isinstance(name, str) and _PART_NAME.match(name) and isinstance(value, Mapping)
        for name, value in result.items()
    )


def today_of(user: User, now: datetime | None = None) -> date:
    """The user's calendar day (UTC for a timezone we do not know)."""
    now = now or utcnow()
    try:
        return now.astimezone(ZoneInfo(user.timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return now.date()


async def own_parts(user: User) -> dict[str, Any]:
    """``home``'s own parts: the latest board and the check-in (pending today? streak)."""
    parts: dict[str, Any] = {}
    board = await Board.filter(user_id=user.id).order_by("-id").first()
    if board is not None:
        parts["latest_board"] = {
            "id": board.id,
            "status": board.status,
            "created_at": board.created_at.isoformat(),
            "narrative": board.narrative,
        }
    today = today_of(user)
    rows = await CheckIn.filter(
        user_id=user.id, day__gte=today - timedelta(days=STREAK_DAYS)
    ).values_list("day", flat=True)
    days: set[date] = set(rows)  # type: ignore[arg-type]
    streak, day = 0, today if today in days else today - timedelta(days=1)
    while day in days:
        streak, day = streak + 1, day - timedelta(days=1)
    parts["check_in"] = {
        "pending": today not in days,
        "streak_days": streak,
        "last_day": max(days).isoformat() if days else None,
    }
    return parts


async def check_in_section(user: User) -> dict[str, Any] | None:
    """The board section over the last 7 days of check-ins (none: no section)."""
    since = today_of(user) - timedelta(days=6)
    rows = await CheckIn.filter(user_id=user.id, day__gte=since).order_by("day", "id")
    if not rows:
        return None
    moods = [row.mood for row in rows]
    average = round(sum(moods) / len(moods), 1)
    trend = "steady"
    if len(moods) > 1 and moods[-1] != moods[0]:
        trend = "rising" if moods[-1] > moods[0] else "falling"
    return {
        "summary": f"{len(rows)} check-ins this week, mood {average} of 5 and {trend}",
        "metrics": [
            {"label": "check-ins", "value": len(rows)},
            {"label": "average mood", "value": average, "unit": "/5"},
        ],
        "data": {"days": sorted({row.day.isoformat() for row in rows})},
    }


# --- activities --------------------------------------------------------------------------


async def activity(platform: Platform, user: User, activity_id: str) -> Activity:
    impls = platform.impls("home_activity")
    if not impls:
        raise ApiError(
            503, "activities_unavailable", "No enabled family holds activities (health_providers)."
        )
    for plugin, impl in impls:
        result = platform.call_one(plugin, impl, user=user, activity_id=activity_id)
        found = await result if inspect.isawaitable(result) else result
        if found is None:
            continue
        try:
            return Activity.model_validate(found)
        except PydanticValidationError as error:
            log.warning("home_activity of %s returned an invalid activity: %s", plugin.name, error)
            raise ApiError(
                502, "upstream_invalid", "The activity came back in an unexpected shape."
            ) from error
    raise ApiError(404, "activity_not_found", f"You have no activity {activity_id}.")


# --- feedback and check-ins --------------------------------------------------------------


def _language(user: Any) -> str | None:
    locale = getattr(user, "locale", None)
    return locale if isinstance(locale, str) and locale else None


async def _to_hare(platform: Platform, user: User, event: SourceEvent) -> None:
    try:
        await platform.call_each("record_source_event", user=user, event=event)
    except ValueError as error:
        raise ApiError(400, "invalid_text", f"This text cannot be recorded: {error}") from error


def feedback_event(row: Feedback, language: str | None) -> SourceEvent:
    surface = "home_feedback:activity" if row.target == "activity" else "board_reply"
    reference = row.activity_id if row.target == "activity" else str(row.board_id)
    return SourceEvent(
        idempotency_key=f"home:feedback:{row.id}",
        surface=surface,
        text=row.text or "",
        written_at=row.written_at,
        reference_type="activity" if row.target == "activity" else "board",
        reference_id=reference or "",
        language=language,
    )


def check_in_event(row: CheckIn, language: str | None) -> SourceEvent:
    return SourceEvent(
        idempotency_key=f"home:check_in:{row.id}",
        surface="home_check_in",
        text=row.text or "",
        written_at=row.written_at,
        reference_type="check_in",
        reference_id=str(row.id),
        language=language,
    )


async def add_feedback(platform: Platform, user: User, body: FeedbackIn) -> Feedback:
    given = body.root
    if not isinstance(given, ActivityFeedback):
        board = await Board.get_or_none(id=given.board_id, user_id=user.id)
        if board is None:
            raise ApiError(404, "board_not_found", f"You have no board {given.board_id}.")
        if isinstance(given, SectionFeedback) and given.section not in {
            s["name"] for s in board.sections
        }:
            raise ApiError(
                404, "section_not_found", f"Board {board.id} has no section {given.section}."
            )
    async with in_transaction():
        row = await Feedback.create(user_id=user.id, written_at=utcnow(), **given.model_dump())
        if row.text:
            await _to_hare(platform, user, feedback_event(row, _language(user)))
    return row


async def add_check_in(platform: Platform, user: User, body: CheckInIn) -> CheckIn:
    now = utcnow()
    async with in_transaction():
        row = await CheckIn.create(
            user_id=user.id, day=today_of(user, now), written_at=now, **body.model_dump()
        )
        if row.text:
            await _to_hare(platform, user, check_in_event(row, _language(user)))
    return row


async def stored_events(
    since: datetime | None, user_id: int | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Feedback with text (cursor ``f:<id>``), then check-ins with text (``c:<id>``)."""
    kind, _, last = (after or "f:0").partition(":")
    page: list[dict[str, Any]] = []
    scope: dict[str, Any] = {"text__isnull": False}
    if since is not None:
        scope["written_at__gte"] = since
    if user_id is not None:
        scope["user_id"] = user_id
    if kind == "f":
        rows = (
            await Feedback.filter(id__gt=int(last or 0), **scope)
            .order_by("id")
            .limit(limit)
            .prefetch_related("user")
        )
        page += [
            {
                "user_id": r.user_id,
                "event": feedback_event(r, _language(r.user)),
                "cursor": f"f:{r.id}",
            }
            for r in rows
        ]
        last = "0"
    if len(page) < limit:
        check_ins = (
            await CheckIn.filter(id__gt=int(last or 0), **scope)
            .order_by("id")
            .limit(limit - len(page))
            .prefetch_related("user")
        )
        page += [
            {
                "user_id": r.user_id,
                "event": check_in_event(r, _language(r.user)),
                "cursor": f"c:{r.id}",
            }
            for r in check_ins
        ]
    return page


# --- the account -------------------------------------------------------------------------


async def erase(user: User) -> None:
    """Every row of the user's (a second run deletes nothing)."""
    await Feedback.filter(user_id=user.id).delete()
    await CheckIn.filter(user_id=user.id).delete()
    boards = await Board.filter(user_id=user.id).values_list("id", flat=True)
    await BoardEvent.filter(board_id__in=list(boards)).delete()
    await Board.filter(user_id=user.id).delete()


async def export(user: User) -> dict[str, Any]:
    boards = await Board.filter(user_id=user.id).order_by("id")
    feedback = await Feedback.filter(user_id=user.id).order_by("id")
    check_ins = await CheckIn.filter(user_id=user.id).order_by("id")
    return {
        "boards": [
            {
                "id": b.id,
                "status": b.status,
                "created_at": b.created_at.isoformat(),
                "sections": b.sections,
                "errors": b.errors,
                "narrative": b.narrative,
            }
            for b in boards
        ],
        "feedback": [
            FeedbackOut.model_validate(f, from_attributes=True).model_dump(mode="json")
            for f in feedback
        ],
        "check_ins": [
            CheckInOut.model_validate(c, from_attributes=True).model_dump(mode="json")
            for c in check_ins
        ],
    }
