"""The outbox: side effects written in the transaction that causes them, carried out after.

A family queues a side effect (a push notification, a message to a sibling service) with
:func:`enqueue`, inside the transaction of the change that causes it, so the effect exists
if and only if the change commits. A :class:`Dispatcher` then claims due messages, calls the
handler that the owning family registered for the message's kind (the ``outbox_handlers``
hook) and records the outcome: done; retried later with exponential backoff and jitter; or
dead, given up and logged.

Several dispatchers (workers, instances) may share one database. A claim selects due rows
with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has a single writer) and
leases them (``locked_until``) in one short transaction, so a message is handled by one
dispatcher at a time, and a dispatcher that dies mid-way only delays its messages until the
lease expires. Handlers run outside any transaction. Delivery is at least once: a dispatcher
that dies after a side effect happened but before recording it makes that effect happen once
more, so handlers should check whether their work is already done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from core.config import CoreSettings
from core.errors import note_dependency_failure
from core.models import DEAD, DONE, PENDING, OutboxMessage

log = logging.getLogger("imperfect.outbox")

Outcome = Literal["done", "retried", "dead", "lost"]


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the message is marked dead at once."""


@dataclass(frozen=True)
class OutboxItem:
    """One message, as its handler sees it."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int  # 1 on the first try
    final: bool  # a failure now is not retried: the message will be dead


OutboxHandler = Callable[[OutboxItem], Awaitable[None]]


@dataclass(frozen=True)
class OutboxPolicy:
    """How a dispatcher paces and retries (from ``IMPERFECT_OUTBOX_*``)."""

    interval_seconds: float = 1.0
    batch_size: int = 50
    concurrency: int = 8
    max_attempts: int = 12
    lease_seconds: float = 60.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 3600.0
    keep_done_days: float = 7.0

    @classmethod
    def from_settings(cls, core: CoreSettings) -> OutboxPolicy:
        return cls(
            interval_seconds=core.outbox_interval,
            batch_size=core.outbox_batch_size,
            concurrency=core.outbox_concurrency,
            max_attempts=core.outbox_max_attempts,
            lease_seconds=core.outbox_lease,
            retry_base_seconds=core.outbox_retry_base,
            retry_max_seconds=core.outbox_retry_max,
            keep_done_days=core.outbox_keep_days,
        )

    @property
    def handler_timeout(self) -> float:
        """A handler gets half the lease, so its outcome is recorded before the lease ends."""
        return self.lease_seconds / 2

    def retry_delay(self, attempt: int) -> float:
        """Exponential backoff after failed attempt ``attempt``, with jitter (50-100%)."""
        delay = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)


@dataclass
class DispatchReport:
    """What one dispatch pass did."""

    claimed: int = 0
    done: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0  # outcomes not recorded because the lease had expired


def utcnow() -> datetime:
    return datetime.now(UTC)


async def enqueue(
    kind: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
    ordering_key: str | None = None,
    available_at: datetime | None = None,
) -> None:
    """Queue a side effect of ``kind`` on the current connection.

    Inside ``async with in_transaction():`` the message is written in that transaction, so
    it is dispatched if and only if the transaction commits. With ``dedupe_key``, a message
    whose key is already queued (or done and not yet pruned) is not queued again. The
    payload must be JSON-serialisable; keep personal data out of it (store an id of your
    own row instead), so that erasing a user's rows leaves nothing of theirs here.
    ``available_at`` holds the message back until then (default: at once).

    ``ordering_key`` (for example ``"hare:user:42"``) orders messages: one is not handed to
    its handler while an earlier message with the same key is still pending (waiting,
    backing off or being handled), on any dispatcher of any instance. A dead message no
    longer holds its successors back: they go on, and the dead one stays for inspection.
    """
    if not kind:
        raise ValueError("an outbox message needs a kind")
    data = json.loads(json.dumps(dict(payload)))  # refuse non-JSON here, in the caller
    message = OutboxMessage(
        kind=kind,
        payload=data,
        dedupe_key=dedupe_key,
        ordering_key=ordering_key,
        available_at=available_at or utcnow(),
    )
    if dedupe_key is None:
        await message.save()
    else:
        await OutboxMessage.bulk_create([message], ignore_conflicts=True)


async def outbox_backlog(kind_prefix: str, now: datetime | None = None) -> tuple[int, float]:
    """How many messages whose kind starts with ``kind_prefix`` (``"hare."``) are pending
    (waiting, backing off or being handled), and the age in seconds of the oldest one since
    it was queued (``0.0`` when there is none). Dead and done messages are not counted."""
    pending = OutboxMessage.filter(status=PENDING, kind__startswith=kind_prefix)
    count = await pending.count()
    if not count:
        return 0, 0.0
    oldest = await pending.order_by("created_at", "id").first()
    if oldest is None:  # handled between the two queries
        return 0, 0.0
    age = ((now or utcnow()) - oldest.created_at).total_seconds()
    return count, max(0.0, age)


class Dispatcher:
    """Claims due outbox messages, calls their handlers, records what happened."""

    def __init__(
        self,
        handlers: Mapping[str, OutboxHandler],
        policy: OutboxPolicy,
        name: str = "",
        context: Callable[[], Any] | None = None,
    ) -> None:
        self.handlers = dict(handlers)
        # Handlers run inside this context (the app's), as handlers of requests do.
        self.context = context or contextlib.nullcontext
        self.policy = policy
        self.name = name or uuid.uuid4().hex[:12]
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._next_prune = 0.0

    @property
    def running(self) -> bool:
        """Whether the background loop is running."""
        return self._task is not None and not self._task.done()

    async def run_once(self, now: datetime | None = None) -> DispatchReport:
        """One pass: claim due messages (at most the concurrency limit) and handle them at once.

        ``now`` is the pass's clock (default: the current time); tests pass a later time
        to make backed-off messages due without waiting.
        """
        now = now or utcnow()
        claim = uuid.uuid4().hex
        rows = await self._claim(now, claim)
        report = DispatchReport(claimed=len(rows))
        for outcome in await asyncio.gather(*(self._handle(row, claim, now) for row in rows)):
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    async def prune(self, now: datetime | None = None) -> int:
        """Delete done messages older than the retention period; dead ones are kept."""
        cutoff = (now or utcnow()) - timedelta(days=self.policy.keep_done_days)
        return await OutboxMessage.filter(status=DONE, finished_at__lt=cutoff).delete()

    def start(self) -> None:
        """Run passes in the background until :meth:`stop`."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name=f"outbox-dispatcher-{self.name}")

    async def stop(self) -> None:
        """Let the current pass finish (at most a lease), then end the background loop."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(self._task, timeout=self.policy.lease_seconds)
        except TimeoutError:
            log.warning("outbox dispatcher %s did not stop in time; cancelled", self.name)
        self._task = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            full = False
            try:
                report = await self.run_once()
                full = report.claimed > 0
                if loop.time() >= self._next_prune:
                    await self.prune()
                    self._next_prune = loop.time() + 3600
            except Exception as error:
                # A database outage is logged once by core.errors.OUTAGES, not every pass.
                if note_dependency_failure(error, request=False) is None:
                    log.exception("outbox dispatch pass failed; trying again shortly")
            if not full:  # a pass that found work goes again at once: more may be due
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.policy.interval_seconds)

    async def _claim(self, now: datetime, claim: str) -> list[OutboxMessage]:
        if not self.handlers:
            return []
        # The first pending message of each ordering key; messages without a key are free.
        heads = (
            OutboxMessage.filter(status=PENDING, ordering_key__isnull=False)
            .group_by("ordering_key")
            .annotate(head=Min("id"))
            .values("head")
        )
        claimable = (
            Q(status=PENDING, kind__in=list(self.handlers), available_at__lte=now)
            & (Q(locked_until__isnull=True) | Q(locked_until__lte=now))
            & (Q(ordering_key__isnull=True) | Q(id__in=Subquery(heads)))
        )
        async with in_transaction():
            # ``only`` rather than ``values_list``: Tortoise drops FOR UPDATE from the latter.
            due = (
                await OutboxMessage.filter(claimable)
                .order_by("available_at", "id")
                .limit(min(self.policy.batch_size, self.policy.concurrency))
                .select_for_update(skip_locked=True)
                .only("id")
            )
            if not due:
                return []
            ids = [row.id for row in due]
            # The same conditions again: without row locks (SQLite), only rows that are
            # still claimable take this claim.
            await OutboxMessage.filter(claimable, id__in=ids).update(
                locked_by=claim,
                locked_until=now + timedelta(seconds=self.policy.lease_seconds),
                attempts=F("attempts") + 1,
            )
        return await OutboxMessage.filter(locked_by=claim).order_by("id")

    async def _handle(self, row: OutboxMessage, claim: str, now: datetime) -> Outcome:
        item = OutboxItem(
            id=row.id,
            kind=row.kind,
            payload=row.payload,
            attempt=row.attempts,
            final=row.attempts >= self.policy.max_attempts,
        )
        try:
            async with self.context():
                await asyncio.wait_for(self.handlers[row.kind](item), self.policy.handler_timeout)
        except PermanentFailure as error:
            log.error("outbox %s #%s is dead (permanent failure): %s", row.kind, row.id, error)
            return await self._record(row, claim, DEAD, now, error)
        except Exception as error:
            if item.final:
                log.error(
                    "outbox %s #%s is dead after %d attempts: %s",
                    row.kind,
                    row.id,
                    row.attempts,
                    _describe(error),
                )
                return await self._record(row, claim, DEAD, now, error)
            retry_at = now + timedelta(seconds=self.policy.retry_delay(row.attempts))
            if isinstance(error, TimeoutError):
                # The work was cut at its time limit but may have reached the other side;
                # never try again before this attempt's lease ends.
                retry_at = max(retry_at, now + timedelta(seconds=self.policy.lease_seconds))
            log.warning(
                "outbox %s #%s attempt %d failed, retrying at %s: %s",
                row.kind,
                row.id,
                row.attempts,
                retry_at.isoformat(timespec="seconds"),
                _describe(error),
            )
            return await self._record(row, claim, PENDING, now, error, retry_at)
        return await self._record(row, claim, DONE, now)

    async def _record(
        self,
        row: OutboxMessage,
        claim: str,
        status: str,
        now: datetime,
        error: Exception | None = None,
        retry_at: datetime | None = None,
    ) -> Outcome:
        changes: dict[str, Any] = {
            "status": status,
            "locked_by": None,
            "locked_until": None,
            "last_error": _describe(error) if error else None,
        }
        if retry_at is not None:
            changes["available_at"] = retry_at
        else:
            changes["finished_at"] = now
        if not await OutboxMessage.filter(id=row.id, locked_by=claim).update(**changes):
            log.warning(
                "outbox %s #%s: lease expired before its outcome was recorded; "
                "it may be handled again",
                row.kind,
                row.id,
            )
            return "lost"
        return {DONE: "done", DEAD: "dead"}.get(status, "retried")  # type: ignore[return-value]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]
