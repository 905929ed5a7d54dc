"""A test family whose hook implementation takes an argument the hook does not have."""

from __future__ import annotations

from core import PluginInfo, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Misnames an argument.")


@hookimpl
def startup(plugn: object) -> None:  # the hook's argument is ``plugin``
    raise AssertionError("never registered")
