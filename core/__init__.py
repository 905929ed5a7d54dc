"""The imperfect-api platform kernel: plugin loading, the route contract, the spec.

Plugin authors need only what is exported here.
"""

from __future__ import annotations

from quart import current_app

from core.app import Runtime, create_app, service_version
from core.auth import Identity
from core.endpoints import endpoint
from core.errors import ApiError
from core.hookspecs import PushMessage, hookimpl, hookspec
from core.outbox import OutboxItem, PermanentFailure, enqueue
from core.plugins import LoadedPlugin, Platform, PluginInfo

__all__ = [
    "ApiError",
    "Identity",
    "LoadedPlugin",
    "OutboxItem",
    "PermanentFailure",
    "Platform",
    "PluginInfo",
    "PushMessage",
    "Runtime",
    "create_app",
    "current_platform",
    "current_runtime",
    "endpoint",
    "enqueue",
    "hookimpl",
    "hookspec",
    "service_version",
]


def current_runtime() -> Runtime:
    """The running app's :class:`Runtime` (inside a request or app context)."""
    return current_app.extensions["imperfect"]


def current_platform() -> Platform:
    """The running app's loaded plugins and core settings."""
    return current_runtime().platform
