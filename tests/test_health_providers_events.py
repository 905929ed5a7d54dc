"""alice's Redis events against a real Redis: each handled once, however many subscribers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from quart.testing import QuartClient

from core import (
    LoadedPlugin,
    Subscription,
    current_platform,
    handled_once,
    mark_handled,
    prune_handled,
)
from core.emulator import AuthEmulator
from core.models import HandledMessage
from plugins.health_providers import service
from plugins.health_providers.models import Connection
from plugins.health_providers.schemas import EVENT_COUNTERS, EVENTS, FAMILY, PROVIDERS
from tests.fakes.alice import FakeAlice
from tests.fakes.alice import sign as fake_sign
from tests.health_support import connect, families, member
from tests.plugins.push_recorder.models import RecordedPush
from tests.support.ports import free_port

NOTIFIER = {"push_recorder": {"module": "tests.plugins.push_recorder"}}


def with_events(alice: FakeAlice, redis_url: str, **extra: Any) -> dict[str, Any]:
    """Events on; the reconciliation sweep off unless ``reconcile_interval_seconds`` is given
    (these tests are about the live path: see test_health_providers_reconcile.py)."""
    settings = {
        "redis_url": redis_url,
        "event_channel_prefix": alice.channel_prefix,
        "event_signing_key": extra.pop("event_signing_key", alice.signing_key),
        "reconcile_interval_seconds": extra.pop("reconcile_interval_seconds", 0),
    }
    return families(alice.url, settings=settings, **extra)


def family(client: QuartClient) -> LoadedPlugin:
    return FAMILY.of(current_platform(client.app))


async def handled_ids() -> list[str]:
    """The alice event ids recorded as handled (core's bookkeeping, this family's consumer)."""
    rows = HandledMessage.filter(consumer=service.EVENT_CONSUMER).order_by("id")
    return [row.message_id for row in await rows]


async def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.02)


async def subscribed(redis_url: str, channel: str, count: int) -> None:
    """Wait until Redis itself counts ``count`` subscribers on ``channel``."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 5
        while (await client.pubsub_numsub(channel))[0][1] != count:
            if time.monotonic() > deadline:
                pytest.fail(f"{channel} never had {count} subscribers")
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def test_revoked_event_published_twice_to_two_subscribers_is_handled_once(
    app_client, auth_emulator: AuthEmulator, fake_alice_events: FakeAlice, redis_url: str
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url, **NOTIFIER)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann, "garmin")
        await connect(client, ann, "oura")
        health = family(client)
        first: Subscription = health.stash[EVENTS]
        # A second subscriber, with its own Redis connection, on the same database: what a
        # second app instance runs.
        second = service.event_subscription(
            health.settings, current_platform(client.app), health.stash[PROVIDERS]
        )
        second.start()
        try:
            channel = f"{alice.channel_prefix}connection.revoked"
            await subscribed(redis_url, channel, 2)
            event_id = alice.revoke_at_provider(ann.id, "garmin")
            alice.revoke_at_provider(ann.id, "garmin", event_id=event_id)  # alice republishes
            await eventually(lambda: first.received == 2 and second.received == 2)
        finally:
            await second.stop()

        garmin = await Connection.get(user_id=ann.id, provider="garmin")
        assert garmin.status == "revoked" and garmin.revoked_at is not None
        oura = await Connection.get(user_id=ann.id, provider="oura")
        assert oura.status == "connected"  # only the revoked provider changed
        assert await handled_ids() == [event_id]
        pushes = await RecordedPush.all()
        assert [(p.user_id, p.category, p.data) for p in pushes] == [
            (ann.id, "health_provider_revoked", {"provider": "garmin"})
        ]
        assert pushes[0].title == "Garmin is disconnected"

        status = await (await client.get("/health-providers", headers=ann.headers)).get_json()
        by_name = {p["name"]: p["connection"]["status"] for p in status["providers"]}
        assert (by_name["garmin"], by_name["oura"]) == ("revoked", "connected")

        # a fresh revocation of an already revoked connection pushes nothing more
        alice.revoke_at_provider(ann.id, "garmin")
        await eventually(lambda: first.received == 3)
        assert await RecordedPush.all().count() == 1

        # the user reconnects: connected again
        await connect(client, ann, "garmin")
        garmin = await Connection.get(user_id=ann.id, provider="garmin")
        assert (garmin.status, garmin.revoked_at) == ("connected", None)


