"""Reconciliation: the alice events no instance received, found in alice's change feed.

alice publishes on Redis pub/sub, which keeps nothing: an event published while no
instance listens (all of them restarting, Redis unreachable, a subscriber reconnecting)
is lost. alice also lists every event she published in a change feed
(``GET /v1/connections/changes``, docs/services/alice.md). :class:`Reconciler` reads it
from a checkpoint shared by every instance and hands each event to the same
:meth:`EventHandler.receive <plugins.health_providers.service.EventHandler.receive>` as a
live one: an event already handled (live, or by another instance's sweep) is skipped by
core's ``handled_once`` bookkeeping, so nothing is applied twice and nothing pushes twice.

It sweeps at start-up, after each Redis (re)connect (``Subscription(on_connect=...)``) and
every ``reconcile_interval_seconds`` (jittered by ±:data:`JITTER`). A sweep that fails is
logged and tried again; it never ends the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from tortoise.exceptions import IntegrityError

from core import StashKey, utcnow
from plugins.health_providers.clients import AliceClient, AliceEvent, CursorExpired
from plugins.health_providers.models import EventCheckpoint
from plugins.health_providers.service import MAX_EVENT_AGE, EventHandler

log = logging.getLogger("imperfect.health_providers")

CHECKPOINT = "alice.changes"
"""The checkpoint row of alice's change feed (``health_providers_event_checkpoint``)."""
PAGE_SIZE = 200
SWEEP_PAGES = 50
"""Pages one sweep reads at most; the next sweep follows at once when more are waiting."""
JITTER = 0.25
SKIP_AFTER_FAILURES = 3
"""An event whose handling failed in this many sweeps is skipped, so it cannot stall the feed."""


@dataclass
class SweepReport:
    """What one sweep did."""

    read: int = 0
    """events read from the feed (malformed ones not counted)"""
    applied: int = 0
    """events this sweep applied: missed by every instance until now"""
    complete: bool = False
    """the feed was read to its end (or another instance is reading it on)"""


