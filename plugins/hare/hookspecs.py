"""Hooks the ``hare`` family defines: how other families log what users write.

A family that stores user-written messages (an intake answer, a board reply, a chat
message) **calls** :func:`record_source_event` inside the transaction of the change that
carries the message, and **implements** :func:`stored_source_events` so that
``imperfect hare backfill`` can replay what it stored. It never imports ``hare``: the
event is a :class:`core.SourceEvent`, and a page of stored events is plain mappings.
Mark the implementation ``@hookimpl(optionalhook=True)``: ``hare`` may be disabled, and
then ``call_each("record_source_event", ...)`` returns ``[]`` and the family works on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core import LoadedPlugin, Platform, SourceEvent, User, hookspec


class StoredSourceEvent(BaseModel):
    """One item of a :func:`stored_source_events` page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: int
    event: SourceEvent
    cursor: str = Field(min_length=1, max_length=500)


@hookspec
def record_source_event(
    plugin: LoadedPlugin, platform: Platform, user: User, event: SourceEvent
) -> None:
    """Log ``event``, a message ``user`` wrote, to hare: exactly once, in order per user.

    Runs: when a family calls ``await platform.call_each("record_source_event", user=user,
    event=SourceEvent(...))``, inside the transaction of the change that carries the message
    (``async with in_transaction():``), never importing ``hare``.
    Gets: ``plugin``, ``platform``, ``user`` (:class:`core.User`, the writer), ``event``
    (:class:`core.SourceEvent`).
    Returns: nothing. ``hare`` stores the event and queues its delivery in that transaction,
    so hare receives it if and only if the change commits, after the user's earlier events,
    however long hare is down; hare drops a repeat of the same ``idempotency_key``. An
    invalid event raises ``ValueError`` at once, in the caller: empty text, text over
    16 KiB (UTF-8) or a body over 64 KiB, a surface that is not ``name`` or
    ``name:detail`` in lower case, a naive ``written_at``, a malformed key, reference or
    language. Recording a key that is still waiting for delivery again does nothing. With
    ``hare`` disabled the call does nothing.
    May be async: yes.
    """


@hookspec
def stored_source_events(
    plugin: LoadedPlugin,
    platform: Platform,
    since: datetime | None,
    user_id: int | None,
    after: str | None,
    limit: int,
) -> Iterable[StoredSourceEvent | Mapping[str, Any]]:
    """Return one page of the source events this family stores, for a backfill.

    Runs: during ``imperfect hare backfill``, page after page, once per family that
    implements it, with the app started but not serving.
    Gets: ``plugin``, ``platform``; ``since`` (only events written at or after it, or
    ``None`` for all), ``user_id`` (only that user's, or ``None``), ``after`` (the
    ``cursor`` of the last item of the previous page, ``None`` for the first page) and
    ``limit`` (the most items to return).
    Returns: at most ``limit`` items, each a :class:`StoredSourceEvent` or a mapping with
    its fields: ``user_id``, ``event`` (a :class:`core.SourceEvent` with the **same**
    ``idempotency_key`` the family used when it recorded it, so a replay never duplicates)
    and ``cursor`` (an opaque string that the next call gets as ``after``). Items come in
    a stable order (oldest first, for one user in the order written), each after
    ``after``; fewer than ``limit`` items (or none) end the family's backfill.
    May be async: yes.
    """
