"""Hooks the ``home`` family defines: how other families fill the Home screen and boards.

Three hooks, each optional for the implementer (mark it ``@hookimpl(optionalhook=True)``:
``home`` may be disabled, and then the hook is simply never called):

- :func:`home_parts`: a family's part of ``GET /user_states/me`` (the active goal, the
  connection summary, ...), asked for on every read, each family with its own time limit.
- :func:`board_sections` names the board sections a family contributes (a registry,
  collected once when the app is built) and :func:`board_section` computes one of them for
  a user while a board is generated, each section on its own and with its own time limit.
- :func:`home_activity`: one activity of the user, for ``GET /user_states/me/activities/{id}``.

Parts and sections are plain JSON mappings, so an implementer need not import ``home``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core import LoadedPlugin, Platform, User, hookspec

NAME = r"^[a-z][a-z0-9_]{1,39}$"


class SectionSpec(BaseModel):
    """One board section a family contributes: its name (unique over all families), the
    title the app shows, and where it goes on the board (lower ``order`` first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    title: str = Field(min_length=1, max_length=80)
    order: int = Field(100, ge=0, le=1000)


@hookspec
def home_parts(plugin: LoadedPlugin, platform: Platform, user: User) -> Mapping[str, Any]:
    """Return this family's parts of the caller's Home screen.

    Runs: on every ``GET /user_states/me``, for every family that implements it, all at once;
    each implementation within ``home``'s ``part_timeout_seconds``.
    Gets: ``plugin``, ``platform``, ``user`` (the caller).
    Returns: a mapping of part name (``^[a-z][a-z0-9_]{1,39}$``) to a JSON object, for
    example ``{"active_goal": {...}}``; an empty mapping when the family has nothing to show
    for this user. An implementation that raises, runs out of time or returns something
    else is listed under ``unavailable`` with the family's name; the other parts arrive.
    A part name another family also returned is kept from the first family (in dependency
    order) and logged.
    May be async: yes.
    """


@hookspec
def board_sections(plugin: LoadedPlugin) -> Iterable[SectionSpec | Mapping[str, Any]]:
    """Name the board sections this family computes (:class:`SectionSpec` or its fields).

    Runs: once, when the app is built (``home`` gathers the registry with
    ``Platform.collect`` in its ``blueprints`` hook).
    Gets: ``plugin``.
    Returns: the sections. An invalid one, or an implementation that raises, is the
    contributing family's failure (by its ``on_failure``); a name another family already
    contributes stops start-up naming both.
    May be async: no.
    """


@hookspec
def board_section(
    plugin: LoadedPlugin, platform: Platform, user: User, name: str
) -> Mapping[str, Any] | None:
    """Compute section ``name`` (one this family named in :func:`board_sections`) for ``user``.

    Runs: while a board is generated, once per section, every section at the same time;
    each within ``home``'s ``section_timeout_seconds``.
    Gets: ``plugin``, ``platform``, ``user``, ``name``.
    Returns: ``{"summary": str, "metrics": [{"label", "value", "unit"}], "data": {...}}``
    (``metrics`` and ``data`` optional; ``summary`` is one or two sentences the narrative
    writer reads), or ``None`` when the section has nothing to say for this user (it is then
    left off the board). Raising, running out of time or returning something else gives the
    board an ``error`` event for the section; the others still arrive.
    May be async: yes.
    """


@hookspec
def home_activity(
    plugin: LoadedPlugin, platform: Platform, user: User, activity_id: str
) -> Mapping[str, Any] | None:
    """Return one activity of ``user``, or ``None`` when this family does not know it.

    Runs: on ``GET /user_states/me/activities/{activity_id}``; ``home`` asks each
    implementation in turn and takes the first mapping.
    Gets: ``plugin``, ``platform``, ``user``, ``activity_id`` (as the client sent it).
    Returns: the fields of ``home``'s ``Activity`` (``id``, ``provider``, ``sport``,
    ``start_time``, ``duration_s`` required), or ``None``. An outside service that is down
    or slow is raised as :class:`core.ApiError` (502/504), which the route answers as is.
    May be async: yes.
    """