class SweepFailed(RuntimeError):
    """Events of a page could not be handled: the checkpoint stays before that page."""


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Reconciler:
    """The background sweep of alice's change feed (start in ``startup``, stop in ``shutdown``).

    Every instance may sweep at once: each event is applied once whatever the number of
    readers, and the checkpoint only moves forward from the position it was read at
    (``version``), so two sweeps never move it back.
    """

    def __init__(self, alice: AliceClient, handler: EventHandler, interval: float) -> None:
        self.alice = alice
        self.handler = handler
        self.interval = interval
        self.sweeps = 0
        """sweeps that ended without an error"""
        self.applied = 0
        """events applied by this instance's sweeps since start-up"""
        self.last_sweep_at: datetime | None = None
        self.last_applied = 0
        self.failed_at: datetime | None = None
        self.last_error: str | None = None
        self._failures: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Sweep now, then every ~``interval`` and whenever woken (in the running loop)."""
        if self.running:
            raise RuntimeError("the alice reconciliation is already running")
        self._task = asyncio.create_task(self._run(), name="health-providers-reconcile")

    async def stop(self) -> None:
        """End the task; a sweep under way is cancelled (its handled events are committed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Sweep as soon as possible (after the one under way, if any)."""
        self._wake.set()

    async def on_connect(self) -> None:
        """The subscription is (again) receiving: catch up on what it may have missed."""
        self.wake()

    def status(self) -> str:
        """The readiness detail: the last sweep and what it applied. It never fails."""
        if self.last_sweep_at is None:
            detail = "no sweep has finished yet"
        else:
            detail = (
                f"last sweep {_iso(self.last_sweep_at)}: {self.last_applied} missed event(s) "
                f"applied, {self.applied} since start-up"
            )
        detail += f"; every ~{self.interval:g}s and after each Redis reconnect"
        if self.last_error is not None and self.failed_at is not None:
            detail += f"; last attempt failed {_iso(self.failed_at)}: {self.last_error}"
        return detail

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a wake from now on asks for another sweep after this one
            try:
                report = await self.sweep()
            except Exception as error:  # alice down, the database away, a bug: try again
                self.failed_at, self.last_error = utcnow(), str(error) or type(error).__name__
                log.warning("alice reconciliation failed: %s", self.last_error, exc_info=True)
            else:
                if not report.complete:
                    self._wake.set()
            delay = self.interval * (1 - JITTER + 2 * JITTER * random.random())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def sweep(self) -> SweepReport:
        """Read the feed from the shared checkpoint and apply what no instance has handled.

        The checkpoint advances after each page whose events were all handled; a page with
        an event whose handling failed is read again by the next sweep (the events of it
        that were handled are skipped then). Raises when alice or the database fails.
        """
        report = SweepReport()
        checkpoint = await self._checkpoint()
        cursor, version = checkpoint.cursor, checkpoint.version
        for _ in range(SWEEP_PAGES):
            try:
                page = await self.alice.changes(
                    cursor=cursor, since=utcnow() - MAX_EVENT_AGE, limit=PAGE_SIZE
                )
            except CursorExpired as error:
                log.warning(
                    "alice no longer has the events after the checkpoint (%s): "
                    "reading the last %s again",
                    error,
                    MAX_EVENT_AGE,
                )
                page = await self.alice.changes(since=utcnow() - MAX_EVENT_AGE, limit=PAGE_SIZE)
            failed: list[str] = []
            last_event_at: datetime | None = None
            for item in page.items:
                event = _event(item)
                if event is None:
                    continue
                report.read += 1
                last_event_at = event.occurred_at
                try:
                    applied = await self._receive(event)
                except Exception as error:
                    failed.append(f"{event.event_id}: {error}")
                    continue
                report.applied += applied
                self.applied += applied
            if failed:
                raise SweepFailed(f"could not handle alice event(s) {'; '.join(failed)}")
            values: dict[str, Any] = {"cursor": page.next_cursor, "version": version + 1}
            if last_event_at is not None:
                values["last_event_at"] = last_event_at
            if not page.has_more:
                values["swept_at"] = utcnow()
            moved = await EventCheckpoint.filter(name=CHECKPOINT, version=version).update(**values)
            if not moved:  # another instance advanced it meanwhile: it reads on from there
                log.info("alice reconciliation: another instance moved the checkpoint on")
                report.complete = True
                break
            cursor, version = page.next_cursor, version + 1
            if not page.has_more:
                report.complete = True
                break
        self.sweeps += 1
        self.last_sweep_at, self.last_applied = utcnow(), report.applied
        self.last_error = self.failed_at = None
        if report.applied:
            log.info("alice reconciliation applied %d missed event(s)", report.applied)
        return report

    async def _receive(self, event: AliceEvent) -> bool:
        """The live path; an event that keeps failing is skipped after a few sweeps."""
        try:
            applied = await self.handler.receive(event)
        except Exception:
            failures = self._failures[event.event_id] = self._failures.get(event.event_id, 0) + 1
            if failures < SKIP_AFTER_FAILURES:
                log.warning(
                    "failed to handle alice event %s from the change feed",
                    event.event_id,
                    exc_info=True,
                )
                raise
            del self._failures[event.event_id]
            log.exception(
                "skipped alice event %s from the change feed: it failed %d times",
                event.event_id,
                failures,
            )
            return False
        self._failures.pop(event.event_id, None)
        return applied

    async def _checkpoint(self) -> EventCheckpoint:
        row = await EventCheckpoint.get_or_none(name=CHECKPOINT)
        if row is not None:
            return row
        try:
            return await EventCheckpoint.create(name=CHECKPOINT)
        except IntegrityError:  # another instance created it a moment ago
            return await EventCheckpoint.get(name=CHECKPOINT)


def _event(item: dict[str, Any]) -> AliceEvent | None:
    """One feed item as an event; a malformed one is logged and dropped, as on a channel."""
    try:
        return AliceEvent.model_validate(item)
    except PydanticValidationError as error:
        log.warning("dropped a malformed alice event from the change feed: %s", error)
        return None


RECONCILER = StashKey[Reconciler]("reconciler")
"""The sweep of alice's change feed, running with the subscription in ``EVENTS`` unless
``reconcile_interval_seconds`` is 0 (from start-up)."""
