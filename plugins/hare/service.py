"""Source events on their way to hare: record, deliver, erase, export, backfill. No HTTP here.

Recording stores the event in ``hare_source_event`` and queues ``hare.record`` (the row's
id) in the caller's transaction, with the ordering key ``hare:user:<id>``: the outbox hands
a user's messages over one at a time, in the order queued, so hare receives them in the
order written; the idempotency key makes a repeated delivery (a dispatcher dying after
hare answered) a no-op at hare. Delivered rows are deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import click
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from tortoise.transactions import in_transaction

from core import (
    LoadedPlugin,
    OutboxItem,
    PermanentFailure,
    Platform,
    SourceEvent,
    StartupError,
    User,
    enqueue,
    outbox_backlog,
    running,
    utcnow,
)
from plugins.hare.clients import (
    HareClient,
    HareMisconfigured,
    HareRejected,
    HareUnavailable,
    event_body,
)
from plugins.hare.hookspecs import StoredSourceEvent
from plugins.hare.models import PENDING, REFUSED, BackfillCheckpoint, PendingSourceEvent
from plugins.hare.schemas import (
    FAMILY,
    HARE,
    IDEMPOTENCY_KEY,
    LANGUAGE,
    MAX_BODY_BYTES,
    MAX_TEXT_BYTES,
    REFERENCE_TYPE,
    SURFACE,
    HareExport,
    HareSettings,
    UndeliveredEvent,
)

log = logging.getLogger("imperfect.hare")

RECORD_KIND = "hare.record"
ERASE_KIND = "hare.erase_user"
KIND_PREFIX = "hare."
ERASE_RETRY_SECONDS = 3600.0  # a fresh erase message after an exhausted one, this much later


def ordering_key(user_id: int) -> str:
    """Every hare message of one user shares this key, so they go one at a time, in order."""
    return f"hare:user:{user_id}"


# --- recording ---------------------------------------------------------------------------


def check_event(user_id: int, event: SourceEvent) -> None:
    """Refuse, in the calling family, an event hare would refuse (``ValueError``)."""
    if not isinstance(event, SourceEvent):
        raise ValueError(f"invalid source event: expected core.SourceEvent, got {event!r}")
    problems = []
    if not isinstance(event.idempotency_key, str) or not IDEMPOTENCY_KEY.match(
        event.idempotency_key
    ):
        problems.append(f"idempotency_key must match {IDEMPOTENCY_KEY.pattern}")
    if not isinstance(event.surface, str) or not SURFACE.match(event.surface):
        problems.append(f"surface {event.surface!r} must match {SURFACE.pattern}")
    if not isinstance(event.text, str) or not event.text.strip():
        problems.append("text must not be empty")
    elif len(event.text.encode()) > MAX_TEXT_BYTES:
        problems.append(
            f"text is {len(event.text.encode())} bytes; hare takes at most {MAX_TEXT_BYTES}"
        )
    if not isinstance(event.written_at, datetime) or event.written_at.utcoffset() is None:
        problems.append("written_at must be a timezone-aware datetime")
    if not isinstance(event.reference_type, str) or not REFERENCE_TYPE.match(event.reference_type):
        problems.append(f"reference_type must match {REFERENCE_TYPE.pattern}")
    if (
        not isinstance(event.reference_id, str)
        or not 1 <= len(event.reference_id) <= 200
        or not event.reference_id.isprintable()
    ):
        problems.append("reference_id must be 1-200 printable characters")
    if event.language is not None and (
        not isinstance(event.language, str) or not LANGUAGE.match(event.language)
    ):
        problems.append("language must be a BCP 47 tag such as 'en' or 'pt-BR', or None")
    if not problems:
        size = len(json.dumps(event_body(user_id, event)).encode())
        if size > MAX_BODY_BYTES:
            problems.append(f"the event is {size} bytes; hare takes at most {MAX_BODY_BYTES}")
    if problems:
        raise ValueError("invalid source event: " + "; ".join(problems))


async def record(user: User, event: SourceEvent) -> None:
    """Store ``event`` and queue its delivery, in the caller's transaction (if any)."""
    check_event(user.id, event)
    async with in_transaction():  # the caller's, when it holds one: a savepoint of it
        if await PendingSourceEvent.exists(idempotency_key=event.idempotency_key):
            return  # already on its way: recording it again changes nothing
        row = await PendingSourceEvent.create(
            user_id=user.id,
            idempotency_key=event.idempotency_key,
            surface=event.surface,
            text=event.text,
            written_at=event.written_at,
            reference_type=event.reference_type,
            reference_id=event.reference_id,
            language=event.language,
        )
        await enqueue(RECORD_KIND, {"event_id": row.id}, ordering_key=ordering_key(user.id))


