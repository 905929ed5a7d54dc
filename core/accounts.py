"""Erasing and exporting a user's account, orchestrated by core through every family's hooks.

Whoever stores what, erasure works the same: core records the request
(:class:`~core.models.AccountDeletion`), then asks each enabled family to erase its rows
(``account_deleted``) in reverse dependency order, so the family holding the user record,
which the others require, goes last; then it deletes the Firebase user. Each family that
succeeded is recorded at once and never asked again. A family that fails (its sibling
service refuses or is down) leaves the request pending: an outbox message carries it on
with backoff until every family has erased its part, and the user can read its state
meanwhile. Nothing stops half-way for good.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.auth import Identity
from core.errors import ApiError
from core.families import User
from core.models import DONE, PENDING, AccountDeletion, OutboxMessage
from core.outbox import OutboxItem, enqueue, utcnow

if TYPE_CHECKING:
    from core.app import Runtime

log = logging.getLogger("imperfect.accounts")

DELETION_KIND = "core.account_deletion"
# One run holds the request this long; a run that died frees it when this passes.
RUN_LEASE = timedelta(minutes=5)
# The queued message waits this long first: the request's own attempt runs before it.
FIRST_RETRY = timedelta(seconds=30)


class DeletionPending(Exception):
    """A family (or Firebase) could not erase its part yet; the request stays pending."""


@dataclass(frozen=True)
class DeletionState:
    """What the user may see of their deletion request."""

    status: str  # "pending" or "done"
    requested_at: Any
    completed_at: Any
    families: dict[str, bool]  # family -> erased
    waiting_for: str | None  # the family (or "firebase") that holds it up, if any


async def request_deletion(runtime: Runtime, identity: Identity) -> DeletionState:
    """Record the caller's deletion request (once) and try to carry it out now.

    A repeated request while one is pending returns that one. The queued message that
    carries a pending request on is written in the same transaction as the request.
    """
    assert runtime.auth is not None
    # Revocation is checked live for a deletion (the route's recent-sign-in check did it
    # already, then this is a no-op): a revoked or disabled user cannot start one.
    identity = await runtime.auth.check_live(identity)
    user = await runtime.find_user(identity)
    async with in_transaction():
        existing = (
            await AccountDeletion.filter(firebase_uid=identity.uid).select_for_update().first()
        )
        if existing is not None and existing.status == DONE:
            await existing.delete()  # a new account under a reused uid: start over
            existing = None
        if existing is None:
            existing = await AccountDeletion.create(
                firebase_uid=identity.uid, user_id=user.id if user else None
            )
            await enqueue(
                DELETION_KIND,
                {"deletion_id": existing.id},
                dedupe_key=_message_key(existing.id),
                available_at=utcnow() + FIRST_RETRY,
            )
    deletion = await carry_out(runtime, existing.id)
    return describe(runtime, deletion)


async def deletion_state(runtime: Runtime, identity: Identity) -> DeletionState | None:
    """The caller's deletion request, if they made one."""
    deletion = await AccountDeletion.get_or_none(firebase_uid=identity.uid)
    return describe(runtime, deletion) if deletion is not None else None


def describe(runtime: Runtime, deletion: AccountDeletion) -> DeletionState:
    erased = set(deletion.erased)
    families = {plugin.name: plugin.name in erased for plugin in _erasers(runtime)}
    waiting = None
    if deletion.status == PENDING:
        waiting = next((name for name, done in families.items() if not done), "firebase")
    return DeletionState(
        status="done" if deletion.status == DONE else "pending",
        requested_at=deletion.requested_at,
        completed_at=deletion.completed_at,
        families=families,
        waiting_for=waiting,
    )


def _erasers(runtime: Runtime) -> list[Any]:
    """Families that erase rows, in the order they are asked: reverse dependency order."""
    return [plugin for plugin, _ in reversed(runtime.platform.impls("account_deleted"))]


