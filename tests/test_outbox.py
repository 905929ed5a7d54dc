"""The core outbox, through the ``courier`` test family.

A message exists only if the transaction that queued it commits; each is handled once,
also by two dispatchers at a time; failures are retried with backoff, then dead; a
crashed dispatcher's lease expires; the background loop runs with the app.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from tortoise.transactions import in_transaction

from core.models import OutboxMessage
from core.outbox import Dispatcher, PermanentFailure, enqueue, utcnow
from tests.plugins.courier.models import Parcel
from tests.plugins.courier.routes import SCRIPT, Script
from tests.support import dispatcher_of, runtime_of

COURIER = {"courier": {"module": "tests.plugins.courier"}}


def script_of(client) -> Script:
    return runtime_of(client).platform.plugins["courier"].stash[SCRIPT]


async def send(client, label: str, **extra) -> int:
    response = await client.post("/courier/parcels", json={"label": label, **extra})
    assert response.status_code == 201, await response.get_data()
    return (await response.get_json())["id"]


async def delivered() -> dict[str, int]:
    return {p.label: p.delivered for p in await Parcel.all()}


async def test_a_message_exists_only_if_its_transaction_commits(app_client):
    async with app_client(COURIER) as client:
        refused = await client.post("/courier/parcels", json={"label": "a", "refuse": True})
        assert refused.status_code == 409
        assert await Parcel.all().count() == 0
        assert await OutboxMessage.all().count() == 0

        parcel_id = await send(client, "b")
        [row] = await OutboxMessage.all()
        assert (row.kind, row.payload, row.status, row.attempts) == (
            "courier.deliver",
            {"parcel_id": parcel_id},
            "pending",
            0,
        )
        dispatcher = dispatcher_of(client)
        report = await dispatcher.run_once()
        assert (report.claimed, report.done) == (1, 1)
        assert (await dispatcher.run_once()).claimed == 0
        assert await delivered() == {"b": 1}
        await row.refresh_from_db()
        assert (row.status, row.attempts, row.locked_by, row.last_error) == ("done", 1, None, None)
        assert row.finished_at is not None


async def test_failures_are_retried_with_exponential_backoff(app_client):
    async with app_client(COURIER, outbox_retry_base=10) as client:
        script_of(client).failures = [RuntimeError("down"), RuntimeError("still down")]
        await send(client, "a")
        dispatcher, now = dispatcher_of(client), utcnow()

        assert (await dispatcher.run_once(now)).retried == 1
        [row] = await OutboxMessage.all()
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "RuntimeError: down")
        assert now + timedelta(seconds=5) <= row.available_at <= now + timedelta(seconds=10)
        assert (await dispatcher.run_once(now + timedelta(seconds=4))).claimed == 0  # not due

        later = now + timedelta(seconds=10)
        assert (await dispatcher.run_once(later)).retried == 1
        await row.refresh_from_db()
        assert later + timedelta(seconds=10) <= row.available_at <= later + timedelta(seconds=20)

        assert (await dispatcher.run_once(now + timedelta(hours=1))).done == 1
        assert await delivered() == {"a": 1}
        assert [item.attempt for item in script_of(client).seen] == [1, 2, 3]


async def test_a_handler_that_overruns_its_time_is_retried(app_client):
    async with app_client(COURIER, outbox_lease=0.2) as client:
        script_of(client).delay = 0.3  # over half the lease
        await send(client, "slow")
        assert (await dispatcher_of(client).run_once()).retried == 1
        [row] = await OutboxMessage.all()
        assert row.last_error.startswith("TimeoutError")
        assert await delivered() == {"slow": 0}


async def test_permanent_failures_and_exhausted_attempts_are_dead(app_client, caplog):
    caplog.set_level(logging.ERROR, logger="imperfect.outbox")
    async with app_client(COURIER, outbox_max_attempts=2) as client:
        script, dispatcher = script_of(client), dispatcher_of(client)

        script.failures = [PermanentFailure("no such address")]
        await send(client, "a")
        assert (await dispatcher.run_once()).dead == 1
        [row] = await OutboxMessage.all()
        assert (row.status, row.attempts) == ("dead", 1)
        assert row.last_error == "PermanentFailure: no such address"

        script.failures = [RuntimeError("x"), RuntimeError("y")]
        await send(client, "b")
        now = utcnow()
        assert (await dispatcher.run_once(now)).retried == 1
        assert (await dispatcher.run_once(now + timedelta(hours=1))).dead == 1
        assert [item.final for item in script.seen[1:]] == [False, True]
        assert (await dispatcher.run_once(now + timedelta(days=30))).claimed == 0
        assert await delivered() == {"a": 0, "b": 0}
    assert "is dead after 2 attempts: RuntimeError: y" in caplog.text


async def test_a_crashed_dispatchers_lease_expires_and_the_message_is_retried(app_client):
    async with app_client(COURIER, outbox_lease=30) as client:
        await send(client, "a")
        dispatcher, now = dispatcher_of(client), utcnow()
        # What a dispatcher leaves behind when it dies after claiming a message.
        await OutboxMessage.all().update(
            locked_by="crashed", locked_until=now + timedelta(seconds=30), attempts=1
        )
        assert (await dispatcher.run_once(now)).claimed == 0
        assert (await dispatcher.run_once(now + timedelta(seconds=29))).claimed == 0
        assert (await dispatcher.run_once(now + timedelta(seconds=31))).done == 1
        [row] = await OutboxMessage.all()
        assert (row.status, row.attempts) == ("done", 2)
        assert await delivered() == {"a": 1}


async def test_two_dispatchers_share_the_work_and_handle_each_message_once(app_client):
    """On PostgreSQL the claims run concurrently, each on its own connection (SKIP LOCKED)."""
    async with app_client(COURIER, outbox_batch_size=4) as client:
        script_of(client).delay = 0.01
        labels = [f"p{i}" for i in range(24)]
        for label in labels:
            await send(client, label)
        runtime = runtime_of(client)
        handlers = {kind: handler for kind, (_, handler) in runtime.outbox_handlers.items()}
        policy = dispatcher_of(client).policy
        first = Dispatcher(handlers, policy, "first")
        second = Dispatcher(handlers, policy, "second")
        passes = []
        while True:
            reports = await asyncio.gather(first.run_once(), second.run_once())
            if not any(r.claimed for r in reports):
                break
            passes.append(tuple(r.claimed for r in reports))
        # Concurrent claims skip each other's rows instead of colliding on them.
        assert passes == [(4, 4)] * 3
        assert await delivered() == dict.fromkeys(labels, 1)
        assert sorted(item.id for item in script_of(client).seen) == sorted(
            row.id for row in await OutboxMessage.all()
        )


async def test_a_dedupe_key_queues_a_message_once(app_client):
    async with app_client(COURIER) as client:
        first = await send(client, "a", dedupe_key="order-7")
        await send(client, "b", dedupe_key="order-7")
        [row] = await OutboxMessage.all()
        assert row.payload == {"parcel_id": first}
        assert (await dispatcher_of(client).run_once()).done == 1
        await send(client, "c", dedupe_key="order-7")  # done, but not yet pruned
        assert (await dispatcher_of(client).run_once()).claimed == 0
        assert await delivered() == {"a": 1, "b": 0, "c": 0}


async def test_a_kind_no_enabled_family_handles_waits(app_client):
    async with app_client(COURIER) as client:
        async with in_transaction():
            await enqueue("retired.family", {"x": 1})
        with pytest.raises(TypeError):
            await enqueue("courier.deliver", {"when": utcnow()})  # not JSON
        assert (await dispatcher_of(client).run_once()).claimed == 0
        [row] = await OutboxMessage.all()
        assert (row.kind, row.status, row.attempts) == ("retired.family", "pending", 0)


async def test_done_messages_are_pruned_after_the_retention_period(app_client):
    async with app_client(COURIER, outbox_keep_days=7) as client:
        script_of(client).failures = [PermanentFailure("refused")]
        await send(client, "a")
        await send(client, "b")
        dispatcher, now = dispatcher_of(client), utcnow()
        await dispatcher.run_once(now)
        assert sorted(r.status for r in await OutboxMessage.all()) == ["dead", "done"]
        assert await dispatcher.prune(now + timedelta(days=6)) == 0
        assert await dispatcher.prune(now + timedelta(days=8)) == 1
        assert [r.status for r in await OutboxMessage.all()] == ["dead"]


async def test_the_background_dispatcher_runs_while_the_app_serves(app_client):
    async with app_client(COURIER, outbox_dispatcher=True, outbox_interval=0.02) as client:
        dispatcher = dispatcher_of(client)
        assert dispatcher.running
        await send(client, "a")
        for _ in range(200):
            if (await delivered())["a"]:
                break
            await asyncio.sleep(0.01)
        assert await delivered() == {"a": 1}
    assert not dispatcher.running


def _labels(script: Script, parcels: dict[int, str]) -> list[str]:
    return [parcels[item.payload["parcel_id"]] for item in script.seen]


async def test_messages_with_one_ordering_key_go_one_at_a_time_in_order(app_client):
    async with app_client(COURIER) as client:
        script = script_of(client)
        ids = {await send(client, f"a{n}", ordering_key="user:a"): f"a{n}" for n in range(3)}
        ids[await send(client, "free")] = "free"
        ids[await send(client, "b0", ordering_key="user:b")] = "b0"
        dispatcher, now = dispatcher_of(client), utcnow()

        script.failures.append(RuntimeError("the sibling is down"))
        first = await dispatcher.run_once(now)
        # one message per key, and the unkeyed one: a0 (fails), free, b0
        assert first.claimed == 3 and first.retried == 1
        assert sorted(_labels(script, ids)) == ["a0", "b0", "free"]
        # a0 backs off; a1 must wait for it although a1 is due
        assert (await dispatcher.run_once(now)).claimed == 0
        later = now + timedelta(hours=2)
        for _ in range(3):
            await dispatcher.run_once(later)
        assert [label for label in _labels(script, ids) if label.startswith("a")] == [
            "a0",
            "a0",
            "a1",
            "a2",
        ]
        assert await delivered() == {"a0": 1, "a1": 1, "a2": 1, "free": 1, "b0": 1}


async def test_a_dead_message_does_not_hold_its_successors_back(app_client):
    async with app_client(COURIER, outbox_max_attempts=2) as client:
        script = script_of(client)
        ids = {await send(client, f"m{n}", ordering_key="k"): f"m{n}" for n in range(2)}
        script.failures.extend([RuntimeError("down"), RuntimeError("still down")])
        dispatcher, now = dispatcher_of(client), utcnow()
        assert (await dispatcher.run_once(now)).retried == 1
        assert (await dispatcher.run_once(now + timedelta(hours=2))).dead == 1
        assert (await dispatcher.run_once(now + timedelta(hours=2))).done == 1
        assert _labels(script, ids) == ["m0", "m0", "m1"]
        statuses = {row.payload["parcel_id"]: row.status for row in await OutboxMessage.all()}
        assert sorted(statuses.values()) == ["dead", "done"]


async def test_two_dispatchers_keep_each_keys_order(app_client):
    """Two dispatchers on one database (PostgreSQL: row locks; SQLite: one writer)."""
    async with app_client(COURIER) as client:
        script = script_of(client)
        script.delay = 0.01
        ids = {}
        for n in range(8):
            for key in ("x", "y", "z"):
                ids[await send(client, f"{key}{n}", ordering_key=key)] = f"{key}{n}"
        first = dispatcher_of(client)
        second = Dispatcher(first.handlers, first.policy, name="second")
        for _ in range(12):
            await asyncio.gather(first.run_once(), second.run_once())
        seen = _labels(script, ids)
        assert sorted(seen) == sorted(ids.values())  # each exactly once
        for key in ("x", "y", "z"):
            assert [label for label in seen if label[0] == key] == [f"{key}{n}" for n in range(8)]


async def test_a_pass_runs_at_most_the_configured_number_of_handlers(app_client):
    async with app_client(COURIER, outbox_concurrency=2) as client:
        for n in range(5):
            await send(client, f"p{n}")
        dispatcher = dispatcher_of(client)
        assert [(await dispatcher.run_once()).claimed for _ in range(4)] == [2, 2, 1, 0]


async def test_a_timed_out_attempt_is_not_retried_before_its_lease_ends(app_client):
    """The work was cut at its limit but may have reached the other side: wait out the lease."""
    async with app_client(COURIER, outbox_lease=2.0, outbox_retry_base=0) as client:
        script_of(client).delay = 1.5  # longer than the time limit, half the lease
        await send(client, "slow")
        now = utcnow()
        assert (await dispatcher_of(client).run_once(now)).retried == 1
        [row] = await OutboxMessage.all()
        assert row.available_at >= now + timedelta(seconds=2)
        assert "TimeoutError" in (row.last_error or "")