def event_of(row: PendingSourceEvent) -> SourceEvent:
    return SourceEvent(
        idempotency_key=row.idempotency_key,
        surface=row.surface,
        text=row.text,
        written_at=row.written_at,
        reference_type=row.reference_type,
        reference_id=row.reference_id,
        language=row.language,
    )


# --- the outbox handlers -----------------------------------------------------------------


async def deliver(item: OutboxItem) -> None:
    """``hare.record``: send the stored event; delete it once hare has it."""
    row = await PendingSourceEvent.get_or_none(id=item.payload["event_id"])
    if row is None or row.status != PENDING:
        return  # delivered already, erased with the account, or refused before
    key = row.idempotency_key
    try:
        _, created = await FAMILY.stash[HARE].record(row.user_id, event_of(row))
    except HareRejected as error:
        log.error("hare refused source event %s for good; it is kept as refused: %s", key, error)
        await PendingSourceEvent.filter(id=row.id).update(status=REFUSED, last_error=str(error))
        raise PermanentFailure(f"hare refused source event {key}: {error}") from error
    except HareMisconfigured as error:
        log.error("hare: source event %s waits, fix the configuration: %s", key, error)
        raise
    except HareUnavailable as error:
        log.warning("hare: source event %s not delivered, will retry: %s", key, error)
        raise
    await PendingSourceEvent.filter(id=row.id).delete()
    log.info("hare %s source event %s", "recorded" if created else "already had", key)


async def erase_user(item: OutboxItem) -> None:
    """``hare.erase_user``: ask hare to forget every event of a deleted account."""
    user_id = int(item.payload["user_id"])
    try:
        deleted = await FAMILY.stash[HARE].erase_user(user_id)
    except HareRejected as error:
        log.error("hare refused to erase the events of user %s: %s", user_id, error)
        raise PermanentFailure(f"hare refused to erase user {user_id}: {error}") from error
    except (HareMisconfigured, HareUnavailable) as error:
        level = (
            logging.ERROR if isinstance(error, HareMisconfigured) or item.final else logging.WARNING
        )
        log.log(level, "hare: the events of user %s are not erased yet: %s", user_id, error)
        if item.final:  # never give up on an erasure: queue a fresh one for later
            async with in_transaction():
                await enqueue(
                    ERASE_KIND,
                    {"user_id": user_id},
                    ordering_key=ordering_key(user_id),
                    available_at=utcnow() + timedelta(seconds=ERASE_RETRY_SECONDS),
                )
        raise
    log.info("hare erased %d source event(s) of user %s", deleted, user_id)


# --- accounts ----------------------------------------------------------------------------


async def forget_user(user: User) -> None:
    """Drop what is still on its way, and queue the erasure at hare after the user's earlier
    messages (the same ordering key): deleting an account never waits for hare."""
    async with in_transaction():
        await PendingSourceEvent.filter(user_id=user.id).delete()
        await enqueue(ERASE_KIND, {"user_id": user.id}, ordering_key=ordering_key(user.id))


async def export_user(user: User) -> dict[str, Any]:
    rows = await PendingSourceEvent.filter(user_id=user.id).order_by("id")
    undelivered = [UndeliveredEvent.model_validate(row, from_attributes=True) for row in rows]
    return HareExport(undelivered=undelivered).model_dump(mode="json")


# --- readiness ---------------------------------------------------------------------------


