"""Hooks the ``events`` family defines, so other families reach the catalogue and users'
goals without importing it (``onboarding`` recommends races and sets the accepted one).

``events`` implements both itself. A caller lists ``events`` in ``requires`` (then the hooks
always have their implementation) or treats an empty ``call_each`` answer as "no events".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from core import LoadedPlugin, Platform, User, hookspec


@hookspec
def event_candidates(
    plugin: LoadedPlugin,
    platform: Platform,
    sport: str,
    date_from: date,
    date_to: date,
    limit: int,
) -> Iterable[Mapping[str, Any]]:
    """Return catalogue events a user could enter, for ranking.

    Runs: when a family calls ``await platform.call_each("event_candidates", ...)``, in a
    request.
    Gets: ``plugin``, ``platform``; ``sport`` (a ``Sport`` value such as ``"running"``),
    ``date_from`` and ``date_to`` (the days the event may fall on, both included) and
    ``limit`` (the most events to return).
    Returns: at most ``limit`` mappings, in ``(date, id)`` order, each with ``id``,
    ``name``, ``date`` (a :class:`datetime.date`), ``country``, ``lat``, ``lng`` and
    ``distances`` (a list of ``{"id", "km", "label"}``). Retired events are left out.
    May be async: yes.
    """


@hookspec
def set_active_goal(
    plugin: LoadedPlugin,
    platform: Platform,
    user: User,
    event_id: int,
    distance_id: int | None,
    target_time_seconds: int | None,
    source: str,
) -> Mapping[str, Any]:
    """Make an event ``user``'s active goal, as ``POST /user_events`` does.

    Runs: when a family calls ``await platform.call_each("set_active_goal", ...)``, in a
    request; ``events`` answers it.
    Gets: ``plugin``, ``platform``, ``user`` (:class:`core.User`), ``event_id``,
    ``distance_id`` (one of the event's distances, or ``None`` for its longest),
    ``target_time_seconds`` (or ``None``) and ``source`` (who set it, such as
    ``"onboarding"``; at most 20 characters).
    Returns: the new goal as ``GET /user_events/active`` shows it (``id``, ``status``,
    ``event``, ``distance``, ...). The previous active goal moves to history as
    ``replaced`` and the user is sent a push. Raises :class:`core.ApiError` as the route
    would: ``404 event_not_found`` / ``distance_not_found``, ``409 event_passed``.
    May be async: yes.
    """
