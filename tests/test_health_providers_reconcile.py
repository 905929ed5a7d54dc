"""Reconciliation: alice events that no instance received, found in alice's change feed.

Events published while no instance listened (Redis unreachable, the subscriber reconnecting,
the app not running) are applied by the sweep, through the same path as a live event,
pushes included; an event both delivered live and found by the sweep, or found by two
instances sweeping at once, is applied once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from quart.testing import QuartClient

from core import current_platform
from core.emulator import AuthEmulator
from plugins.health_providers import reconcile, service
from plugins.health_providers.models import Connection, EventCheckpoint
from plugins.health_providers.reconcile import RECONCILER, Reconciler
from plugins.health_providers.schemas import ALICE_CLIENT, EVENTS, PROVIDERS
from plugins.users.models import Notification
from tests.fakes.alice import FakeAlice
from tests.fakes.fcm import FakeFcm
from tests.health_support import connect, families, member
from tests.support import dispatcher_of, fcm_token, users_family
from tests.support.ports import free_port
from tests.test_health_providers_events import (
    DroppingProxy,
    eventually,
    family,
    handled_ids,
    subscribed,
    with_events,
)

INTERVAL = 0.3  # seconds between sweeps in these tests (jittered by ±25%)
WITHIN_AN_INTERVAL = INTERVAL * (1 + reconcile.JITTER) + 1.5  # and time to apply it


def unreachable_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def reconcile_check(client: QuartClient) -> dict[str, Any]:
    ready = await (await client.get("/readyz")).get_json()
    return ready["plugins"]["health_providers"]["checks"]["reconcile"]


async def revocations(user_id: int) -> int:
    return await Notification.filter(user_id=user_id, category="health_provider_revoked").count()


async def test_a_revocation_published_while_redis_was_unreachable_is_applied_and_pushed(
    app_client, auth_emulator: AuthEmulator, fake_alice_events: FakeAlice, fake_fcm: FakeFcm
):
    alice = fake_alice_events  # publishes on the real Redis: no instance listens there
    plugins = with_events(
        alice,
        unreachable_redis(),
        reconcile_interval_seconds=INTERVAL,
        users=users_family(fake_fcm.url),
    )
    async with app_client(plugins) as client:
        ann = await member(client, auth_emulator)
        token = fcm_token()
        device = {"token": token, "platform": "android"}
        registered = await client.post("/notifications/devices", json=device, headers=ann.headers)
        assert registered.status_code == 201
        await connect(client, ann)
        reconciler: Reconciler = family(client).stash[RECONCILER]
        assert not family(client).stash[EVENTS].connected

        event_id = alice.revoke_at_provider(ann.id, "garmin")
        published = time.monotonic()
        await eventually(lambda: reconciler.applied == 1, timeout=WITHIN_AN_INTERVAL)
        assert time.monotonic() - published < WITHIN_AN_INTERVAL
        row = await Connection.get(user_id=ann.id, provider="garmin")
        assert row.status == "revoked" and row.revoked_at is not None
        assert await handled_ids() == [event_id]
        assert await revocations(ann.id) == 1

        assert (await dispatcher_of(client).run_once()).done == 1
        [sent] = fake_fcm.received_by(token)
        assert sent["data"]["provider"] == "garmin"
        assert sent["notification"]["title"] == "Garmin is disconnected"

        sweeps = reconciler.sweeps
        await eventually(lambda: reconciler.sweeps >= sweeps + 2, timeout=3 * WITHIN_AN_INTERVAL)
        assert await revocations(ann.id) == 1  # later sweeps find it handled
        check = await reconcile_check(client)
        assert check["ok"] is True
        assert "0 missed event(s) applied, 1 since start-up" in check["detail"]
        checkpoint = await EventCheckpoint.get(name=reconcile.CHECKPOINT)
        assert checkpoint.cursor == f"c{len(alice.published)}"
        assert checkpoint.swept_at is not None and checkpoint.last_event_at is not None


async def test_a_backfill_completed_while_no_instance_ran_is_restored_at_start_up(
    app_client, auth_emulator: AuthEmulator, fake_alice: FakeAlice, redis_url: str
):
    alice = fake_alice  # without Redis: its events only reach the change feed
    alice.channel_prefix = f"test-{uuid.uuid4().hex[:12]}.alice."
    async with app_client(families(alice.url)) as client:  # no events at all
        ann = await member(client, auth_emulator)
        await connect(client, ann)
    alice.publish("backfill.completed", ann.id, "garmin", start="2026-01-01", records=12)

    # the next start sweeps at once (the interval is long: only start-up and connect sweep)
    async with app_client(with_events(alice, redis_url, reconcile_interval_seconds=300)) as client:
        reconciler: Reconciler = family(client).stash[RECONCILER]
        await eventually(lambda: reconciler.applied == 1)
        row = await Connection.get(user_id=ann.id, provider="garmin")
        assert row.backfill_completed_at is not None and row.last_sync_at is not None
        insights = await client.get("/onboarding/garmin/insights", headers=ann.headers)
        assert (await insights.get_json())["backfill_complete"] is True


async def test_what_is_published_while_the_subscriber_reconnects_is_swept_on_reconnect(
    app_client, auth_emulator: AuthEmulator, fake_alice_events: FakeAlice, redis_url: str
):
    alice = fake_alice_events
    port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    async with DroppingProxy(port) as proxy:
        via_proxy = f"redis://127.0.0.1:{proxy.port}/0"
        plugins = with_events(alice, via_proxy, reconcile_interval_seconds=300)
        async with app_client(plugins) as client:
            ann = await member(client, auth_emulator)
            await connect(client, ann)
            health = family(client)
            events, reconciler = health.stash[EVENTS], health.stash[RECONCILER]
            channel = f"{alice.channel_prefix}connection.revoked"
            await subscribed(redis_url, channel, 1)
            await eventually(lambda: events.connects == 1 and reconciler.sweeps >= 1)

            proxy.refusing = True
            proxy.drop()
            await eventually(lambda: not events.connected)
            await subscribed(redis_url, channel, 0)
            event_id = alice.revoke_at_provider(ann.id, "garmin")  # nobody listens: lost
            assert (await Connection.get(user_id=ann.id)).status == "connected"

            proxy.refusing = False
            await eventually(lambda: events.connects == 2, timeout=10)
            await eventually(lambda: reconciler.applied == 1)
            assert events.received == 0  # it came through the sweep, not the channel
            assert (await Connection.get(user_id=ann.id)).status == "revoked"
            assert await handled_ids() == [event_id]


async def test_an_event_delivered_live_and_found_by_the_sweep_is_applied_once(
    app_client, auth_emulator: AuthEmulator, fake_alice_events: FakeAlice, redis_url: str
):
    alice = fake_alice_events
    plugins = with_events(alice, redis_url, reconcile_interval_seconds=INTERVAL)
    async with app_client(plugins) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        await connect(client, ann, "oura")
        health = family(client)
        events, reconciler = health.stash[EVENTS], health.stash[RECONCILER]
        await subscribed(redis_url, f"{alice.channel_prefix}connection.revoked", 1)

        revoked = alice.revoke_at_provider(ann.id, "garmin")
        synced = alice.publish("ingestion.completed", ann.id, "oura", records=3)
        await eventually(lambda: events.received == 2)
        sweeps = reconciler.sweeps
        await eventually(lambda: reconciler.sweeps >= sweeps + 2, timeout=3 * WITHIN_AN_INTERVAL)

        assert events.failed == 0
        assert sorted(await handled_ids()) == sorted([revoked, synced])
        assert await revocations(ann.id) == 1
        assert (await Connection.get(user_id=ann.id, provider="garmin")).status == "revoked"
        # the live subscriber applied both; the sweeps found them handled
        assert reconciler.applied == 0
        checkpoint = await EventCheckpoint.get(name=reconcile.CHECKPOINT)
        assert checkpoint.cursor == f"c{len(alice.published)}"


async def test_two_instances_sweeping_at_once_apply_each_event_once(
    app_client, auth_emulator: AuthEmulator, fake_alice: FakeAlice, caplog
):
    alice = fake_alice
    alice.page_size = 2  # many pages: the sweeps race for the checkpoint page by page
    async with app_client(families(alice.url)) as client:  # no Redis: every event is lost
        health = family(client)
        platform = current_platform(client.app)

        def instance() -> Reconciler:
            handler = service.event_handler(health.settings, platform, health.stash[PROVIDERS])
            return Reconciler(health.stash[ALICE_CLIENT], handler, 300)

        a, b = instance(), instance()
        people = [await member(client, auth_emulator) for _ in range(3)]
        for who in people:
            await connect(client, who)
        expected = set()
        for who in people:
            expected.add(alice.publish("ingestion.completed", who.id, "garmin", records=1))
            expected.add(alice.revoke_at_provider(who.id, "garmin"))
            alice.revoke_at_provider(who.id, "garmin")  # already revoked: changes nothing
        alice.publish("ingestion.completed", people[0].id, "myspace")  # not ours: ignored

        first = await asyncio.gather(a.sweep(), b.sweep())
        while not all(report.complete for report in first):  # (the loop would go on at once)
            first = await asyncio.gather(a.sweep(), b.sweep())
        for _ in range(2):  # and again: everything is handled already
            await asyncio.gather(a.sweep(), b.sweep())

        assert a.applied + b.applied == 9  # three ingestions and six revocations (three no-ops)
        assert expected <= set(await handled_ids())
        for who in people:
            assert (await Connection.get(user_id=who.id)).status == "revoked"
            assert await revocations(who.id) == 1
        checkpoint = await EventCheckpoint.get(name=reconcile.CHECKPOINT)
        assert checkpoint.cursor == f"c{len(alice.published)}"

        # alice's retention dropped events after the checkpoint: 410 cursor_expired, and the
        # sweep reads what alice still has of the last days
        alice.revoke_at_provider(people[0].id, "garmin")  # then forgotten by alice
        kept = alice.publish("ingestion.completed", people[1].id, "garmin", records=2)
        alice.discard_published(len(alice.published) - 1)
        assert (await a.sweep()).applied == 1
        assert kept in await handled_ids()
        assert any("no longer has the events" in r.getMessage() for r in caplog.records)
        assert (await EventCheckpoint.get(name=reconcile.CHECKPOINT)).cursor == (
            f"c{len(alice.published)}"
        )


async def test_a_failing_sweep_is_logged_retried_and_shown_in_readiness(
    app_client, auth_emulator: AuthEmulator, fake_alice_events: FakeAlice, caplog
):
    alice = fake_alice_events
    plugins = with_events(alice, unreachable_redis(), reconcile_interval_seconds=INTERVAL)
    async with app_client(plugins) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann)
        reconciler: Reconciler = family(client).stash[RECONCILER]
        alice.fail_with = 503
        alice.revoke_at_provider(ann.id, "garmin")
        await eventually(lambda: reconciler.last_error is not None, timeout=WITHIN_AN_INTERVAL)
        check = await reconcile_check(client)
        assert check["ok"] is True and "last attempt failed" in check["detail"]
        assert reconciler.running
        assert any("alice reconciliation failed" in r.getMessage() for r in caplog.records)

        alice.fail_with = None
        await eventually(lambda: reconciler.applied == 1, timeout=3 * WITHIN_AN_INTERVAL)
        assert (await Connection.get(user_id=ann.id)).status == "revoked"
        assert "last attempt failed" not in (await reconcile_check(client))["detail"]


async def test_the_sweep_is_off_with_a_zero_interval(
    app_client, fake_alice_events: FakeAlice, redis_url: str
):
    alice = fake_alice_events
    async with app_client(with_events(alice, redis_url)) as client:  # interval 0
        assert family(client).stash.get(RECONCILER) is None
        check = await reconcile_check(client)
        assert check["detail"].startswith("off: reconcile_interval_seconds is 0")
    async with app_client(families(alice.url)) as client:
        assert (await reconcile_check(client))["detail"].startswith("off: no redis_url")
