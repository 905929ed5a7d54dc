"""Firebase ID-token authentication that costs almost nothing in steady state.

* **Keys.** Google's public keys (x509 certificates by key id) are fetched with httpx on
  the event loop, in the background, and refreshed before their ``Cache-Control: max-age``
  runs out; a failed refresh keeps the keys in hand and retries with backoff. A request
  waits on a download only on a cold start, when there are no keys yet (one shared
  download for every request that needs it).
* **Verification** runs in the loop, on the keys in hand: firebase-admin's checks, in its
  order (``kid``, ``alg`` RS256, ``aud``, ``iss``, ``sub``, the RS256 signature, ``iat``
  and ``exp`` with a small clock skew), plus ``auth_time`` not in the future, then
  :func:`checked_claims`. No network and no thread. With ``FIREBASE_AUTH_EMULATOR_HOST``
  (development and test only) tokens are unsigned and verified as firebase-admin does in
  emulator mode: without ``kid``/``alg``/signature, the claim checks all the same.
* **Verified tokens** are cached by SHA-256 until their ``exp`` in a bounded LRU, so a
  repeated token costs a dictionary lookup.
* **Revocation.** A user's "valid after" time, disabled flag and existence are cached per
  uid for ``IMPERFECT_REVOCATION_WINDOW`` seconds (a revoked token is accepted for at most
  that long), looked up with firebase-admin's ``get_user`` on a bounded executor of the
  auth path's own (the bulkhead), one lookup per uid at a time. Routes that need a recent
  sign-in, and account deletion, look it up live. When this service revokes or deletes a
  user, the cached state is dropped at once, on every instance through Redis when
  ``IMPERFECT_AUTH_REDIS_URL`` (or ``IMPERFECT_RATE_LIMIT_REDIS_URL``) is set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import firebase_admin
import google.auth.credentials
import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from firebase_admin import auth as firebase_auth
from firebase_admin.exceptions import FirebaseError
from google.auth.exceptions import GoogleAuthError

from core.auth_settings import AuthSettings
from core.config import EMULATOR_HOST_ENV, CoreSettings, check_emulator_allowed
from core.errors import ApiError

log = logging.getLogger("imperfect.auth")

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="imperfect"'}
T = TypeVar("T")
_BACKGROUND: set[asyncio.Task[Any]] = set()  # tasks started and not awaited: keep them alive


@dataclass(frozen=True)
class Identity:
    """A caller whose Firebase ID token verified: the uid and every claim.

    ``checked_live`` is true when the user's revocation state was looked up at Firebase
    for this very request (routes that need a recent sign-in), not taken from the cache.
    """

    uid: str
    claims: Mapping[str, Any]
    checked_live: bool = field(default=False, compare=False)

    @property
    def email(self) -> str | None:
        return self.claims.get("email")

    @property
    def auth_time(self) -> int | None:
        value = self.claims.get("auth_time")
        return value if type(value) is int else None


def unauthenticated(code: str, detail: str) -> ApiError:
    return ApiError(401, code, detail, headers=BEARER_CHALLENGE)


def _unavailable(detail: str) -> ApiError:
    return ApiError(503, "auth_unavailable", detail)


@dataclass
class AuthStats:
    """Counters of the auth path (what it did since start-up), for tests and metrics."""

    verifications: int = 0  # tokens verified (signature and claims): cache misses, good or bad
    cache_hits: int = 0  # tokens served from the verified-token cache
    key_fetches: int = 0  # downloads of Google's certificates attempted
    key_fetch_failures: int = 0
    lookups: int = 0  # get_user calls made on the auth executor (revocation state)
    live_lookups: int = 0  # of which live (recent sign-in routes, account deletion)
    invalidations: int = 0  # users whose cached state was dropped (here or from Redis)


# --- Google's public keys ----------------------------------------------------------------


class KeyFetchError(Exception):
    """Google's certificates could not be downloaded or read."""


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def cache_lifetime(headers: Mapping[str, str], default: float) -> float:
    """Seconds the answer stays fresh: ``Cache-Control: max-age`` less ``Age``."""
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    if match is None:
        return default
    age = headers.get("age", "0").strip()
    return max(0.0, int(match.group(1)) - (int(age) if age.isdigit() else 0))


