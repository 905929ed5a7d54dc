"""Hooks the ``public_routes`` family defines: how another family turns a request written in
natural language into a route plan.

``POST /routes/plan/request`` calls :func:`interpret_route_request` and routes what comes
back through the routing engine, like waypoints a user placed. The family that understands
language (``cheshire``) implements it without importing ``public_routes``: it returns a plain
mapping with the fields of :class:`RouteRequestPlan`. Mark the implementation
``@hookimpl(optionalhook=True)``: ``public_routes`` may be disabled, and then the hook is
never called. With no implementation the route answers ``503 planner_unavailable``.

What an implementation returns is input, not trusted: :class:`RouteRequestPlan` validates
it (2 to 25 waypoints each on the globe, bounded texts), and a plan that does not validate
ends the planning stream with a ``failed`` event (``plan_invalid``), storing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import LoadedPlugin, Platform, User, hookspec

MAX_WAYPOINTS = 25
MAX_ALTERNATIVES = 3  # each is one more call to the routing engine, and one more share
TITLE_MAX = 120
PARAPHRASE_MAX = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_text(value: Any, limit: int) -> Any:
    """A planner's text, as shown publicly: control characters and runs of blanks folded,
    trimmed, cut at ``limit`` characters; blank is ``None`` (never an empty string)."""
    if not isinstance(value, str):
        return value  # not a string: the field's type refuses it
    folded = " ".join(_CONTROL.sub(" ", value).split())
    if len(folded) > limit:
        folded = folded[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…"
    return folded or None


class PlannedWaypoint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)  # numbers, not "45.9"

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)


class PlannedRoute(BaseModel):
    """One route of a plan: the waypoints to route through, in order, and its title."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    title: str | None = None
    waypoints: list[PlannedWaypoint] = Field(min_length=2, max_length=MAX_WAYPOINTS)

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: Any) -> Any:
        return plain_text(value, TITLE_MAX)


class RouteRequestPlan(PlannedRoute):
    """What :func:`interpret_route_request` returns: the route that best fits the request,
    what the request was understood to ask for (``paraphrase``, shown on the share), and
    other routes that fit it too (``alternatives``, each stored as a sibling share; only the
    first :data:`MAX_ALTERNATIVES` are used)."""

    paraphrase: str | None = None
    alternatives: list[PlannedRoute] = Field(default_factory=list)

    @field_validator("paraphrase", mode="before")
    @classmethod
    def _paraphrase(cls, value: Any) -> Any:
        return plain_text(value, PARAPHRASE_MAX)

    @field_validator("alternatives", mode="before")
    @classmethod
    def _at_most(cls, value: Any) -> Any:
        return value[:MAX_ALTERNATIVES] if isinstance(value, list) else value


@hookspec
def interpret_route_request(
    plugin: LoadedPlugin,
    platform: Platform,
    user: User,
    request_text: str,
    locale: str,
    near: Mapping[str, float] | None,
) -> RouteRequestPlan | Mapping[str, Any] | None:
    """Turn ``request_text`` ("a flat 10 km loop by the lake") into waypoints to route.

    Runs: on each ``POST /routes/plan/request``, after the ``accepted`` step of its stream;
    ``public_routes`` asks each implementation in turn and takes the first answer that is
    not ``None``, each within ``public_routes``' ``planner_timeout_seconds``.
    Gets: ``plugin``, ``platform``, ``user`` (:class:`core.User`, the signed-in planner),
    ``request_text`` (1 to 500 characters, as the user wrote them: untrusted),
    ``locale`` (``en``, ``fr``, ``de`` or ``es``: the language of the paraphrase and the
    titles), ``near`` (``{"lat", "lng"}`` where the route should be, or ``None``).
    Returns: a :class:`RouteRequestPlan` or a mapping of its fields: ``waypoints`` (2 to 25
    ``{"lat", "lng"}``), optional ``title``, ``paraphrase`` and ``alternatives`` (each
    ``{"title", "waypoints"}``); or ``None`` when this family cannot interpret requests
    right now. To refuse the request or report its service down, raise
    :class:`core.ApiError`: its ``code`` reaches the client in the ``failed`` event, with
    its ``detail`` (written for the user) unless the code is ``upstream_unavailable``,
    ``upstream_timeout`` or ``upstream_invalid``, which get ``public_routes``' own words.
    Any other exception, or a time-out, is ``failed`` too; nothing is stored.
    May be async: yes.
    """
