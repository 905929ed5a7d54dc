"""Hooks the noticeboard family defines."""

from __future__ import annotations

from core import LoadedPlugin, hookspec


@hookspec
def notices(plugin: LoadedPlugin) -> list[str]:
    """Return notices to show on the board. Runs on every ``GET /notices``; may be async."""
