"""A test family whose routes are rate limited: per user, per client IP and per route.

Each handler counts its calls in ``CALLS`` so tests can tell that a refused request never
reached it.
"""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl
from tests.plugins.throttled.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="Routes with rate limits.")


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]
