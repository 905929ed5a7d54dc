"""A test family whose import fails: it needs a package that is not installed."""

from __future__ import annotations

import imperfect_no_such_dependency  # noqa: F401

from core import PluginInfo

PLUGIN = PluginInfo(version="1.0.0")
