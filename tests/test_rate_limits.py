"""Rate limits declared on ``@endpoint``: per user, per client IP, per route, several windows.

The ``throttled`` test family's handlers count their calls, so a refused request is shown
never to reach its handler. The counters live in memory unless a test points the limiter
at Redis; two ``imperfect serve`` processes sharing one Redis spend one budget.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from werkzeug.datastructures import Headers

from core import RateLimit, endpoint
from core.emulator import AuthEmulator
from core.endpoints import declared_endpoint
from core.ratelimit import client_ip
from tests.plugins.throttled import routes
from tests.support import ROOT, bearer, new_account, runtime_of
from tests.support.ports import free_port
from tests.support.servers import serving_processes

PLUGINS = {"throttled": {"module": "tests.plugins.throttled"}}
SETTINGS_ENV = (
    "IMPERFECT_RATE_LIMITS",
    "IMPERFECT_RATE_LIMIT_REDIS_URL",
    "IMPERFECT_RATE_LIMIT_KEY_PREFIX",
    "IMPERFECT_RATE_LIMIT_REDIS_TIMEOUT",
    "IMPERFECT_TRUSTED_PROXIES",
)


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No rate limit setting leaks in from the shell; the call counters start at zero."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    routes.CALLS.clear()
    yield


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test-rl-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()


def peer(address: str, **headers: str) -> dict[str, Any]:
    """Request options for a client connecting from ``address``."""
    return {"scope_base": {"client": (address, 40000)}, "headers": headers}


def limited(response: Any) -> bool:
    return response.status_code == 429


# --- declaration --------------------------------------------------------------------------


def test_the_declaration_is_on_the_endpoint_and_documents_429() -> None:
    declared = declared_endpoint(routes.mine)
    assert declared is not None
    assert [(w.amount, w.window, w.per) for w in declared.rate_limits] == [
        (3, 60, "user"),
        (5, 3600, "user"),
    ]
    assert 429 in declared.errors
    assert declared_endpoint(routes.note).errors == (429,)
    assert str(RateLimit("10/minute", per="ip")) == "10 per 1 minute per ip"


def test_impossible_declarations_are_refused_naming_the_handler() -> None:
    async def open_door() -> None: ...

    with pytest.raises(TypeError, match=r"open_door is public, so it cannot be rate limited per"):
        endpoint(auth="public", rate_limits=("10/minute",))(open_door)
    with pytest.raises(TypeError, match=r"open_door is public"):
        endpoint(auth="public", rate_limits=(RateLimit("1/second", per="user"),))(open_door)
    with pytest.raises(TypeError, match=r"open_door: rate limit '10/minit'"):
        endpoint(auth="public", rate_limits=("10/minit",), rate_limit_by="ip")(open_door)
    with pytest.raises(TypeError, match=r"open_door: rate limit '1/minute;9/hour'"):
        endpoint(auth="public", rate_limits=("1/minute;9/hour",), rate_limit_by="ip")(open_door)
    with pytest.raises(TypeError, match=r"open_door declares the rate limit .* twice"):
        endpoint(auth="public", rate_limits=("1/minute", "1 per 60 seconds"), rate_limit_by="ip")(
            open_door
        )
    with pytest.raises(ValueError, match=r"per='everyone'"):
        RateLimit("1/minute", per="everyone")  # type: ignore[arg-type]


async def test_the_spec_documents_429_on_limited_routes_only(app_client) -> None:
    async with app_client(PLUGINS) as client:
        spec = await (await client.get("/openapi.json")).get_json()
    assert "429" in spec["paths"]["/throttled/mine"]["get"]["responses"]
    assert "429" in spec["paths"]["/throttled/notes"]["post"]["responses"]
    assert "429" not in spec["paths"]["/healthz"]["get"]["responses"]


# --- per user -------------------------------------------------------------------------------


async def test_a_user_over_the_budget_gets_429_with_retry_after(app_client, auth_emulator) -> None:
    a, b = bearer(new_account(auth_emulator)), bearer(new_account(auth_emulator))
    async with app_client(PLUGINS) as client:
        remaining = []
        for _ in range(3):
            response = await client.get("/throttled/mine", headers=a)
            assert response.status_code == 200
            assert response.headers["RateLimit-Limit"] == "3"
            assert response.headers["RateLimit-Policy"] == "3;w=60, 5;w=3600"
            assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
            remaining.append(response.headers["RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]

        refused = await client.get("/throttled/mine", headers=a)
        assert refused.status_code == 429
        body = await refused.get_json()
        assert body["code"] == "rate_limited"
        assert "3 per 1 minute per user" in body["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.headers["RateLimit-Limit"] == "3"
        assert refused.headers["X-Request-ID"]
        assert routes.CALLS["mine"] == 3  # the refused request never reached the handler

        other = await client.get("/throttled/mine", headers=b)  # another user's own budget
        assert other.status_code == 200 and other.headers["RateLimit-Remaining"] == "2"
        assert routes.CALLS["mine"] == 4


async def test_authentication_comes_before_the_limit(app_client) -> None:
    async with app_client(PLUGINS) as client:
        for _ in range(5):
            response = await client.get("/throttled/mine")
            assert response.status_code == 401 and "RateLimit-Limit" not in response.headers


async def test_per_user_and_per_route_windows_together(app_client, auth_emulator) -> None:
    a, b = bearer(new_account(auth_emulator)), bearer(new_account(auth_emulator))
    async with app_client(PLUGINS) as client:
        assert [(await client.get("/throttled/mixed", headers=a)).status_code for _ in "123"] == [
            200,
            200,
            429,  # a's own two
        ]
        assert (await client.get("/throttled/mixed", headers=b)).status_code == 200
        refused = await client.get("/throttled/mixed", headers=b)  # everyone's three are spent
        assert refused.status_code == 429
        assert "3 per 1 minute in all" in (await refused.get_json())["detail"]
        assert routes.CALLS["mixed"] == 3


# --- per IP, per route, several windows -----------------------------------------------------


async def test_each_client_address_has_its_own_budget(app_client) -> None:
    async with app_client(PLUGINS) as client:
        for _ in range(3):
            assert (await client.get("/throttled/ip", **peer("203.0.113.5"))).status_code == 200
        assert limited(await client.get("/throttled/ip", **peer("203.0.113.5")))
        # without trusted proxies, X-Forwarded-For is the client's to write and is ignored
        spoofed = peer("203.0.113.5", **{"X-Forwarded-For": "192.0.2.99"})
        assert limited(await client.get("/throttled/ip", **spoofed))
        assert (await client.get("/throttled/ip", **peer("203.0.113.6"))).status_code == 200
        assert routes.CALLS["ip"] == 4


async def test_behind_a_trusted_proxy_the_forwarded_client_counts(app_client, monkeypatch) -> None:
    monkeypatch.setenv("IMPERFECT_TRUSTED_PROXIES", "1")
    proxy = "10.0.0.2"
    async with app_client(PLUGINS) as client:
        for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
            # the client forges the leftmost hop; the proxy appends the address it saw
            via = peer(proxy, **{"X-Forwarded-For": f"{forged}, 198.51.100.7"})
            assert (await client.get("/throttled/ip", **via)).status_code == 200
        via = peer(proxy, **{"X-Forwarded-For": "4.4.4.4, 198.51.100.7"})
        assert limited(await client.get("/throttled/ip", **via))
        other = peer(proxy, **{"X-Forwarded-For": "198.51.100.8"})
        assert (await client.get("/throttled/ip", **other)).status_code == 200


async def test_a_per_route_budget_is_shared_by_everyone(app_client) -> None:
    async with app_client(PLUGINS) as client:
        for n in range(4):
            assert (
                await client.get("/throttled/shared", **peer(f"192.0.2.{n}"))
            ).status_code == 200
        assert limited(await client.get("/throttled/shared", **peer("192.0.2.200")))
        assert routes.CALLS["shared"] == 4


async def test_the_limit_comes_before_the_body_and_marks_errors_too(app_client) -> None:
    async with app_client(PLUGINS) as client:
        ok = await client.post("/throttled/notes", json={"text": "hi"}, **peer("192.0.2.1"))
        assert ok.status_code == 204 and ok.headers["RateLimit-Remaining"] == "1"
        refused = await client.post("/throttled/notes", json={"text": "no"}, **peer("192.0.2.1"))
        assert refused.status_code == 409 and refused.headers["RateLimit-Remaining"] == "0"
        # over the budget, a body that would not even validate is refused with 429, not 422
        bad = await client.post("/throttled/notes", json={"nope": 1}, **peer("192.0.2.1"))
        assert bad.status_code == 429 and (await bad.get_json())["code"] == "rate_limited"
        assert routes.CALLS["notes"] == 2


async def test_every_window_holds_and_a_refusal_spends_nothing(app_client) -> None:
    """``2 per 1 second`` inside ``3/minute``: the short window refuses first, then the long."""
    async with app_client(PLUGINS) as client:
        at = peer("192.0.2.50")
        assert [(await client.get("/throttled/burst", **at)).status_code for _ in "123"] == [
            200,
            200,
            429,
        ]
        short = await client.get("/throttled/burst", **at)
        assert limited(short) and short.headers["Retry-After"] == "1"
        await asyncio.sleep(1.1)
        assert (await client.get("/throttled/burst", **at)).status_code == 200
        assert routes.CALLS["burst"] == 3  # the refusals spent nothing of the minute's three
        await asyncio.sleep(1.1)
        long = await client.get("/throttled/burst", **at)
        assert limited(long)
        assert long.headers["RateLimit-Limit"] == "3"
        assert 50 <= int(long.headers["Retry-After"]) <= 60
        assert routes.CALLS["burst"] == 3


async def test_rate_limits_can_be_switched_off(app_client, monkeypatch) -> None:
    monkeypatch.setenv("IMPERFECT_RATE_LIMITS", "0")
    async with app_client(PLUGINS) as client:
        for _ in range(6):
            response = await client.get("/throttled/shared")
            assert response.status_code == 200 and "RateLimit-Limit" not in response.headers


# --- the client address ---------------------------------------------------------------------


class _Request:
    def __init__(self, remote_addr: str | None, *forwarded: str) -> None:
        self.remote_addr = remote_addr
        self.headers = Headers([("X-Forwarded-For", value) for value in forwarded])


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        (0, "203.0.113.9", ["1.1.1.1"], "203.0.113.9"),  # no proxy: the header is ignored
        (1, "10.0.0.1", ["1.1.1.1, 2.2.2.2"], "2.2.2.2"),  # the hop the proxy appended
        (2, "10.0.0.1", ["1.1.1.1, 2.2.2.2"], "1.1.1.1"),
        (2, "10.0.0.1", ["forged, 1.1.1.1, 2.2.2.2"], "1.1.1.1"),  # left of it: never believed
        (1, "10.0.0.1", ["1.1.1.1", "2.2.2.2"], "2.2.2.2"),  # several header lines are one list
        (2, "10.0.0.1", ["2.2.2.2"], "10.0.0.1"),  # fewer hops than proxies: the peer
        (1, "10.0.0.1", ["1.1.1.1, not-an-ip"], "10.0.0.1"),  # garbage: the peer
        (1, "10.0.0.1", [], "10.0.0.1"),
        (1, "10.0.0.1", ["203.0.113.7:51234"], "203.0.113.7"),  # with a port
        (1, "10.0.0.1", ["[2001:db8:1:2::7]:443"], "2001:db8:1:2::/64"),
        (0, "2001:db8:1:2:aaaa::1", [], "2001:db8:1:2::/64"),  # IPv6 counts by its /64
        (0, "::ffff:192.0.2.1", [], "192.0.2.1"),  # IPv4-mapped IPv6 is the IPv4 address
        (0, "<local>", [], "unknown"),
        (0, None, [], "unknown"),
    ],
)
def test_the_client_address(
    trusted: int, remote: str | None, forwarded: list[str], expected: str
) -> None:
    assert client_ip(_Request(remote, *forwarded), trusted) == expected  # type: ignore[arg-type]


# --- Redis ------------------------------------------------------------------------------------


async def test_counters_in_redis(app_client, redis_url, key_prefix, monkeypatch) -> None:
    monkeypatch.setenv("IMPERFECT_RATE_LIMIT_REDIS_URL", redis_url)
    monkeypatch.setenv("IMPERFECT_RATE_LIMIT_KEY_PREFIX", key_prefix)
    async with app_client(PLUGINS) as client:
        assert runtime_of(client).rate_limiter.shared
        for _ in range(4):
            assert (await client.get("/throttled/shared")).status_code == 200
        refused = await client.get("/throttled/shared")
        assert limited(refused) and 1 <= int(refused.headers["Retry-After"]) <= 60
    with redis.Redis.from_url(redis_url) as inspect:
        keys = inspect.keys(f"{key_prefix}:*")
    assert [key.decode() for key in keys] == [
        f"{key_prefix}:LIMITER/tests.plugins.throttled.routes.shared/all/4/1/minute"
    ]


async def test_an_unreachable_redis_lets_requests_through(app_client, monkeypatch, caplog) -> None:
    monkeypatch.setenv("IMPERFECT_RATE_LIMIT_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    caplog.set_level(logging.WARNING, logger="imperfect.ratelimit")
    async with app_client(PLUGINS) as client:
        for _ in range(8):  # twice the budget
            response = await client.get("/throttled/shared")
            assert response.status_code == 200 and "RateLimit-Limit" not in response.headers
    assert routes.CALLS["shared"] == 8
    warnings = [r.getMessage() for r in caplog.records if r.name == "imperfect.ratelimit"]
    assert any("does not answer" in w for w in warnings)  # at start-up
    failed = [w for w in warnings if "storage failed" in w]
    assert len(failed) == 1  # once, not once per request


def test_two_instances_sharing_redis_spend_one_budget(
    tmp_path: Path,
    database_url: str,
    auth_emulator: AuthEmulator,
    redis_url: str,
    key_prefix: str,
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "FIREBASE_PROJECT_ID": auth_emulator.project_id,
        "IMPERFECT_ENV": "test",
        "IMPERFECT_RATE_LIMIT_REDIS_URL": redis_url,
        "IMPERFECT_RATE_LIMIT_KEY_PREFIX": key_prefix,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with serving_processes(tmp_path, PLUGINS, [free_port(), free_port()], env) as (a, b):
        # per route: four in all, whichever instance serves them
        answers = [httpx.get(f"{base}/throttled/shared") for base in (a, b, a, b)]
        assert [r.status_code for r in answers] == [200] * 4
        assert [r.headers["RateLimit-Remaining"] for r in answers] == ["3", "2", "1", "0"]
        for base in (a, b):
            refused = httpx.get(f"{base}/throttled/shared")
            assert refused.status_code == 429, base
            assert refused.json()["code"] == "rate_limited"
            assert 1 <= int(refused.headers["Retry-After"]) <= 60

        # per user: the caller's three a minute, across both
        headers = bearer(new_account(auth_emulator))
        codes = [
            httpx.get(f"{base}/throttled/mine", headers=headers).status_code
            for base in (a, b, a, b)
        ]
        assert codes == [200, 200, 200, 429]