def parse_certificates(document: Any) -> dict[str, rsa.RSAPublicKey]:
    """``{kid: PEM certificate}`` -> ``{kid: RSA public key}``; else :class:`KeyFetchError`."""
    if not isinstance(document, dict) or not document:
        raise KeyFetchError("the certificates document is not a non-empty JSON object")
    keys: dict[str, rsa.RSAPublicKey] = {}
    for kid, pem in document.items():
        if not isinstance(kid, str) or not isinstance(pem, str):
            raise KeyFetchError("the certificates document maps something but key ids to PEM")
        try:
            key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        except ValueError as error:
            raise KeyFetchError(f"certificate {kid!r} does not parse: {error}") from error
        if isinstance(key, rsa.RSAPublicKey):
            keys[kid] = key
    if not keys:
        raise KeyFetchError("the certificates document holds no RSA key")
    return keys


class GoogleKeys:
    """Google's token-signing public keys, held in memory and refreshed in the background.

    One task (:meth:`start`) fetches the certificates, sleeps until shortly before their
    ``max-age`` runs out (never less than ``certs_min_interval``), and fetches again; a
    failed fetch keeps the keys in hand and retries after a jittered backoff doubling up to
    ``certs_retry_max``. Every download is one shared task: concurrent callers of
    :meth:`ready` on a cold start wait for the same one.
    """

    def __init__(self, settings: AuthSettings, stats: AuthStats) -> None:
        self.settings = settings
        self.stats = stats
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        self.fetched_at = 0.0  # monotonic time of the last good fetch
        self.expires_at = 0.0  # ... plus the answer's max-age
        self.last_error: str | None = None
        self.on_change: Callable[[set[str]], None] | None = None  # called with removed kids
        self._attempted_at = -float("inf")
        self._failed_at = -float("inf")
        self._download: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name="imperfect-auth-keys"
            )

    def cancel(self) -> list[asyncio.Task[None]]:
        tasks = [task for task in (self._task, self._download) if task is not None]
        for task in tasks:
            task.cancel()
        self._task = self._download = None
        return tasks

    async def ready(self) -> dict[str, rsa.RSAPublicKey]:
        """The keys; on a cold start, after the (shared) first download. Else 503."""
        if self.keys:
            return self.keys
        self.start()
        idle = self._download is None or self._download.done()
        if idle and time.monotonic() - self._failed_at < self.settings.certs_retry_initial:
            # the last download failed a moment ago; the refresh task retries with backoff
            raise _unavailable(
                "Google's token-signing keys could not be fetched to verify the token."
            )
        try:
            await asyncio.shield(self.download())
        except KeyFetchError as error:
            raise _unavailable(
                "Google's token-signing keys could not be fetched to verify the token."
            ) from error
        return self.keys

    def download(self) -> asyncio.Task[None]:
        """The download in progress, or a new one."""
        if self._download is None or self._download.done():
            self._download = asyncio.get_running_loop().create_task(
                self._fetch(), name="imperfect-auth-keys-fetch"
            )
        return self._download

    def refresh_soon(self) -> None:
        """A token named a key we do not have: fetch again, at most once per min interval."""
        if time.monotonic() - self._attempted_at >= self.settings.certs_min_interval:
            task = self.download()
            task.add_done_callback(_consume_exception)

    async def _refresh_forever(self) -> None:
        settings = self.settings
        backoff = settings.certs_retry_initial
        while True:
            try:
                await asyncio.shield(self.download())
            except KeyFetchError:
                delay = backoff * (0.5 + random.random())
                backoff = min(backoff * 2, settings.certs_retry_max)
            else:
                backoff = settings.certs_retry_initial
                lifetime = self.expires_at - self.fetched_at
                # refresh before the keys go stale: a minute early (a tenth, if that is less)
                delay = max(settings.certs_min_interval, lifetime - min(lifetime * 0.1, 60), 1.0)
            await asyncio.sleep(delay)

    async def _fetch(self) -> None:
        settings = self.settings
        self._attempted_at = time.monotonic()
        self.stats.key_fetches += 1
        try:
            async with httpx.AsyncClient(timeout=settings.certs_timeout) as client:
                response = await client.get(settings.certs_url)
            if response.status_code != 200:
                raise KeyFetchError(f"HTTP {response.status_code}")
            keys = parse_certificates(response.json())
            lifetime = cache_lifetime(response.headers, settings.certs_default_max_age)
        except (httpx.HTTPError, ValueError, KeyFetchError) as error:
            self.stats.key_fetch_failures += 1
            self._failed_at = time.monotonic()
            self.last_error = str(error) or type(error).__name__
            log.warning(
                "Google's certificates (%s) could not be fetched: %s; %s",
                settings.certs_url,
                self.last_error,
                "keeping the keys in hand" if self.keys else "no keys yet",
            )
            raise KeyFetchError(self.last_error) from error
        removed = set(self.keys) - set(keys)
        self.keys, self.last_error = keys, None
        self.fetched_at = time.monotonic()
        self.expires_at = self.fetched_at + lifetime
        if removed and self.on_change is not None:
            self.on_change(removed)


