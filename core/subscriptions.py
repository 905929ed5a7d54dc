"""Messages from outside: Redis channels a family subscribes to, each message handled once.

:class:`Subscription` runs a background subscription to Redis pub/sub channels that
survives Redis going away: it hands every message to the family's handler, one at a time,
and reconnects with a capped, jittered backoff; :meth:`Subscription.status` is a readiness
check. What a message means, and whether it is well formed, is the handler's business.

Redis (like a webhook sender) may deliver a message twice, and every instance of the API
receives every message. :func:`handled_once` and :func:`mark_handled` make handling happen
once across all instances sharing the database: the message id is recorded (in
``core_handled_message``, unique per consumer) in the same transaction as the change the
message causes, so exactly one transaction wins. :func:`prune_handled` forgets ids once the
sender can no longer repeat them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis
from redis.exceptions import RedisError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.metrics import SubscriptionMetrics
from core.models import HandledMessage

log = logging.getLogger("imperfect.subscriptions")

MessageHandler = Callable[[str, bytes], Awaitable[object]]
"""``handler(channel, data)``: one message, its channel name and its raw bytes."""
ConnectHook = Callable[[], Awaitable[object]]
"""``on_connect()``: Redis confirmed every channel; messages published from now on arrive."""


class Subscription:
    """A background subscription to Redis channels, reconnecting until it is stopped.

    ``start`` runs it as a task: subscribe to ``channels``, await ``handler(channel, data)``
    for each message in turn, and on any Redis failure (or a bug) reconnect after a delay
    that doubles from ``initial_backoff`` up to ``max_backoff``, jittered by ±50% so that
    instances do not reconnect in step. A handler that raises is logged and counted in
    ``failed``; the subscription carries on. ``received`` counts every message taken off
    the channels, whatever became of it.

    ``on_connect``, when given, is awaited each time Redis has confirmed every channel (the
    first time and after each reconnect), before the messages that follow are handled:
    from then on nothing published is missed, so it is where a family catches up on what
    was published while it was not subscribed. Keep it short (wake a task of your own): the
    messages wait meanwhile. One that raises is logged; the subscription carries on.
    ``connects`` counts the confirmed subscriptions.
    """

    def __init__(
        self,
        name: str,
        redis_url: str,
        channels: Iterable[str],
        handler: MessageHandler,
        *,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        connect_timeout: float = 5.0,
        on_connect: ConnectHook | None = None,
    ) -> None:
        self.name = name
        self.redis_url = redis_url
        self.channels = tuple(dict.fromkeys(channels))
        if not self.channels:
            raise ValueError(f"subscription {name} has no channels")
        self.handler = handler
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.on_connect = on_connect
        self.connected = False
        self.metrics = SubscriptionMetrics(name)  # the counts below, for /metrics
        self.last_error: str | None = None
        self.received = 0
        self.failed = 0
        self.reconnects = 0
        self.connects = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start subscribing in the background (in the running event loop)."""
        if self.running:
            raise RuntimeError(f"subscription {self.name} is already running")
        self._task = asyncio.create_task(self._run(), name=f"subscription-{self.name}")

    async def stop(self) -> None:
        """Unsubscribe and wait for the task to end; a message being handled is cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected = False
        self.metrics.connected.set(0)

    def status(self) -> str:
        """A readiness check: passes while subscribed, raises while (re)connecting."""
        if not self.connected:
            why = self.last_error or "connecting"
            raise RuntimeError(f"not subscribed to {self.name} events ({why}); retrying")
        return f"subscribed to {len(self.channels)} {self.name} channels"

    def delay(self, backoff: float) -> float:
        """The jittered wait before the next attempt."""
        return backoff * (0.5 + random.random())

    async def _run(self) -> None:
        backoff = self.initial_backoff
        while True:
            client = redis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=self.connect_timeout,
                health_check_interval=30,
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(*self.channels)
                self.connected, self.last_error, backoff = True, None, self.initial_backoff
                self.metrics.connected.set(1)
                log.info("%s: subscribed to %s", self.name, ", ".join(self.channels))
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        await self._deliver(message["channel"], message["data"])
                    elif message["type"] == "subscribe" and message["data"] == len(self.channels):
                        await self._confirmed()
            except (RedisError, OSError) as error:
                self.last_error = str(error) or type(error).__name__
                log.warning("%s: %s; reconnecting in ~%.1fs", self.name, self.last_error, backoff)
            except Exception as error:  # a bug must not end the subscription for good
                self.last_error = repr(error)
                log.exception("%s: subscription failed; reconnecting in ~%.1fs", self.name, backoff)
            finally:
                self.connected = False
                self.metrics.connected.set(0)
                await pubsub.aclose()
                await client.aclose()
            self.reconnects += 1
            self.metrics.reconnects.inc()
            await asyncio.sleep(self.delay(backoff))
            backoff = min(backoff * 2, self.max_backoff)

    async def _confirmed(self) -> None:
        """Redis confirmed the last channel: call ``on_connect``, never fatally."""
        self.connects += 1
        if self.on_connect is None:
            return
        try:
            await self.on_connect()
        except Exception:
            log.exception("%s: on_connect failed", self.name)

    async def _deliver(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        payload = data.encode() if isinstance(data, str) else data
        try:
            await self.handler(name, payload)
        except Exception:
            self.failed += 1
            self.metrics.failed.inc()
            log.exception("%s: failed to handle a message on %s", self.name, name)
        finally:
            self.received += 1
            self.metrics.received.inc()


# --- handled once ------------------------------------------------------------------------


async def mark_handled(consumer: str, message_id: str) -> bool:
    """Record that ``consumer`` handles ``message_id``, in the caller's transaction.

    ``True`` the first time; ``False`` when the pair is already recorded, by this instance
    or another (the unique pair refuses the row; a transaction that has not committed yet
    makes this wait for it). The row is written in a savepoint, so a ``False`` leaves the
    caller's transaction usable; it commits or rolls back with that transaction, so a
    handler that fails leaves the message to be handled again.
    """
    try:
        async with in_transaction():  # a savepoint inside the caller's transaction
            await HandledMessage.create(consumer=consumer, message_id=message_id)
    except IntegrityError:
        return False
    return True


@contextlib.asynccontextmanager
async def handled_once(consumer: str, message_id: str) -> AsyncIterator[bool]:
    """A transaction for handling one message, and whether it is the first time.

    ::

        async with handled_once("gear.strava_webhooks", event.id) as first:
            if first:
                ...  # the change the message causes, in the same transaction

    The message is recorded as handled only if the block completes; an exception rolls
    back both the change and the record.
    """
    async with in_transaction():
        yield await mark_handled(consumer, message_id)


async def prune_handled(consumer: str, older_than: timedelta) -> int:
    """Forget ``consumer``'s handled ids recorded more than ``older_than`` ago; how many."""
    cutoff = datetime.now(UTC) - older_than
    return await HandledMessage.filter(consumer=consumer, handled_at__lt=cutoff).delete()