async def reachability(client: HareClient) -> str:
    if not client.configured:
        return "not configured: no api_key (HARE_API_KEY); messages wait in the outbox"
    try:
        return await client.check()
    except HareUnavailable as error:
        # The public /readyz body carries no hostnames or raw errors.
        raise RuntimeError(
            f"hare is unreachable or failing ({error.code or error.status or 'error'}); "
            "messages wait in the outbox"
        ) from None


async def backlog(settings: HareSettings) -> str:
    count, age = await outbox_backlog(KIND_PREFIX)
    detail = f"{count} message(s) waiting, the oldest for {age:.0f}s"
    if count and age > settings.max_backlog_age:
        raise RuntimeError(f"{detail} (over max_backlog_age, {settings.max_backlog_age:g}s)")
    return detail


# --- backfill ----------------------------------------------------------------------------

_PAGE = TypeAdapter(list[StoredSourceEvent])


class BackfillStopped(Exception):
    """The backfill cannot go on now (hare unavailable or misconfigured); the checkpoint
    holds the last event hare answered, so the next run continues after it."""


@dataclass
class FamilyProgress:
    family: str
    resumed: bool = False
    seen: int = 0  # events read (in a dry run: what would be sent)
    new: int = 0  # hare stored them now (201)
    known: int = 0  # hare had them already (200)
    conflicts: int = 0  # hare has the key with other content (409)
    refused: int = 0  # hare refused them (400, 413, 422)
    invalid: int = 0  # the family's event breaks hare's rules: not sent

    def line(self, dry_run: bool) -> str:
        start = " (resumed from its checkpoint)" if self.resumed else ""
        if dry_run:
            return f"{self.family}: {self.seen} event(s) to send{start}"
        return (
            f"{self.family}: {self.seen} event(s){start}: {self.new} new in hare, "
            f"{self.known} already there, {self.conflicts} conflicting, "
            f"{self.refused} refused, {self.invalid} invalid"
        )