async def carry_out(runtime: Runtime, deletion_id: int) -> AccountDeletion:
    """Advance one deletion request as far as it goes now; return it as it stands.

    Only one run at a time holds a request (a lease on its row), so no family is asked
    twice at once; each family that succeeds is recorded before the next is asked.
    """
    now = utcnow()
    free = Q(locked_until__isnull=True) | Q(locked_until__lte=now)
    claimed = await AccountDeletion.filter(free, id=deletion_id, status=PENDING).update(
        locked_until=now + RUN_LEASE
    )
    deletion = await AccountDeletion.get(id=deletion_id)
    if not claimed:
        return deletion
    try:
        await _erase_everywhere(runtime, deletion)
    except DeletionPending as pending:
        deletion.last_error = str(pending)[:2000]
        deletion.locked_until = None
        await deletion.save(update_fields=["last_error", "locked_until"])
        return deletion
    deletion.status, deletion.completed_at = DONE, utcnow()
    deletion.locked_until = None
    deletion.last_error = None  # type: ignore[assignment]  # a nullable column
    await deletion.save(update_fields=["status", "completed_at", "locked_until", "last_error"])
    # Done before its queued message came due (the usual case): that message has nothing
    # left to do, so it goes, unless a dispatcher holds it right now.
    await OutboxMessage.filter(
        Q(locked_until__isnull=True) | Q(locked_until__lte=utcnow()),
        dedupe_key=_message_key(deletion.id),
        status=PENDING,
    ).delete()
    log.info("account deletion #%s is complete", deletion.id)
    return deletion


def _message_key(deletion_id: int) -> str:
    return f"{DELETION_KIND}:{deletion_id}"


async def _erase_everywhere(runtime: Runtime, deletion: AccountDeletion) -> None:
    user: User | None = None
    if deletion.user_id is not None:
        user = await runtime.find_user(Identity(uid=deletion.firebase_uid, claims={}))
    for plugin in _erasers(runtime):
        if plugin.name in deletion.erased:
            continue
        if user is not None:
            try:
                await runtime.platform.call_plugin(plugin, "account_deleted", user=user)
            except Exception as error:
                log.warning(
                    "account deletion #%s: family '%s' could not erase yet: %r",
                    deletion.id,
                    plugin.name,
                    error,
                )
                raise DeletionPending(f"{plugin.name}: {_reason(error)}") from error
        deletion.erased = [*deletion.erased, plugin.name]
        await deletion.save(update_fields=["erased"])
    assert runtime.auth is not None
    try:
        # also drops the user's cached revocation state, here and (through Redis) on every
        # instance, so their tokens are refused at once, not after the revocation window
        await runtime.auth.delete_user(deletion.firebase_uid)
    except Exception as error:
        raise DeletionPending(f"firebase: {_reason(error)}") from error


def _reason(error: BaseException) -> str:
    if isinstance(error, ApiError):
        return error.detail
    return type(error).__name__


async def handle_deletion(runtime: Runtime, item: OutboxItem) -> None:
    """The outbox handler of :data:`DELETION_KIND`: carry the request on, or retry later.

    Erasure never gives up: on the outbox's last attempt a fresh message is queued, so the
    request keeps being retried (at the longest backoff) until it completes.
    """
    deletion = await carry_out(runtime, item.payload["deletion_id"])
    if deletion.status == DONE:
        return
    if item.final:
        log.error("account deletion #%s still pending: %s", deletion.id, deletion.last_error)
        await enqueue(DELETION_KIND, {"deletion_id": deletion.id})
        return
    raise DeletionPending(deletion.last_error or "another run holds it")


async def export_account(runtime: Runtime, user: User) -> dict[str, Any]:
    """Every enabled family's data about ``user``: ``{"exported_at", "families"}``."""
    families = {
        plugin.name: data
        for plugin, data in await runtime.platform.call_each("account_export", user=user)
        if data is not None
    }
    return {"exported_at": utcnow(), "families": families}
