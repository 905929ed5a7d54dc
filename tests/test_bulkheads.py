"""A slow push service does not slow sign-ins, and its pushes are each delivered once.

FCM answering in 3 s per send once stalled ``GET /users/me`` (token checks and FCM sends
shared asyncio's default thread pool) and sent pushes twice (a batch's time limit started
before a send got a thread). Now tokens are checked on the event loop, FCM is called with
an async client, and the outbox runs at most its concurrency limit of handlers, each timed
from its own start. This measures ``GET /users/me`` with FCM healthy and with FCM at 3 s per
send while pushes are in flight, in the same run: the tail stays within twice the healthy
one (with a floor, so scheduler noise on a loaded machine is not a failure).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from core.emulator import AuthEmulator
from tests.fakes.fcm import FakeFcm
from tests.support import bearer, fcm_token, new_account, users_family

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

PUSHES = 4
FLOOR = 0.05  # seconds: below this, a tail difference is noise, not a stall


async def _tail_latency(client, headers: dict[str, str], rounds: int = 8) -> float:
    """The slowest of ``rounds`` x 8 concurrent ``GET /users/me`` (p99 of a small sample)."""
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        response = await client.get("/users/me", headers=headers)
        assert response.status_code == 200
        latencies.append(time.perf_counter() - started)

    for _ in range(rounds):
        await asyncio.gather(*(one() for _ in range(8)))
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1]


async def test_a_slow_fcm_neither_stalls_sign_ins_nor_duplicates_pushes(
    app_client, auth_emulator: AuthEmulator, fake_fcm: FakeFcm
):
    account = new_account(auth_emulator)
    headers = bearer(account)
    plugins = {"users": users_family(fake_fcm.url), "journal": {"module": "tests.plugins.journal"}}
    async with app_client(plugins, outbox_dispatcher=True, outbox_interval=0.05) as client:
        assert (await client.post("/users", headers=headers)).status_code == 201
        token = fcm_token()
        device = {"token": token, "platform": "android"}
        assert (
            await client.post("/notifications/devices", json=device, headers=headers)
        ).status_code == 201
        await _tail_latency(client, headers, rounds=2)  # warm: keys, caches, connections
        healthy = await _tail_latency(client, headers)

        fake_fcm.delay = 3.0
        for n in range(PUSHES):
            entry = await client.post(
                "/journal/entries", json={"text": f"run {n}"}, headers=headers
            )
            assert entry.status_code == 201
        deadline = time.monotonic() + 10
        while not fake_fcm.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the first send is at FCM, answering slowly
        slow = await _tail_latency(client, headers)
        assert slow <= 2 * max(healthy, FLOOR), (healthy, slow)

        deadline = time.monotonic() + PUSHES * 3.0 + 20
        while len(fake_fcm.received_by(token)) < PUSHES and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    delivered = [m["data"]["notification_id"] for m in fake_fcm.received_by(token)]
    assert len(delivered) == PUSHES and len(set(delivered)) == PUSHES  # each once