@dataclass
class Backfill:
    """One run of ``imperfect hare backfill`` over every family's stored events."""

    platform: Platform
    settings: HareSettings
    client: HareClient | None
    since: datetime | None = None
    user_id: int | None = None
    dry_run: bool = False
    restart: bool = False
    on_event: Callable[[FamilyProgress], None] = lambda progress: None
    on_page: Callable[[FamilyProgress], None] = lambda progress: None
    families: list[FamilyProgress] = field(default_factory=list)

    @property
    def scope(self) -> str:
        since = self.since.isoformat() if self.since else "-"
        return f"since={since};user={self.user_id if self.user_id is not None else '-'}"

    def sources(self) -> list[str]:
        """The families that implement ``stored_source_events``, in dependency order."""
        return [plugin.name for plugin, _ in self.platform.impls("stored_source_events")]

    async def pages(self, family: str, after: str | None) -> AsyncIterator[list[StoredSourceEvent]]:
        """The family's stored events, a page at a time (memory stays flat)."""
        plugin = self.platform.plugins[family]
        limit = self.settings.backfill_page_size
        while True:
            raw = await self.platform.call_plugin(
                plugin,
                "stored_source_events",
                since=self.since,
                user_id=self.user_id,
                after=after,
                limit=limit,
            )
            try:
                page = _PAGE.validate_python(list(raw or ()))
            except PydanticValidationError as error:
                raise BackfillStopped(
                    f"plugin '{family}': stored_source_events returned an invalid page: {error}"
                ) from error
            if not page:
                return
            yield page
            after = page[-1].cursor
            if len(page) < limit:
                return

    async def count(self) -> int:
        """How many events the run would read (from the checkpoints, unless restarting)."""
        total = 0
        for family in self.sources():
            checkpoint = None if self.restart else await self._checkpoint(family)
            async for page in self.pages(family, checkpoint.cursor if checkpoint else None):
                total += len(page)
        return total

    async def run(self) -> list[FamilyProgress]:
        for family in self.sources():
            progress = FamilyProgress(family)
            self.families.append(progress)
            await self._family(progress)
        return self.families

    async def _checkpoint(self, family: str) -> BackfillCheckpoint | None:
        return await BackfillCheckpoint.get_or_none(family=family, scope=self.scope)

    async def _family(self, progress: FamilyProgress) -> None:
        family = progress.family
        checkpoint = await self._checkpoint(family)
        if self.restart:
            if checkpoint is not None and not self.dry_run:
                await checkpoint.delete()
            checkpoint = None
        progress.resumed = checkpoint is not None
        after = checkpoint.cursor if checkpoint else None
        async for page in self.pages(family, after):
            for item in page:
                progress.seen += 1
                if not self.dry_run:
                    try:
                        await self._send(progress, item)
                    except BackfillStopped:
                        if after is not None:
                            await self._save(family, after, progress)
                        raise
                    after = item.cursor
                self.on_event(progress)
            if not self.dry_run and after is not None:
                await self._save(family, after, progress)
            self.on_page(progress)
        if not self.dry_run:  # done: the next run replays from the start
            await BackfillCheckpoint.filter(family=family, scope=self.scope).delete()

    async def _save(self, family: str, cursor: str, progress: FamilyProgress) -> None:
        updated = await BackfillCheckpoint.filter(family=family, scope=self.scope).update(
            cursor=cursor, sent=progress.seen
        )
        if not updated:
            await BackfillCheckpoint.create(
                family=family, scope=self.scope, cursor=cursor, sent=progress.seen
            )

    async def _send(self, progress: FamilyProgress, item: StoredSourceEvent) -> None:
        key = item.event.idempotency_key
        try:
            check_event(item.user_id, item.event)
        except ValueError as error:
            progress.invalid += 1
            log.warning(
                "hare backfill: plugin '%s' event %s not sent: %s", progress.family, key, error
            )
            return
        assert self.client is not None
        delay = self.settings.backfill_retry_delay
        for attempt in range(self.settings.backfill_retries + 1):
            try:
                _, created = await self.client.record(item.user_id, item.event)
            except HareRejected as error:
                if error.status == 409:
                    progress.conflicts += 1
                else:
                    progress.refused += 1
                log.warning("hare backfill: %s", error)
                return
            except HareMisconfigured as error:
                raise BackfillStopped(str(error)) from error
            except HareUnavailable as error:
                if attempt == self.settings.backfill_retries:
                    raise BackfillStopped(str(error)) from error
                wait = max(delay * 2**attempt, error.retry_after or 0.0)
                log.warning("hare backfill: %s; retrying in %gs", error, wait)
                await asyncio.sleep(wait)
                continue
            if created:
                progress.new += 1
            else:
                progress.known += 1
            # hare has it now: a copy still waiting (or dead) here has nothing left to do.
            await PendingSourceEvent.filter(idempotency_key=key).delete()
            return


async def backfill_from_cli(
    platform: Platform,
    plugin: LoadedPlugin,
    *,
    since: datetime | None,
    user_id: int | None,
    dry_run: bool,
    restart: bool,
    progress_bar: bool,
) -> None:
    """``imperfect hare backfill``: start the families without serving, replay, report."""
    try:
        async with running(platform):
            settings: HareSettings = plugin.settings
            client = plugin.stash[HARE]
            if not dry_run and not client.configured:
                raise click.ClickException(
                    "hare is not configured (no api_key; set HARE_API_KEY): nothing sent"
                )
            job = Backfill(
                platform,
                settings,
                None if dry_run else client,
                since=since,
                user_id=user_id,
                dry_run=dry_run,
                restart=restart,
            )
            if not job.sources():
                click.echo("no enabled family implements stored_source_events: nothing to replay")
                return
            try:
                if progress_bar and not dry_run:
                    total = await job.count()
                    with click.progressbar(length=total, label="hare backfill") as bar:
                        job.on_event = lambda _: bar.update(1)
                        await job.run()
                else:
                    if not dry_run:
                        job.on_page = lambda p: click.echo(f"{p.family}: {p.seen} event(s) sent")
                    await job.run()
            except BackfillStopped as error:
                for progress in job.families:
                    click.echo(progress.line(dry_run))
                raise click.ClickException(
                    f"hare backfill stopped: {error}. Run it again to continue after the "
                    "last event hare answered."
                ) from error
            for progress in job.families:
                click.echo(progress.line(dry_run))
    except StartupError as error:
        raise click.ClickException(f"cannot start the families: {error}") from error
