"""A test family whose ``settings_model`` hook itself raises."""

from __future__ import annotations

from core import PluginInfo, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Cannot even say what its settings are.")


@hookimpl
def settings_model() -> None:
    raise RuntimeError("settings model exploded")