async def test_revoked_event_without_a_notifier_changes_the_connection(
    app_client, auth_emulator, fake_alice_events: FakeAlice, redis_url
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        events: Subscription = family(client).stash[EVENTS]
        await subscribed(redis_url, f"{alice.channel_prefix}connection.revoked", 1)
        alice.revoke_at_provider(ann.id, "garmin")
        await eventually(lambda: events.received == 1)
        assert (await Connection.get(user_id=ann.id)).status == "revoked"


async def test_ingestion_and_backfill_events_record_sync_times_once(
    app_client, auth_emulator, fake_alice_events: FakeAlice, redis_url, caplog
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url)) as client:
        ann = await member(client, auth_emulator)
        other = await member(client, auth_emulator)
        await connect(client, ann)
        events: Subscription = family(client).stash[EVENTS]
        await subscribed(redis_url, f"{alice.channel_prefix}ingestion.completed", 1)
        now = datetime.now(UTC).replace(microsecond=0)
        later, earlier = now, now - timedelta(hours=3)

        alice.publish("ingestion.completed", ann.id, "garmin", occurred_at=later.isoformat())
        alice.publish("ingestion.completed", ann.id, "garmin", occurred_at=earlier.isoformat())
        backfill = alice.publish(
            "backfill.completed", ann.id, "garmin", occurred_at=earlier.isoformat()
        )
        alice.publish("backfill.completed", ann.id, "garmin", event_id=backfill)
        # not ours to act on: another user's provider we hold no connection for, an unknown
        # provider, a malformed message, an event on the wrong channel
        alice.publish("ingestion.completed", other.id, "garmin")
        alice.publish("ingestion.completed", ann.id, "myspace")
        alice.publish_raw(f"{alice.channel_prefix}ingestion.completed", b"{not json")
        alice.publish_raw(
            f"{alice.channel_prefix}connection.revoked",
            json.dumps(
                {
                    "event_id": "wrong-channel",
                    "type": "ingestion.completed",
                    "occurred_at": now.isoformat(),
                    "user_id": str(ann.id),
                    "provider": "garmin",
                }
            ).encode(),
        )
        await eventually(lambda: events.received == 8)
        dropped = [r.getMessage() for r in caplog.records if "malformed alice event" in r.msg]
        assert len(dropped) == 2 and events.failed == 0  # logged and dropped, nothing failed
        assert any("wrong channel" in message for message in dropped)

        row = await Connection.get(user_id=ann.id, provider="garmin")
        assert row.status == "connected"
        assert row.last_sync_at == later  # an older ingestion never moves it back
        assert row.backfill_completed_at == earlier
        assert await Connection.filter(user_id=other.id).count() == 0
        # two ingestions and one backfill for Ann, the other user's ingestion (nothing to update)
        assert len(await handled_ids()) == 4

        shown = await (await client.get("/health-providers", headers=ann.headers)).get_json()
        garmin = next(p for p in shown["providers"] if p["name"] == "garmin")["connection"]
        assert garmin["last_sync_at"] and garmin["backfill_completed_at"]
        insights = await client.get("/onboarding/garmin/insights", headers=ann.headers)
        assert (await insights.get_json())["backfill_complete"] is True

        # authorizing again starts a new backfill
        await connect(client, ann, "garmin")
        row = await Connection.get(user_id=ann.id, provider="garmin")
        assert (row.status, row.backfill_completed_at) == ("connected", None)

        # readiness reports the subscription
        ready = await (await client.get("/readyz")).get_json()
        assert ready["plugins"]["health_providers"]["checks"]["events"] == {
            "ok": True,
            "error": None,
            "detail": "subscribed to 3 alice channels; 0 refused (unsigned or mis-signed)",
        }


