"""The imperfect-api platform kernel: the one public API of route families.

Everything a family may use is importable from ``core`` itself, the way ``pytest`` stands
over ``_pytest`` and CKAN's ``plugins.toolkit`` states its promise: names listed in
``__all__`` below keep their meaning across minor versions of the platform, and changing
one is a breaking change of the platform. ``core.testing`` is public too, for tests.

Every other module (``core.app``, ``core.auth``, ``core.outbox``, ...) is core's own: a
family that imports one of them directly may break with any release, and CI refuses it
(the import contracts in ``pyproject.toml``). Families never import each other either;
they reach each other through hooks.
"""

from __future__ import annotations

from quart import Quart, current_app

from core import accounts
from core.accounts import DeletionState
from core.app import Runtime, create_app, service_version
from core.auth import Identity
from core.clients import ServiceClient, UpstreamStream, UpstreamStreamError
from core.endpoints import RequirementContext, RouteRequirement, endpoint
from core.errors import ApiError, ConfigError, ConflictError, StartupError
from core.families import USER_MODEL, Family, Stash, StashKey, User
from core.fields import WholeNumber, omittable, request_body
from core.hookspecs import PushMessage, ReadinessCheck, SourceEvent, hookimpl, hookspec
from core.offline import running
from core.openapi import SpecComponent
from core.outbox import (
    OutboxHandler,
    OutboxItem,
    PermanentFailure,
    enqueue,
    outbox_backlog,
    utcnow,
)
from core.plugins import LoadedPlugin, Platform, PluginInfo, Registry
from core.ratelimit import RateLimit
from core.routes import Readiness, readiness_report
from core.sse import EventStream, ServerSentEvent
from core.subscriptions import Subscription, handled_once, mark_handled, prune_handled
from core.vocabulary import Level, Sport, Units

__all__ = [
    "USER_MODEL",
    "ApiError",
    "ConfigError",
    "ConflictError",
    "DeletionState",
    "EventStream",
    "Family",
    "Identity",
    "Level",
    "LoadedPlugin",
    "OutboxHandler",
    "OutboxItem",
    "PermanentFailure",
    "Platform",
    "PluginInfo",
    "PushMessage",
    "RateLimit",
    "Readiness",
    "ReadinessCheck",
    "Registry",
    "RequirementContext",
    "RouteRequirement",
    "Runtime",
    "ServerSentEvent",
    "ServiceClient",
    "SourceEvent",
    "SpecComponent",
    "Sport",
    "StartupError",
    "Stash",
    "StashKey",
    "Subscription",
    "Units",
    "UpstreamStream",
    "UpstreamStreamError",
    "User",
    "WholeNumber",
    "account_deletion_state",
    "create_app",
    "current_platform",
    "current_runtime",
    "endpoint",
    "enqueue",
    "export_user_data",
    "handled_once",
    "hookimpl",
    "hookspec",
    "mark_handled",
    "omittable",
    "outbox_backlog",
    "prune_handled",
    "readiness_report",
    "request_account_deletion",
    "request_body",
    "running",
    "service_version",
    "utcnow",
]


def current_runtime(app: Quart | None = None) -> Runtime:
    """The :class:`Runtime` of ``app``, or of the app serving the current request."""
    return (app or current_app).extensions["imperfect"]


def current_platform(app: Quart | None = None) -> Platform:
    """The loaded families and core settings of ``app`` (default: the current app)."""
    return current_runtime(app).platform


async def request_account_deletion(identity: Identity) -> DeletionState:
    """Erase the caller in every enabled family, then their Firebase user (see
    :mod:`core.accounts`); returns the deletion's state: ``done``, or ``pending`` while a
    family cannot erase its part yet (core carries it on until it can)."""
    return await accounts.request_deletion(current_runtime(), identity)


async def account_deletion_state(identity: Identity) -> DeletionState | None:
    """The caller's deletion request, if they made one."""
    return await accounts.deletion_state(current_runtime(), identity)


async def export_user_data(user: User) -> dict[str, object]:
    """Every enabled family's ``account_export`` for ``user``: ``{"exported_at", "families"}``."""
    return await accounts.export_account(current_runtime(), user)
