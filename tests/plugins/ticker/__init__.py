"""A test family with a Server-Sent Events route whose pace the test controls."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl
from tests.plugins.ticker.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="Streams ticks, held until released.")


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]
