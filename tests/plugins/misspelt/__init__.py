"""A test family that implements ``blueprint`` where the hook is ``blueprints``."""

from __future__ import annotations

from core import PluginInfo, hookimpl

PLUGIN = PluginInfo(version="1.0.0")


@hookimpl
def blueprint() -> list[object]:
    return []
