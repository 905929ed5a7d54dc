"""A test family with a ``shutdown`` hook and no ``startup``: it must still be closed."""

from __future__ import annotations

from core import PluginInfo, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Records that it was shut down.")

CLOSED: list[str] = []


@hookimpl
async def shutdown() -> None:
    CLOSED.append("closed")
