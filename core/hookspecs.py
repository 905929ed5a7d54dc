"""The plugin contract: every hook a route family may implement.

A family is a module whose functions are marked ``@hookimpl``. Core calls each hook
**once per family**, itself (not through pluggy's relay), in dependency order, passing the
family its own :class:`~core.plugins.LoadedPlugin` as ``plugin`` (name, validated
``settings``, and ``stash``, its typed run-time state) and the shared
:class:`~core.plugins.Platform` as ``platform``. As with pytest, an implementation may take
any subset of a hook's arguments, by name, so arguments can be added to a hook later
without breaking anyone; an argument the hook does not have is a start-up error.

Each hook below says when it runs, what it gets, what it returns and whether it may be
``async def`` (core awaits those). The hooks that run while the app is built are
synchronous (:data:`SYNCHRONOUS`); an ``async`` implementation of one is a start-up error
naming the family. A hook that raises while the app is built or started is attributed to
its family, which then stops start-up or is left out, by its ``on_failure``; a conflict
between families is always fatal.

Families define hooks of their own for others (``health_providers`` takes providers this
way): implement :func:`add_hookspecs`. An implementation of a hook owned by a family that
may be disabled is marked ``@hookimpl(optionalhook=True)``; any other implementation of an
unknown hook is a start-up error (``pm.check_pending()``), so a misspelt hook is never a
silent no-op. ``tests/test_hook_contract.py`` checks that this module, ``docs/plugins.md``
and the code agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel
    from quart import Blueprint, Quart

    from core.auth import Identity
    from core.endpoints import RouteRequirement
    from core.families import User
    from core.outbox import OutboxHandler
    from core.plugins import LoadedPlugin, Platform

PROJECT = "imperfect"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

ReadinessCheck = Callable[[], Awaitable[str | None]]

SYNCHRONOUS = frozenset(
    {
        "add_hookspecs",
        "settings_model",
        "blueprints",
        "model_modules",
        "spec_fragments",
        "outbox_handlers",
        "route_requirements",
        "cli_commands",
    }
)
"""Hooks core calls while it builds the app or the CLI: they must not be ``async``."""


@dataclass(frozen=True)
class PushMessage:
    """A push notification one family asks another to deliver (see :func:`send_push`)."""

    title: str
    body: str
    category: str
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceEvent:
    """A message a user wrote (an intake answer, a board reply, a chat message), for the
    ``hare`` family to log: ``await platform.call_each("record_source_event", user=user,
    event=SourceEvent(...))`` inside the transaction of the change that carries it.

    ``idempotency_key`` is the writing family's own, stable name for this message
    (``"<family>:<object>:<id>"``): recording or replaying it again never duplicates it.
    ``surface`` says where it was written (``intake``, ``board_reply``, ``channel:whatsapp``,
    ...), ``written_at`` when (timezone-aware), ``reference_type`` and ``reference_id`` the
    object it belongs to. The rules it must follow are in ``plugins/hare/hookspecs.py``.
    """

    idempotency_key: str
    surface: str
    text: str
    written_at: datetime
    reference_type: str
    reference_id: str
    language: str | None = None


@hookspec
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    """Add hook specifications that other families may implement.

    Runs: right after the family is registered, before any other of its hooks and before
    ``pm.check_pending()``.
    Gets: ``pm``, the platform's pluggy plugin manager.
    Returns: nothing; call ``pm.add_hookspecs(module)`` with the family's ``hookspecs``.
    May be async: no.
    """


@hookspec
def settings_model() -> type[BaseModel] | None:
    """Name the pydantic model that validates ``[plugins.<name>.settings]``.

    Runs: once while families load, before the app is built.
    Gets: nothing.
    Returns: the model, or ``None`` for a family without settings (a settings table given
    to it is then an error). Core adds ``extra="forbid"``; unknown keys, wrong types and
    missing secrets are errors naming the family and the key. Declare secrets as
    :class:`pydantic.SecretStr`.
    May be async: no.
    """


@hookspec
def blueprints(plugin: LoadedPlugin, platform: Platform) -> Iterable[Blueprint]:
    """Return the Quart blueprints this family serves.

    Runs: once in ``create_app``, after settings are validated.
    Gets: ``plugin``, ``platform``.
    Returns: blueprints whose handlers are declared with :func:`core.endpoint`. A method +
    URL rule another family (or core) serves is a start-up error naming both.
    May be async: no.
    """


@hookspec
def model_modules(plugin: LoadedPlugin) -> Iterable[str]:
    """Return the dotted names of the modules holding this family's Tortoise models.

    Runs: once in ``create_app``.
    Gets: ``plugin``.
    Returns: module names; the family becomes one Tortoise app labelled with its name, its
    migrations in the ``migrations`` package next to the first module. A table another
    family uses is a start-up error naming both. Point at the user table with
    :data:`core.USER_MODEL`, at another family's model with ``"<family>.<Model>"`` (and
    list that family in ``requires``).
    May be async: no.
    """


@hookspec
def spec_fragments(plugin: LoadedPlugin) -> Mapping[str, Any] | None:
    """Return a static OpenAPI fragment to merge into the document.

    Runs: once in ``create_app``, when the document is built.
    Gets: ``plugin``.
    Returns: a mapping with ``tags``, ``components`` (``schemas``, ``securitySchemes``,
    ``parameters``, ``responses``, ``examples``, ``headers``) and ``paths`` (operations no
    ``@endpoint`` documents), or ``None``. The same component name with other content from
    another family is a start-up error naming both; core's tags and security schemes
    cannot be redefined.
    May be async: no.
    """


@hookspec
def outbox_handlers(plugin: LoadedPlugin, platform: Platform) -> Mapping[str, OutboxHandler]:
    """Return this family's outbox handlers, by message kind.

    Runs: once in ``create_app``.
    Gets: ``plugin``, ``platform``.
    Returns: ``{"<family>.<what>": async handler}``. A family queues a side effect with
    ``await core.enqueue(kind, payload)`` inside the transaction of the change causing
    it; after the commit, core's dispatcher calls ``await handler(item)`` with a
    :class:`core.OutboxItem` (``id``, ``kind``, ``payload``, ``attempt``, ``final``),
    outside any request and transaction, with half of ``IMPERFECT_OUTBOX_LEASE`` as its
    time limit. Returning marks it done; :class:`core.PermanentFailure` marks it dead at
    once; any other exception retries it with exponential backoff until
    ``IMPERFECT_OUTBOX_MAX_ATTEMPTS``. Delivery is at least once: check whether the work
    is done already. A kind two families return is a start-up error naming both.
    May be async: no (the handlers it returns are async).
    """


@hookspec
def route_requirements(plugin: LoadedPlugin, platform: Platform) -> Iterable[RouteRequirement]:
    """Return the per-route requirements this family defines for any family's routes.

    Runs: once in ``create_app``.
    Gets: ``plugin``, ``platform``.
    Returns: :class:`core.RouteRequirement` objects. A route declares one by name,
    ``@endpoint(requires=("<name>",))``; core runs its ``check`` in the request pipeline
    after authentication and before the handler, and documents it in the spec (its
    ``security_scheme`` and ``errors``). A name another family defines too is a start-up
    error naming both; a route requiring a name no enabled family defines stops start-up
    (it fails closed), so the declaring family lists the defining one in ``requires``.
    May be async: no.
    """


@hookspec
def cli_commands(plugin: LoadedPlugin, platform: Platform) -> Iterable[click.Command]:
    """Return click commands to add to the ``imperfect`` CLI.

    Runs: when the CLI starts, after families load (no app, no database).
    Gets: ``plugin``, ``platform``.
    Returns: click commands. A name another family or core uses is an error naming both.
    May be async: no.
    """


@hookspec
def startup(plugin: LoadedPlugin, platform: Platform, app: Quart) -> None:
    """Prepare run-time resources (HTTP clients, subscribers, caches).

    Runs: once before the app serves its first request, after the database is initialised
    and migrations are checked, in dependency order (after the families it requires).
    Gets: ``plugin``, ``platform``, ``app``.
    Returns: nothing; keep what it creates in ``plugin.stash`` under a
    :class:`core.StashKey`.
    May be async: yes.
    """


@hookspec
def shutdown(plugin: LoadedPlugin, platform: Platform, app: Quart) -> None:
    """Release what :func:`startup` created.

    Runs: once after the app stops serving, in reverse dependency order, and also when
    start-up failed after this family started.
    Gets: ``plugin``, ``platform``, ``app``.
    Returns: nothing; errors are logged, never raised, so every family gets its turn.
    May be async: yes.
    """


@hookspec
def readiness_checks(plugin: LoadedPlugin, platform: Platform) -> Mapping[str, ReadinessCheck]:
    """Return named checks that ``GET /readyz`` runs for this family.

    Runs: once at start-up, right after the family's ``startup``; each check then runs on
    every ``/readyz`` call within ``IMPERFECT_READINESS_TIMEOUT``.
    Gets: ``plugin``, ``platform``.
    Returns: ``{"name": async check}``; a check passes by returning (optionally a short
    string shown as ``detail``) and fails by raising. A failing check never fails
    readiness: the family is reported ``degraded`` (``/readyz`` stays 200; only the
    database, its migrations and token verification make it 503), and each route that
    needs what failed answers 502/503/504 on its own, naming it. The public body shows a
    failure as a short phrase: a ``RuntimeError``'s message with URLs, hosts, ports and
    paths removed (write it for the public: no secrets), a timeout as ``timed out``, a
    :class:`core.ApiError` from ``ServiceClient`` as ``unreachable`` / ``timed out`` /
    ``refused: HTTP 503``, any other exception by its type; the raw error only in detail
    mode (a token with the admin claim, or ``IMPERFECT_READINESS_DETAIL=1``).
    May be async: yes.
    """


@hookspec(firstresult=True)
def resolve_user(identity: Identity, platform: Platform) -> User | None:
    """Turn a verified Firebase identity into the caller's local user.

    Runs: on each request whose handler takes ``user``, after the ID token is verified;
    also when core erases an account.
    Gets: ``identity`` (:class:`core.Identity`), ``platform``.
    Returns: a :class:`core.User`, or ``None`` to let another family answer; the first
    answer wins (families asked in dependency order). With no answer, ``user`` is the
    ``Identity`` itself. Raise :class:`core.ApiError` to refuse the caller (403 while no
    local record exists). Implemented by the family that stores users (``users``).
    May be async: yes.
    """


@hookspec
def account_deleted(plugin: LoadedPlugin, platform: Platform, user: User) -> None:
    """Erase every row this family holds for ``user`` (the right to be forgotten).

    Runs: when the user deletes their account (``DELETE /account``); core calls every
    family in reverse dependency order (the user record's family last), then deletes the
    Firebase user. A family that raises leaves the deletion pending: core retries it later
    with backoff and never asks again a family that succeeded.
    Gets: ``plugin``, ``platform``, ``user`` (:class:`core.User`).
    Returns: nothing. Must be idempotent: a crash can make it run again for the same user.
    May be async: yes.
    """


@hookspec
def account_export(
    plugin: LoadedPlugin, platform: Platform, user: User
) -> Mapping[str, Any] | None:
    """Return everything this family holds for ``user`` as JSON-ready data.

    Runs: when the user asks for an export (``GET /account/export``); core gathers every
    family's answer into one document, under the family's name.
    Gets: ``plugin``, ``platform``, ``user`` (:class:`core.User`).
    Returns: JSON-ready data, or ``None`` when the family holds nothing for users.
    May be async: yes.
    """


@hookspec
def send_push(plugin: LoadedPlugin, platform: Platform, user: User, push: PushMessage) -> None:
    """Deliver ``push`` to every registered device of ``user``.

    Runs: when any family asks for a push, with
    ``await platform.call_each("send_push", user=user, push=PushMessage(...))`` inside
    the transaction of the change causing it (never importing the family that sends).
    Gets: ``plugin``, ``platform``, ``user`` (:class:`core.User`), ``push``.
    Returns: nothing. Implementations only queue the push in the outbox of that
    transaction, so it is sent once if and only if the change commits, and retried while
    the push service is down. Implemented by ``users``; with no such family the call does
    nothing.
    May be async: yes.
    """
