"""The plugin contract: every hook a route family may implement.

A plugin is a module (or any object) whose functions are marked with
``@hookimpl``. Core calls each hook **once per plugin**, passing that plugin's
own :class:`~core.plugins.LoadedPlugin` as ``plugin`` (its name, validated
settings and a ``state`` namespace for clients it creates at start-up) and the
shared :class:`~core.plugins.Platform` as ``platform``. As with pytest, an
implementation may accept any subset of a hook's arguments, so arguments can be
added to a hook later without breaking existing plugins.

Any hook may be ``async def`` (or return an awaitable): core awaits it. A hook
that raises while the app is built or started is attributed to its plugin,
which is then aborted or skipped according to its ``on_failure`` setting.

Plugins may define hooks of their own for other plugins to implement (that is
how ``health_providers`` takes new providers and ``home`` new board sections):
implement :func:`add_hookspecs` and call ``pm.add_hookspecs(module)``. An
implementation of a hook owned by a plugin that may be disabled is marked
``@hookimpl(optionalhook=True)``; any other implementation of an unknown hook
is a start-up error (``pm.check_pending()``), so a misspelt hook never becomes
a silent no-op.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel
    from quart import Blueprint, Quart

    from core.auth import Identity
    from core.outbox import OutboxHandler
    from core.plugins import LoadedPlugin, Platform

PROJECT = "imperfect"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

ReadinessCheck = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class PushMessage:
    """A push notification one family asks another to deliver (see :func:`send_push`)."""

    title: str
    body: str
    category: str
    data: Mapping[str, str] = field(default_factory=dict)


@hookspec
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    """Add hook specifications that other plugins may implement.

    Runs right after the plugin is registered, before any other hook and before
    ``pm.check_pending()``. Call ``pm.add_hookspecs(module_or_class)``.
    Plugins that implement those hooks should declare the owner in
    ``requires`` or mark their implementations ``optionalhook=True``.
    """


@hookspec
def settings_model() -> type[BaseModel] | None:
    """Return the pydantic model that validates ``[plugins.<name>.settings]``.

    Runs once while plugins load, before start-up. Unknown keys, wrong types
    and missing secrets are errors naming the plugin and the key, so the model
    should forbid extra keys (core enforces ``extra="forbid"`` either way).
    Declare secrets as :class:`pydantic.SecretStr` so they are never printed.
    Return ``None`` (or do not implement the hook) for a plugin without
    settings; a settings table given to such a plugin is an error.
    """


@hookspec
def blueprints(plugin: LoadedPlugin, platform: Platform) -> Iterable[Blueprint]:
    """Return the Quart blueprints this plugin serves.

    Runs once in ``create_app``, after settings are validated. Handlers are
    declared with :func:`core.endpoints.endpoint`, which feeds validation and
    the OpenAPI document from one declaration. A method + URL rule that another
    plugin (or core) already serves is a start-up error naming both plugins.
    """


@hookspec
def model_modules(plugin: LoadedPlugin) -> Iterable[str]:
    """Return dotted paths of modules holding this plugin's Tortoise models.

    Runs once in ``create_app``. The plugin becomes one Tortoise app labelled
    with its name; its migrations live in the ``migrations`` package next to
    the first module returned (``plugins.users.models`` ->
    ``plugins.users.migrations``). A table name another plugin already uses is
    a start-up error naming both plugins. Models of other plugins are reached
    as ``"<plugin>.<Model>"`` in relations, and only for declared ``requires``.
    """


@hookspec
def spec_fragments(plugin: LoadedPlugin) -> Mapping[str, Any] | None:
    """Return a static OpenAPI fragment to merge into the document.

    Runs once when the document is built (at start-up). Recognised keys:
    ``tags`` (a list of tag objects), ``components`` (by section: ``schemas``,
    ``securitySchemes``, ...), ``paths`` (for operations not declared with
    ``@endpoint``, documenting a route declared with
    ``@endpoint(include_in_schema=False)``). A component name that
    another plugin defines with different content is a start-up error naming
    both plugins; identical content is shared.
    """


@hookspec
def outbox_handlers(plugin: LoadedPlugin, platform: Platform) -> Mapping[str, OutboxHandler]:
    """Return this plugin's outbox handlers, by message kind.

    Runs once in ``create_app`` (must be synchronous). A family queues a side effect with
    ``await core.enqueue(kind, payload)`` inside the transaction of the change that causes
    it; after the commit, core's dispatcher calls ``await handler(item)`` with a
    :class:`core.outbox.OutboxItem` (``id``, ``kind``, ``payload``, ``attempt``, ``final``),
    outside any request and transaction, with half of ``IMPERFECT_OUTBOX_LEASE`` as its time
    limit. Returning marks the message done. Raising
    :class:`core.outbox.PermanentFailure` marks it dead at once; any other exception retries
    it later with exponential backoff, until ``IMPERFECT_OUTBOX_MAX_ATTEMPTS`` (``final``
    tells the handler that this attempt is the last). Delivery is at least once, so a
    handler should check whether its work is already done. Name kinds
    ``"<plugin>.<what>"``; a kind two plugins return is a start-up error naming both.
    Messages of a kind no enabled plugin handles wait in the outbox. Handlers read
    run-time state from ``plugin.state`` when called, not when returned.
    """


@hookspec
def startup(plugin: LoadedPlugin, platform: Platform, app: Quart) -> None:
    """Prepare run-time resources (HTTP clients, subscribers, caches).

    Runs once before the app serves its first request, after the database is
    initialised and migrations are checked, in dependency order (a plugin
    starts after the plugins it requires). Store what you create on
    ``plugin.state``. May be async.
    """


@hookspec
def shutdown(plugin: LoadedPlugin, platform: Platform, app: Quart) -> None:
    """Release what :func:`startup` created.

    Runs once after the app stops serving, in reverse dependency order, and
    also when start-up failed after this plugin started. May be async. Errors
    are logged, never raised, so every plugin gets its turn.
    """


@hookspec
def readiness_checks(plugin: LoadedPlugin, platform: Platform) -> Mapping[str, ReadinessCheck]:
    """Return named async checks that ``GET /readyz`` runs for this plugin.

    Runs once at start-up to collect the checks; each check then runs on every
    ``/readyz`` call with a time limit. A check passes by returning and fails
    by raising; the exception's message is reported (keep it free of secrets).
    A passing check may return a short string saying how it passed (for example
    ``"disabled: no REDIS_URL"``), reported as ``detail``.
    """


@hookspec
def cli_commands(plugin: LoadedPlugin, platform: Platform) -> Iterable[click.Command]:
    """Return click commands to add to the ``imperfect`` CLI.

    Runs when the CLI starts, after plugins load (no app, no database). A
    command name another plugin or core already uses is an error naming both.
    """


@hookspec(firstresult=True)
def resolve_user(identity: Identity, platform: Platform) -> Any:
    """Turn a verified Firebase identity into the caller's local user object.

    Runs on each request whose handler takes a ``user`` parameter, after the
    ID token is verified. The first non-``None`` result is passed as ``user``;
    when no plugin resolves it, ``user`` is the :class:`~core.auth.Identity`
    itself. Raise
    :class:`core.errors.ApiError` to refuse the caller (for example 403 when
    no local record exists yet). May be async.
    """


@hookspec
def account_deleted(plugin: LoadedPlugin, platform: Platform, user: Any) -> None:
    """Erase every row this plugin holds for ``user`` (right to be forgotten).

    Runs when the caller deletes their account, in reverse dependency order,
    before the Firebase user is deleted. Must be idempotent: it may run again
    for the same user after a partial failure. May be async.
    """


@hookspec
def account_export(plugin: LoadedPlugin, platform: Platform, user: Any) -> Mapping[str, Any] | None:
    """Return everything this plugin holds for ``user`` as JSON-ready data.

    Runs when the caller asks for an export; the result is stored under the
    plugin's name in one document. Return ``None`` when the plugin holds
    nothing for users. May be async.
    """


@hookspec
def send_push(plugin: LoadedPlugin, platform: Platform, user: Any, push: PushMessage) -> None:
    """Deliver ``push`` to every registered device of ``user`` (a local user object).

    Implemented by the family that owns devices and push tokens (``users``);
    any family calls it, never importing that family:
    ``await platform.call_each("send_push", user=user, push=PushMessage(...))``.
    With no notifier enabled the call does nothing. Call it inside the
    transaction whose change causes the push: implementations only queue the
    message in the outbox of that transaction, so the push is sent once if and
    only if the change commits, and retried while the push service is down.
    May be async.
    """
