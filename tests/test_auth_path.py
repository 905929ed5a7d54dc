"""The auth path in steady state: cached keys, in-loop verification, cached tokens, cached
revocation state, and where each of them is bypassed.

Two shapes of app are used. *Production-shaped*: no ``FIREBASE_AUTH_EMULATOR_HOST``,
``IMPERFECT_ENV=production``, Google's certificates served by :class:`FakeGoogleKeys` on a
real socket (``IMPERFECT_FIREBASE_CERTS_URL``) and RS256 tokens minted here; revocation is
off (its lookup would need Google credentials). *Emulator mode*: the session's real Auth
Emulator, whose unsigned tokens are verified like firebase-admin does in emulator mode, and
whose user records the revocation lookups read (counted at the auth executor).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from firebase_admin import auth as firebase_auth
from quart.testing import QuartClient

from core import create_app
from core.auth import FirebaseAuth
from core.auth_settings import AuthSettings
from core.config import CoreSettings
from core.emulator import AuthEmulator
from core.testing import serving
from tests.fakes.fcm import FakeFcm
from tests.fakes.google_keys import FakeGoogleKeys, Signer
from tests.support import bearer, new_account, runtime_of, users_family

PROJECT = "demo-imperfect"
EXAMPLE = {"example": {"entry_point": "example", "settings": {"api_key": "k"}}}
NOTES = "/example/notes"


def auth_of(client: QuartClient) -> FirebaseAuth:
    auth = runtime_of(client).auth
    assert auth is not None
    return auth


def header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def google_keys(signer: Signer) -> Iterator[FakeGoogleKeys]:
    with FakeGoogleKeys(signers=[signer]) as fake:
        yield fake


@pytest.fixture
def production(
    core_settings: Callable[..., CoreSettings],
    google_keys: FakeGoogleKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Any]:
    """``async with production(**env) as client``: a production-shaped app (no emulator)."""

    @asynccontextmanager
    async def build(plugins: Any = None, **env: str) -> AsyncIterator[QuartClient]:
        monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
        monkeypatch.setenv("IMPERFECT_ENV", "production")
        monkeypatch.setenv("IMPERFECT_FIREBASE_CERTS_URL", google_keys.url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = core_settings(plugins or EXAMPLE, environment="production", check_revoked=False)
        async with serving(create_app(settings)) as client:
            yield client

    return build


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --- (a) steady state: no outbound call per request -------------------------------------


async def test_steady_state_makes_no_outbound_calls(production, google_keys, signer) -> None:
    async with production() as client:
        auth = auth_of(client)
        await until(lambda: bool(auth.keys.keys))  # fetched in the background at start-up
        assert google_keys.requests == 1
        token = signer.mint(f"u-{uuid.uuid4().hex[:8]}")
        for _ in range(20):
            assert (await client.get(NOTES, headers=header(token))).status_code == 200
        other = signer.mint(f"u-{uuid.uuid4().hex[:8]}")
        assert (await client.get(NOTES, headers=header(other))).status_code == 200
        assert google_keys.requests == 1  # no key download for any request
        assert auth.stats.verifications == 2  # each token verified once ...
        assert auth.stats.cache_hits == 19  # ... and served from the cache after that
        assert auth.stats.lookups == 0  # revocation is off: never looked up


async def test_revocation_within_the_window_is_not_looked_up_again(
    app_client, auth_emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = firebase_auth.get_user

    def counted(uid: str, app: Any = None) -> Any:
        calls.append(threading.current_thread().name)
        return real(uid, app=app)

    monkeypatch.setattr(firebase_auth, "get_user", counted)
    account = new_account(auth_emulator)
    async with app_client(EXAMPLE) as client:
        auth = auth_of(client)
        # concurrent first requests of one user share one lookup
        responses = await asyncio.gather(
            *(client.get(NOTES, headers=bearer(account)) for _ in range(10))
        )
        assert [r.status_code for r in responses] == [200] * 10
        for _ in range(10):
            assert (await client.get(NOTES, headers=bearer(account))).status_code == 200
        assert auth.stats.lookups == 1 and len(calls) == 1
        # on the auth path's own executor, never asyncio's default pool
        assert calls[0].startswith("imperfect-auth")


# --- (b) revocation: the window, live checks, and revocations made here ------------------


async def test_a_revoked_user_is_refused_within_the_window(
    app_client, auth_emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPERFECT_REVOCATION_WINDOW", "2")
    account = new_account(auth_emulator)
    async with app_client(EXAMPLE) as client:
        assert (await client.get(NOTES, headers=bearer(account))).status_code == 200
        await asyncio.sleep(1.1)  # revocation has one-second granularity
        auth_emulator.revoke(account.uid)
        revoked_at = time.monotonic()
        # documented: within the window the cached state still accepts the token
        assert (await client.get(NOTES, headers=bearer(account))).status_code == 200
        while (response := await client.get(NOTES, headers=bearer(account))).status_code == 200:
            assert time.monotonic() - revoked_at < 2.5, "still accepted after the window"
            await asyncio.sleep(0.1)
        assert response.status_code == 401
        assert (await response.get_json())["code"] == "token_revoked"


async def test_a_recent_sign_in_route_checks_revocation_live(
    app_client, auth_emulator: AuthEmulator, fake_fcm: FakeFcm
) -> None:
    account = new_account(auth_emulator)
    plugins = {"root": {"module": "plugins.root"}, "users": users_family(fake_fcm.url)}
    async with app_client(plugins) as client:
        auth = auth_of(client)
        assert (await client.post("/users", headers=bearer(account))).status_code == 201
        assert (await client.get("/users/me", headers=bearer(account))).status_code == 200
        await asyncio.sleep(1.1)
        auth_emulator.revoke(account.uid)
        # an ordinary route takes the cached state (window 300 s) ...
        assert (await client.get("/users/me", headers=bearer(account))).status_code == 200
        # ... account deletion looks it up live, once (the route, then deletion, share it)
        live = auth.stats.live_lookups
        refused = await client.delete("/account", headers=bearer(account))
        assert refused.status_code == 401
        assert (await refused.get_json())["code"] == "token_revoked"
        assert auth.stats.live_lookups == live + 1
        assert auth_emulator.lookup(account.uid) is not None  # nothing was deleted
        fresh = auth_emulator.sign_in(account.email, "pass-word-1")
        assert (await client.delete("/account", headers=bearer(fresh))).status_code == 204
        assert auth.stats.live_lookups == live + 2
        # deleted by this service: refused at once on every route, not after the window
        gone = await client.get("/users/me", headers=bearer(fresh))
        assert gone.status_code == 401
        assert (await gone.get_json())["code"] == "user_not_found"


async def test_a_revocation_made_here_is_effective_at_once(
    app_client, auth_emulator: AuthEmulator
) -> None:
    account = new_account(auth_emulator)
    async with app_client(EXAMPLE) as client:
        assert (await client.get(NOTES, headers=bearer(account))).status_code == 200
        await asyncio.sleep(1.1)
        await auth_of(client).revoke(account.uid)
        response = await client.get(NOTES, headers=bearer(account))
        assert response.status_code == 401
        assert (await response.get_json())["code"] == "token_revoked"


def _instance(project: str = PROJECT, **settings: Any) -> FirebaseAuth:
    core = CoreSettings(firebase_project_id=project, environment="test")
    return FirebaseAuth(core, AuthSettings(**settings))


async def test_revocations_and_deletions_reach_other_instances_through_redis(
    auth_emulator: AuthEmulator, redis_url: str
) -> None:
    channel = f"test-auth-{uuid.uuid4().hex[:12]}"
    here = _instance(redis_url=redis_url, redis_channel=channel)
    there = _instance(redis_url=redis_url, redis_channel=channel)
    try:
        await until(lambda: here._subscription.connected and there._subscription.connected)
        revoked, deleted = new_account(auth_emulator), new_account(auth_emulator)
        for account in (revoked, deleted):
            await there.identify(f"Bearer {account.id_token}")
        lookups = there.stats.lookups
        await asyncio.sleep(1.1)
        await here.revoke(revoked.uid)
        await here.delete_user(deleted.uid)
        await until(lambda: there.stats.invalidations == 2)
        with pytest.raises(Exception) as refused:
            await there.identify(f"Bearer {revoked.id_token}")
        assert getattr(refused.value, "code", None) == "token_revoked"
        with pytest.raises(Exception) as gone:
            await there.identify(f"Bearer {deleted.id_token}")
        assert getattr(gone.value, "code", None) == "user_not_found"
        assert there.stats.lookups == lookups + 2
        assert here.stats.invalidations == 2  # its own messages are not applied twice
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_malformed_invalidation_message_is_ignored(
    auth_emulator: AuthEmulator, redis_url: str
) -> None:
    channel = f"test-auth-{uuid.uuid4().hex[:12]}"
    auth = _instance(redis_url=redis_url, redis_channel=channel)
    try:
        await until(lambda: auth._subscription.connected)
        client = redis.Redis.from_url(redis_url)
        try:
            client.publish(channel, b"not json")
            client.publish(channel, json.dumps({"uid": "someone", "from": "elsewhere"}))
        finally:
            client.close()
        await until(lambda: auth._subscription.received == 2)
        assert auth.stats.invalidations == 1
    finally:
        await auth.aclose()


async def test_revocation_checking_off_never_looks_up(
    app_client, auth_emulator: AuthEmulator, fake_fcm: FakeFcm
) -> None:
    account = new_account(auth_emulator)
    plugins = {"root": {"module": "plugins.root"}, "users": users_family(fake_fcm.url)}
    async with app_client(plugins, check_revoked=False) as client:
        assert (await client.post("/users", headers=bearer(account))).status_code == 201
        assert (await client.delete("/account", headers=bearer(account))).status_code == 204
        assert auth_of(client).stats.lookups == 0


# --- (c) the auth path never blocks the event loop ----------------------------------------


async def test_a_slow_key_server_never_blocks_the_loop(production, google_keys, signer) -> None:
    google_keys.delay = 2.0
    token = signer.mint("patient-user")
    gaps: list[float] = []

    async def probe(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with production() as client:
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(stop))
        started = time.monotonic()
        finished: dict[str, float] = {}

        async def timed(name: str, path: str, headers: dict[str, str]) -> int:
            response = await client.get(path, headers=headers)
            finished[name] = time.monotonic() - started
            return response.status_code

        authenticated = [
            asyncio.create_task(timed(f"auth{i}", NOTES, header(token))) for i in range(5)
        ]
        await asyncio.sleep(0.05)
        assert await timed("healthz", "/healthz", {}) == 200
        statuses = await asyncio.gather(*authenticated)
        stop.set()
        await prober

    assert statuses == [200] * 5
    assert finished["healthz"] < 0.5  # answered while the keys were still downloading
    assert all(finished[f"auth{i}"] > finished["healthz"] for i in range(5))
    assert all(1.0 < finished[f"auth{i}"] < 4.0 for i in range(5))  # waited for the keys
    assert google_keys.requests == 1  # one shared download for every waiting request
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.3f}s"


async def test_keys_are_refreshed_in_the_background_and_kept_on_failure(
    production, google_keys, signer
) -> None:
    google_keys.max_age = 1
    env = {
        "IMPERFECT_FIREBASE_CERTS_MIN_INTERVAL": "0",
        "IMPERFECT_FIREBASE_CERTS_RETRY_INITIAL": "0.2",
    }
    token = signer.mint("refreshed-user")
    async with production(**env) as client:
        auth = auth_of(client)
        await until(lambda: google_keys.requests >= 2)  # refreshed before max-age ran out
        google_keys.fail = 503
        failed = auth.stats.key_fetch_failures
        await until(lambda: auth.stats.key_fetch_failures >= failed + 2)  # retried
        assert auth.keys.keys  # the old keys are kept ...
        assert (await client.get(NOTES, headers=header(token))).status_code == 200  # ... used
        # a rotation: a new key appears, the old one is withdrawn
        newcomer = Signer()
        google_keys.signers = [newcomer]
        google_keys.fail = None
        await until(lambda: newcomer.kid in auth.keys.keys)
        assert auth.cached_tokens == 0  # tokens of the withdrawn key left the cache
        assert (await client.get(NOTES, headers=header(token))).status_code == 401
        fresh = newcomer.mint("refreshed-user")
        assert (await client.get(NOTES, headers=header(fresh))).status_code == 200


async def test_no_keys_at_all_is_503_and_a_later_download_recovers(
    production, google_keys, signer
) -> None:
    google_keys.fail = 500
    env = {"IMPERFECT_FIREBASE_CERTS_RETRY_INITIAL": "0.2"}
    async with production(**env) as client:
        auth = auth_of(client)
        await until(lambda: auth.stats.key_fetch_failures >= 1)
        response = await client.get(NOTES, headers=header(signer.mint("cold-user")))
        assert response.status_code == 503
        assert (await response.get_json())["code"] == "auth_unavailable"
        with pytest.raises(RuntimeError, match="no Google token-signing keys yet"):
            auth.status()
        google_keys.fail = None
        await until(lambda: bool(auth.keys.keys))
        assert auth.status().startswith("1 keys")
        response = await client.get(NOTES, headers=header(signer.mint("cold-user")))
        assert response.status_code == 200


# --- the checks, in firebase-admin's order --------------------------------------------


def _bad_tokens(signer: Signer, stranger: Signer) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    uid = "checked-user"
    return {
        "no kid": (signer.mint(uid, header={"alg": "RS256", "typ": "JWT"}), "invalid_token"),
        "unknown kid": (signer.mint(uid, header={"alg": "RS256", "kid": "nope"}), "invalid_token"),
        "alg HS256": (
            signer.mint(uid, header={"alg": "HS256", "kid": signer.kid}),
            "invalid_token",
        ),
        "alg none": (signer.mint(uid, header={"alg": "none", "kid": signer.kid}), "invalid_token"),
        "other aud": (signer.mint(uid, aud="demo-other"), "invalid_token"),
        "other iss": (signer.mint(uid, iss="https://securetoken.google.com/x"), "invalid_token"),
        "custom token": (
            signer.mint(
                uid,
                aud="https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit",
            ),
            "invalid_token",
        ),
        "empty sub": (signer.mint("", user_id="x"), "invalid_token"),
        "long sub": (signer.mint("u" * 129), "invalid_token"),
        "foreign key": (
            stranger.mint(uid, header={"alg": "RS256", "kid": signer.kid}),
            "invalid_token",
        ),
        "tampered": (signer.mint(uid)[:-6] + "AAAAAA", "invalid_token"),
        "expired": (signer.mint(uid, iat=now - 7200, exp=now - 3600), "token_expired"),
        "iat in future": (signer.mint(uid, iat=now + 600), "invalid_token"),
        "auth_time in future": (signer.mint(uid, auth_time=now + 600), "invalid_token"),
        "exp a string": (signer.mint(uid, exp="later"), "invalid_token"),
        "no iat": (signer.mint(uid, iat=None), "invalid_token"),
        "two parts": ("abc.def", "invalid_token"),
    }


async def test_rs256_tokens_are_checked_like_firebase_admin(production, signer) -> None:
    stranger = Signer()
    async with production() as client:
        good = await client.get(NOTES, headers=header(signer.mint("checked-user")))
        assert good.status_code == 200
        for name, (token, code) in _bad_tokens(signer, stranger).items():
            response = await client.get(NOTES, headers=header(token))
            assert response.status_code == 401, name
            assert (await response.get_json())["code"] == code, name
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
        other = await client.get(NOTES, headers=header(signer.mint("x", aud="demo-other")))
        assert "another Firebase project" in (await other.get_json())["detail"]


async def test_an_unknown_kid_refreshes_the_keys_at_most_once_per_interval(
    production, google_keys, signer
) -> None:
    env = {"IMPERFECT_FIREBASE_CERTS_MIN_INTERVAL": "0.5"}
    async with production(**env) as client:
        auth = auth_of(client)
        await until(lambda: bool(auth.keys.keys))
        await asyncio.sleep(0.6)
        newcomer = Signer()
        google_keys.signers = [signer, newcomer]
        token = newcomer.mint("early-user")
        first = await client.get(NOTES, headers=header(token))
        assert first.status_code == 401  # not waited for: the refresh runs in the background
        for _ in range(5):
            await client.get(NOTES, headers=header(newcomer.mint("someone", iat=int(time.time()))))
        await until(lambda: newcomer.kid in auth.keys.keys)
        assert google_keys.requests == 2  # one refresh for all the unknown-kid tokens
        assert (await client.get(NOTES, headers=header(token))).status_code == 200


# --- (d) the token cache is bounded and never serves an expired token ---------------------


async def test_the_token_cache_is_bounded(production, signer) -> None:
    async with production(IMPERFECT_AUTH_TOKEN_CACHE_SIZE="3") as client:
        auth = auth_of(client)
        tokens = [signer.mint(f"user-{i}") for i in range(5)]
        for token in tokens:
            assert (await client.get(NOTES, headers=header(token))).status_code == 200
        assert auth.cached_tokens == 3
        assert auth.stats.verifications == 5
        await client.get(NOTES, headers=header(tokens[-1]))  # the newest: still cached
        assert auth.stats.verifications == 5 and auth.stats.cache_hits == 1
        await client.get(NOTES, headers=header(tokens[0]))  # the oldest: evicted
        assert auth.stats.verifications == 6
        assert auth.cached_tokens == 3


async def test_an_expired_token_is_not_served_from_the_cache(production, signer) -> None:
    async with production(IMPERFECT_AUTH_CLOCK_SKEW="0") as client:
        auth = auth_of(client)
        token = signer.mint("short-lived", exp=int(time.time()) + 2)
        assert (await client.get(NOTES, headers=header(token))).status_code == 200
        assert (await client.get(NOTES, headers=header(token))).status_code == 200
        assert auth.stats.cache_hits == 1
        await asyncio.sleep(2.2)
        response = await client.get(NOTES, headers=header(token))
        assert response.status_code == 401
        assert (await response.get_json())["code"] == "token_expired"
        assert auth.stats.cache_hits == 1 and auth.stats.verifications == 2


# --- (e) emulator mode ------------------------------------------------------------------


async def test_emulator_tokens_verify_in_the_loop_and_are_cached(
    app_client, auth_emulator: AuthEmulator
) -> None:
    account = new_account(auth_emulator)
    async with app_client(EXAMPLE) as client:
        auth = auth_of(client)
        assert auth.emulated and not auth.keys.running  # no key downloads at all
        for _ in range(3):
            assert (await client.get(NOTES, headers=bearer(account))).status_code == 200
        assert auth.stats.verifications == 1 and auth.stats.cache_hits == 2