class DroppingProxy:
    """A TCP proxy to Redis whose connections the test can cut, as a network failure would.

    While ``refusing``, new connections are closed at once (Redis is unreachable).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.refusing = False
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> DroppingProxy:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop()
        assert self.server is not None
        self.server.close()

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self.writers += [writer, upstream_writer]

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))


@pytest.fixture
async def proxied_redis(redis_url: str) -> AsyncIterator[tuple[DroppingProxy, str]]:
    port = int(redis_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    async with DroppingProxy(port) as proxy:
        yield proxy, f"redis://127.0.0.1:{proxy.port}/0"


async def test_subscriber_reconnects_after_losing_redis(
    app_client, auth_emulator, fake_alice_events: FakeAlice, redis_url, proxied_redis
):
    alice = fake_alice_events
    proxy, via_proxy = proxied_redis
    async with app_client(with_events(alice, via_proxy)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        events: Subscription = family(client).stash[EVENTS]
        channel = f"{alice.channel_prefix}connection.revoked"
        await subscribed(redis_url, channel, 1)

        proxy.drop()
        await eventually(lambda: not events.connected)
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # Redis events down: degraded, still ready
        check = (await ready.get_json())["plugins"]["health_providers"]["checks"]["events"]
        assert check["ok"] is False and "retrying" in check["error"]

        await eventually(lambda: events.connected)
        await subscribed(redis_url, channel, 1)
        alice.revoke_at_provider(ann.id, "garmin")
        await eventually(lambda: events.received == 1)
        assert (await Connection.get(user_id=ann.id)).status == "revoked"


async def test_without_a_reachable_redis_the_app_serves_and_readyz_says_so(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    settings = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    async with app_client(families(fake_alice.url, settings=settings)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)  # connecting does not need events
        ready = await client.get("/readyz")
        check = (await ready.get_json())["plugins"]["health_providers"]["checks"]["events"]
        assert check["ok"] is False
        assert check["error"].startswith("not subscribed to alice events")


async def test_an_event_whose_handling_fails_is_not_recorded_and_is_handled_when_republished(
    app_client, auth_emulator, fake_alice_events: FakeAlice, redis_url, caplog, monkeypatch
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        events: Subscription = family(client).stash[EVENTS]
        await subscribed(redis_url, f"{alice.channel_prefix}connection.revoked", 1)
        real = service.EventHandler._apply
        failures = [RuntimeError("the database went away mid-event")]

        async def flaky(self, event, user_id, provider):
            await real(self, event, user_id, provider)  # the change is made, then it fails
            if failures:
                raise failures.pop()

        monkeypatch.setattr(service.EventHandler, "_apply", flaky)
        event_id = alice.revoke_at_provider(ann.id, "garmin")
        await eventually(lambda: events.received == 1)
        assert events.failed == 1 and events.connected  # logged, and the subscription goes on
        assert any(
            f"while handling alice event {event_id}" in (r.exc_text or "") for r in caplog.records
        )
        # rolled back together: the connection is unchanged, the id is not recorded
        assert (await Connection.get(user_id=ann.id)).status == "connected"
        assert await handled_ids() == []

        alice.revoke_at_provider(ann.id, "garmin", event_id=event_id)  # alice republishes
        await eventually(lambda: events.received == 2)
        assert events.failed == 1
        assert (await Connection.get(user_id=ann.id)).status == "revoked"
        assert await handled_ids() == [event_id]


async def test_handled_ids_are_kept_per_consumer_and_pruned_when_old(
    app_client, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)):
        assert await mark_handled(service.EVENT_CONSUMER, "e-1")
        assert await mark_handled("another.consumer", "e-1")  # the same id, another consumer
        async with handled_once(service.EVENT_CONSUMER, "e-1") as first:
            assert first is False
            # the refused record left the transaction usable
            assert await HandledMessage.filter(message_id="e-1").count() == 2
        async with handled_once(service.EVENT_CONSUMER, "e-2") as first:
            assert first is True
        with pytest.raises(RuntimeError):
            async with handled_once(service.EVENT_CONSUMER, "e-3") as first:
                assert first is True
                raise RuntimeError("handling failed")
        assert await handled_ids() == ["e-1", "e-2"]  # e-3 rolled back with its handling

        old = datetime.now(UTC) - service.HANDLED_EVENT_RETENTION - timedelta(minutes=1)
        await HandledMessage.filter(message_id="e-1").update(handled_at=old)
        assert await prune_handled(service.EVENT_CONSUMER, service.HANDLED_EVENT_RETENTION) == 1
        assert await handled_ids() == ["e-2"]
        assert await HandledMessage.filter(consumer="another.consumer").count() == 1


# --- signed events ---------------------------------------------------------------------------


def revoked_event(user_id: int, event_id: str = "e-signed") -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "type": "connection.revoked",
            "occurred_at": datetime.now(UTC).isoformat(),
            "user_id": str(user_id),
            "provider": "garmin",
            "reason": "provider_revoked",
        }
    ).encode()


async def events_check(client: QuartClient) -> dict[str, Any]:
    ready = await (await client.get("/readyz")).get_json()
    return ready["plugins"]["health_providers"]["checks"]["events"]


async def test_only_events_signed_with_the_key_are_applied(
    app_client, auth_emulator, fake_alice_events: FakeAlice, redis_url, caplog
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url, **NOTIFIER)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        health = family(client)
        events: Subscription = health.stash[EVENTS]
        channel = f"{alice.channel_prefix}connection.revoked"
        await subscribed(redis_url, channel, 1)
        event = revoked_event(ann.id)
        signed = fake_sign(alice.signing_key, event)

        alice.publish_raw(channel, event, signed=False)  # anyone who can publish on Redis
        flipped = bytearray(signed)
        flipped[-3] ^= 0x01  # one byte of the event changed after signing
        await publish_bytes(redis_url, channel, bytes(flipped))
        wrong_key = fake_sign("another-key-of-at-least-32-characters!!", event)
        await publish_bytes(redis_url, channel, wrong_key)
        await publish_bytes(redis_url, channel, b"0" * 64 + b"." + event)
        await eventually(lambda: events.received == 4)
        assert (await Connection.get(user_id=ann.id)).status == "connected"
        assert await handled_ids() == [] and await RecordedPush.all().count() == 0
        assert health.stash[EVENT_COUNTERS].refused == 4 and events.failed == 0
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1  # rate-limited: one line for the burst
        assert "not signed with event_signing_key" in refusals[0]
        check = await events_check(client)
        assert check["ok"] is True
        assert (
            check["detail"] == "subscribed to 3 alice channels; 4 refused (unsigned or mis-signed)"
        )

        await publish_bytes(redis_url, channel, signed)  # the right signature: applied
        await eventually(lambda: events.received == 5)
        assert (await Connection.get(user_id=ann.id)).status == "revoked"
        assert await handled_ids() == ["e-signed"]
        assert health.stash[EVENT_COUNTERS].refused == 4


async def test_without_a_signing_key_every_event_is_refused_and_readyz_says_so(
    app_client, auth_emulator, fake_alice_events: FakeAlice, redis_url
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url, event_signing_key="")) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        health = family(client)
        events: Subscription = health.stash[EVENTS]
        await subscribed(redis_url, f"{alice.channel_prefix}connection.revoked", 1)
        alice.revoke_at_provider(ann.id, "garmin")  # signed, but we have no key to check it
        await eventually(lambda: events.received == 1)
        assert (await Connection.get(user_id=ann.id)).status == "connected"
        assert health.stash[EVENT_COUNTERS].refused == 1
        check = await events_check(client)
        assert check["ok"] is True
        assert check["detail"] == (
            "subscribed to 3 alice channels; refusing every event: no event_signing_key; 1 refused"
        )


async def test_a_stale_signed_event_is_dropped_as_a_replay(
    app_client, auth_emulator, fake_alice_events: FakeAlice, redis_url
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        events: Subscription = family(client).stash[EVENTS]
        await subscribed(redis_url, f"{alice.channel_prefix}connection.revoked", 1)
        old = datetime.now(UTC) - service.MAX_EVENT_AGE - timedelta(hours=1)
        alice.revoke_at_provider(ann.id, "garmin")
        await eventually(lambda: events.received == 1)
        assert (await Connection.get(user_id=ann.id)).status == "revoked"
        await connect(client, ann)
        alice.publish("connection.revoked", ann.id, "garmin", occurred_at=old.isoformat())
        await eventually(lambda: events.received == 2)
        assert (await Connection.get(user_id=ann.id)).status == "connected"


def test_a_short_signing_key_is_refused():
    from plugins.health_providers.schemas import HealthProvidersSettings

    with pytest.raises(ValueError, match="at least 32 characters"):
        HealthProvidersSettings(event_signing_key="short")
    assert HealthProvidersSettings(event_signing_key="").event_signing_key.get_secret_value() == ""


async def publish_bytes(redis_url: str, channel: str, payload: bytes) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.publish(channel, payload)
    finally:
        await client.aclose()