def _consume_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # logged by _fetch already


# --- Token verification (in the loop) ----------------------------------------------------

_INVALID_CLAIMS = "This ID token's claims are not those of a Firebase ID token."
_INVALID = "This is not a valid Firebase ID token."
_OTHER_PROJECT = "This ID token was issued for another Firebase project."
_MAX_UID = 128  # Firebase's own limit on a uid
_MAX_TOKEN = 16_384
_CUSTOM_TOKEN_AUDIENCE = (
    "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"
)
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _segment(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is a subclass of int; a JSON true is not a time


def decode_token(
    token: str,
    *,
    project_id: str,
    keys: Mapping[str, rsa.RSAPublicKey] | None,
    now: float,
    clock_skew: int,
    on_unknown_kid: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Verify ``token`` as firebase-admin does; return its claims (with ``uid``) and ``kid``.

    ``keys`` None means emulator mode: the token is unsigned, so ``kid``, ``alg`` and the
    signature are not checked; every claim check still is. Raises 401 ``invalid_token`` or
    ``token_expired``.
    """
    parts = token.split(".")
    if len(token) > _MAX_TOKEN or len(parts) != 3:
        raise unauthenticated("invalid_token", _INVALID)
    try:
        header = json.loads(_segment(parts[0]))
        claims = json.loads(_segment(parts[1]))
    except (binascii.Error, ValueError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise unauthenticated("invalid_token", _INVALID) from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise unauthenticated("invalid_token", _INVALID)
    aud, kid = claims.get("aud"), header.get("kid")
    if aud == _CUSTOM_TOKEN_AUDIENCE:
        raise unauthenticated("invalid_token", "This is a Firebase custom token, not an ID token.")
    if keys is not None:
        if not isinstance(kid, str) or not kid:
            raise unauthenticated("invalid_token", _INVALID)
        if header.get("alg") != "RS256":
            raise unauthenticated("invalid_token", _INVALID)
    if aud != project_id or claims.get("iss") != f"https://securetoken.google.com/{project_id}":
        raise unauthenticated("invalid_token", _OTHER_PROJECT)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= _MAX_UID:
        raise unauthenticated("invalid_token", _INVALID_CLAIMS)
    if keys is not None:
        key = keys.get(kid)  # type: ignore[arg-type]  # a str, checked above
        if key is None:
            if on_unknown_kid is not None:
                on_unknown_kid()
            raise unauthenticated("invalid_token", _INVALID)
        try:
            signature = _segment(parts[2])
            key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"), _PKCS1, _SHA256)
        except (binascii.Error, ValueError, InvalidSignature) as error:
            raise unauthenticated("invalid_token", _INVALID) from error
    if not all(_is_int(claims.get(name)) for name in ("iat", "exp", "auth_time")):
        raise unauthenticated("invalid_token", _INVALID_CLAIMS)
    iat: int = claims["iat"]
    exp: int = claims["exp"]
    auth_time: int = claims["auth_time"]
    if iat > now + clock_skew or auth_time > now + clock_skew:
        raise unauthenticated("invalid_token", "This ID token was issued in the future.")
    if exp < now - clock_skew:
        raise unauthenticated("token_expired", "This ID token has expired; refresh it and retry.")
    claims["uid"] = sub
    return claims, kid if isinstance(kid, str) else None


def checked_claims(claims: Mapping[str, Any]) -> Mapping[str, Any]:
    """The verified token's claims, checked like any input: else ``401 invalid_token``.

    Verification checks the signature (outside the emulator), ``aud``, ``iss`` and the
    times; this checks the types of the claims core and families rely on: ``sub``/``uid``
    a non-empty string of at most 128 characters, ``auth_time``, ``iat`` and ``exp``
    integers (seconds), ``email`` a string when present.
    """
    uid, sub = claims.get("uid"), claims.get("sub")
    valid = (
        isinstance(uid, str)
        and 0 < len(uid) <= _MAX_UID
        and uid == sub
        and all(_is_int(claims.get(name)) for name in ("auth_time", "iat", "exp"))
        and ("email" not in claims or isinstance(claims["email"], str))
    )
    if not valid:
        raise unauthenticated("invalid_token", _INVALID_CLAIMS)
    return claims


# --- Revocation state per user -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserState:
    """What revocation checking needs of a Firebase user record."""

    exists: bool
    disabled: bool = False
    valid_after_ms: int = 0  # tokens issued before this (ms since the epoch) are revoked
    checked_at: float = 0.0  # monotonic


def _refuse_if_revoked(state: UserState, claims: Mapping[str, Any]) -> None:
    if not state.exists:
        raise unauthenticated(
            "user_not_found", "The Firebase user of this ID token no longer exists."
        )
    if state.disabled:
        raise unauthenticated("user_disabled", "This Firebase user is disabled.")
    if claims["iat"] * 1000 < state.valid_after_ms:  # firebase-admin's own comparison
        raise unauthenticated("token_revoked", "This ID token has been revoked; sign in again.")


class FirebaseAuth:
    """Verifies ID tokens for one Firebase project, with its own named Firebase app.

    Build it in the running event loop (at start-up): it starts fetching Google's keys
    there. ``close()`` (or ``await aclose()``) stops what it started.
    """

    def __init__(self, core: CoreSettings, settings: AuthSettings | None = None) -> None:
        self.core = core
        # Checked when the settings were built; again here, because firebase-admin reads
        # the variable from the process environment, which may have changed since.
        check_emulator_allowed(core.environment)
        self.settings = settings or AuthSettings.from_env()
        self.emulated = bool(os.environ.get(EMULATOR_HOST_ENV))
        self.stats = AuthStats()
        self.instance = uuid.uuid4().hex
        self._app = firebase_admin.initialize_app(
            credential=_credential(),
            options={"projectId": core.firebase_project_id},
            name=f"imperfect-{self.instance}",
        )
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.threads, thread_name_prefix="imperfect-auth"
        )
        self.keys = GoogleKeys(self.settings, self.stats)
        self.keys.on_change = self._forget_keys
        # digest -> (exp, kid, identity), least recently used first
        self._tokens: OrderedDict[bytes, tuple[int, str | None, Identity]] = OrderedDict()
        self._users: OrderedDict[str, UserState] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[UserState]] = {}
        self._invalidated = 0  # bumped by every invalidation: older lookups are not stored
        self._subscription: Any = None
        self._started = False
        with contextlib.suppress(RuntimeError):  # no running loop: start on first use
            asyncio.get_running_loop()
            self._start()

    def _start(self) -> None:
        self._started = True
        if not self.emulated:
            self.keys.start()
        if self.settings.redis_url and self.core.check_revoked:
            from core.subscriptions import Subscription

            self._subscription = Subscription(
                "auth-invalidations",
                self.settings.redis_url,
                [self.settings.redis_channel],
                self._on_invalidation,
            )
            self._subscription.start()

    @property
    def firebase_app(self) -> firebase_admin.App:
        return self._app

    @property
    def project_id(self) -> str:
        """The Firebase (Google Cloud) project whose tokens this service accepts."""
        return self.core.firebase_project_id

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The auth path's own bounded executor (``IMPERFECT_AUTH_THREADS``)."""
        return self._executor

    def google_credentials(self) -> google.auth.credentials.Credentials:
        """The Google credential of this deployment, for calling other Google APIs (FCM).

        Raises ``RuntimeError`` or ``google.auth.exceptions.DefaultCredentialsError`` when
        there is none (the emulator, or no Application Default Credentials).
        """
        return self._app.credential.get_credential()

    async def run_blocking(self, function: Callable[[], T]) -> T:
        """Run a blocking firebase-admin call on the auth executor, never the default pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def close(self) -> None:
        """Stop the key refresh and the subscription, release the executor and the app."""
        self.keys.cancel()
        if self._subscription is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing runs it
                task = asyncio.get_running_loop().create_task(self._subscription.stop())
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)
            self._subscription = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(ValueError):  # deleted already
            firebase_admin.delete_app(self._app)

    async def aclose(self) -> None:
        """:meth:`close`, waiting for the background tasks to end."""
        tasks = self.keys.cancel()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, KeyFetchError):
                await task
        self.close()

    # --- blocking Firebase calls, on the auth executor --------------------------------

    async def delete_user(self, uid: str) -> None:
        """Delete the Firebase user ``uid``; one already gone counts as deleted.

        Its cached state is dropped at once (on every instance, through Redis). Raises
        ``firebase_admin.exceptions.FirebaseError`` (or a credential error) when Firebase
        could not do it; the caller retries later.
        """

        def delete() -> None:
            try:
                firebase_auth.delete_user(uid, app=self._app)
            except firebase_auth.UserNotFoundError:
                return

        try:
            await self.run_blocking(delete)
        finally:
            await self.invalidate(uid)

    async def revoke(self, uid: str) -> None:
        """Revoke ``uid``'s refresh tokens (ID tokens issued before now stop verifying).

        Its cached state is dropped at once (on every instance, through Redis).
        """
        try:
            await self.run_blocking(lambda: firebase_auth.revoke_refresh_tokens(uid, app=self._app))
        finally:
            await self.invalidate(uid)

    # --- the request path ----------------------------------------------------------------

    async def identify(
        self, authorization: str | None, *, recent_sign_in: int | None = None
    ) -> Identity:
        """Turn an ``Authorization`` header into an :class:`Identity`, or raise 401.

        With ``recent_sign_in`` (seconds), the sign-in must be that recent and the user's
        revocation state is looked up live instead of taken from the cache.
        """
        if not authorization:
            raise unauthenticated(
                "missing_token",
                "This route needs a Firebase ID token: send 'Authorization: Bearer <token>'.",
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated(
                "invalid_authorization",
                "The Authorization header must be 'Bearer <Firebase ID token>'.",
            )
        identity = await self._verified(token)
        if recent_sign_in is not None:
            require_recent_sign_in(identity, recent_sign_in)
            return await self.check_live(identity)
        if self.core.check_revoked:
            _refuse_if_revoked(await self._user_state(identity.uid), identity.claims)
        return identity

    async def check_live(self, identity: Identity) -> Identity:
        """Look the user's revocation state up at Firebase now (unless already done for
        this identity); refuse a revoked, disabled or deleted user with 401."""
        if identity.checked_live or not self.core.check_revoked:
            return identity
        _refuse_if_revoked(await self._user_state(identity.uid, live=True), identity.claims)
        return dataclasses.replace(identity, checked_live=True)

    async def _verified(self, token: str) -> Identity:
        now = time.time()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        tokens = self._tokens
        cached = tokens.get(digest)
        if cached is not None:
            if now < cached[0]:
                tokens.move_to_end(digest)
                self.stats.cache_hits += 1
                return cached[2]
            del tokens[digest]
        if not self._started:
            self._start()
        keys = None if self.emulated else await self.keys.ready()
        self.stats.verifications += 1
        claims, kid = decode_token(
            token,
            project_id=self.core.firebase_project_id,
            keys=keys,
            now=now,
            clock_skew=self.settings.clock_skew,
            on_unknown_kid=self.keys.refresh_soon,
        )
        identity = Identity(uid=claims["uid"], claims=MappingProxyType(checked_claims(claims)))
        size = self.settings.token_cache_size
        if size:
            tokens[digest] = (claims["exp"], kid, identity)
            if len(tokens) > size:
                tokens.popitem(last=False)
        return identity

    def _forget_keys(self, removed: set[str]) -> None:
        """Google withdrew keys: tokens they signed are no longer served from the cache."""
        stale = [digest for digest, (_, kid, _) in self._tokens.items() if kid in removed]
        for digest in stale:
            del self._tokens[digest]

    async def _user_state(self, uid: str, *, live: bool = False) -> UserState:
        if not live:
            state = self._users.get(uid)
            if state is not None:
                if time.monotonic() - state.checked_at < self.settings.revocation_window:
                    return state
                del self._users[uid]
            pending = self._lookups.get(uid)
            if pending is None:
                pending = self._lookups[uid] = self._start_lookup(uid, shared=True)
        else:
            self.stats.live_lookups += 1
            pending = self._start_lookup(uid, shared=False)
        return await asyncio.shield(pending)

    def _start_lookup(self, uid: str, *, shared: bool) -> asyncio.Future[UserState]:
        generation = self._invalidated
        self.stats.lookups += 1
        future = asyncio.get_running_loop().create_task(self._lookup(uid))

        def settle(done: asyncio.Future[UserState]) -> None:
            if shared and self._lookups.get(uid) is future:
                del self._lookups[uid]
            if done.cancelled() or done.exception() is not None:
                return
            if generation == self._invalidated and self.settings.revocation_window > 0:
                self._remember(uid, done.result())

        future.add_done_callback(settle)
        return future

    async def _lookup(self, uid: str) -> UserState:
        def lookup() -> UserState:
            try:
                user = firebase_auth.get_user(uid, app=self._app)
            except firebase_auth.UserNotFoundError:
                return UserState(exists=False, checked_at=time.monotonic())
            return UserState(
                exists=True,
                disabled=bool(user.disabled),
                valid_after_ms=int(user.tokens_valid_after_timestamp or 0),
                checked_at=time.monotonic(),
            )

        try:
            return await self.run_blocking(lookup)
        except (FirebaseError, GoogleAuthError, RuntimeError, ValueError) as error:
            # Credentials missing or Firebase unreachable: the token may be fine, we cannot
            # tell, so this is our outage, not a 401.
            raise _unavailable(
                f"Firebase Authentication could not verify the token: {type(error).__name__}."
            ) from error

    def _remember(self, uid: str, state: UserState) -> None:
        users = self._users
        users[uid] = state
        users.move_to_end(uid)
        if len(users) > self.settings.revocation_cache_size:
            users.popitem(last=False)

    # --- invalidation ------------------------------------------------------------------

    def forget(self, uid: str) -> None:
        """Drop what this instance knows of ``uid``: its next request looks it up."""
        self._invalidated += 1
        self.stats.invalidations += 1
        self._users.pop(uid, None)
        self._lookups.pop(uid, None)

    async def invalidate(self, uid: str) -> None:
        """:meth:`forget` ``uid`` here and, through Redis when configured, everywhere."""
        self.forget(uid)
        url = self.settings.redis_url
        if not url:
            return
        import redis.asyncio as redis
        from redis.exceptions import RedisError

        message = json.dumps({"uid": uid, "from": self.instance})
        try:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            async with client:
                await client.publish(self.settings.redis_channel, message)
        except (RedisError, OSError) as error:
            log.warning(
                "could not announce the revocation of a user to the other instances: %s; "
                "they accept its tokens for at most IMPERFECT_REVOCATION_WINDOW seconds",
                error,
            )

    async def _on_invalidation(self, channel: str, data: bytes) -> None:
        try:
            message = json.loads(data)
            uid, origin = message["uid"], message.get("from")
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring a malformed message on %s", channel)
            return
        if isinstance(uid, str) and origin != self.instance:
            self.forget(uid)

    # --- introspection (readiness, tests, metrics) ----------------------------------------

    def status(self) -> str:
        """A readiness check of token verification: raises while no keys are in hand.

        Verifying needs Google's public keys only (no credential); the revocation lookup
        needs a Google credential, which :meth:`google_credentials` tells.
        """
        if self.emulated:
            return f"emulator at {os.environ.get(EMULATOR_HOST_ENV, '?')} (tokens unsigned)"
        keys = self.keys
        if not keys.keys:
            raise RuntimeError(
                f"no Google token-signing keys yet ({keys.last_error or 'fetching'})"
            )
        age = time.monotonic() - keys.fetched_at
        if keys.last_error is not None:
            return f"{len(keys.keys)} keys, {age:.0f}s old; refresh failing ({keys.last_error})"
        return f"{len(keys.keys)} keys, {age:.0f}s old"

    # --- introspection (tests, metrics) --------------------------------------------------

    @property
    def cached_tokens(self) -> int:
        return len(self._tokens)

    @property
    def cached_users(self) -> int:
        return len(self._users)


def _credential() -> Any:
    """None for the emulator; otherwise Application Default Credentials, loaded lazily
    (a key file from GOOGLE_APPLICATION_CREDENTIALS, or the platform's metadata server)."""
    if os.environ.get(EMULATOR_HOST_ENV):
        return _NoCredential()
    return firebase_admin.credentials.ApplicationDefault()


class _NoCredential(firebase_admin.credentials.Base):
    """The Auth Emulator needs no Google credential (it accepts its own admin token);
    anything else that asks for one fails with a clear message."""

    def get_credential(self) -> Any:
        raise RuntimeError(
            "No Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to call Firebase services"
        )


def require_admin(identity: Identity, claim: str) -> None:
    if identity.claims.get(claim) is not True:
        raise ApiError(403, "admin_required", f"This route needs the '{claim}' custom claim.")


def require_recent_sign_in(identity: Identity, max_age_seconds: int) -> None:
    """Refuse a token whose sign-in is older than ``max_age_seconds`` (or in the future)."""
    now = time.time()
    auth_time = identity.auth_time
    if auth_time is None or auth_time > now + 60 or now - auth_time > max_age_seconds:
        raise unauthenticated(
            "recent_sign_in_required",
            f"This action needs a sign-in within the last {max_age_seconds} seconds; "
            "sign in again and retry.",
        )


__all__ = [
    "AuthSettings",
    "AuthStats",
    "FirebaseAuth",
    "GoogleKeys",
    "Identity",
    "KeyFetchError",
    "UserState",
    "checked_claims",
    "decode_token",
    "require_admin",
    "require_recent_sign_in",
    "unauthenticated",
]
