"""Hooks the ``onboarding`` family defines for other families."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core import LoadedPlugin, Platform, User, hookspec


@hookspec
def athlete_profile_filled(
    plugin: LoadedPlugin, platform: Platform, user: User, profile: Mapping[str, Any]
) -> None:
    """Store the athlete profile a user's completed intake describes.

    Runs: once per completed intake, inside the transaction that completes it (so a
    failure rolls the completion back), in a request.
    Gets: ``plugin``, ``platform``, ``user`` (:class:`core.User`) and ``profile``: a
    mapping with ``sport`` and ``level`` (values of :data:`core.Sport` and
    :data:`core.Level`), ``weekly_hours`` (a float, or absent) and ``goals`` (a list of short
    sentences, possibly empty).
    Returns: nothing. The ``users`` family creates the user's profile for that sport, or
    updates it. Implement it ``@hookimpl(optionalhook=True)``: ``onboarding`` may be
    disabled.
    May be async: yes.
    """
