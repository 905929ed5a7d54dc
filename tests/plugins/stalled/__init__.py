"""A test family with no routes whose ``startup`` fails."""

from __future__ import annotations

from core import PluginInfo, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Never starts.")


@hookimpl
async def startup() -> None:
    raise ConnectionError("queue broker unreachable")
