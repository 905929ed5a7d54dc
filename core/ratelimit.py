"""Rate limits: declared per route on ``@endpoint``, enforced in core's one pipeline.

::

    @bp.post("/notifications/devices")
    @endpoint(..., rate_limits=("20/minute", "100/hour"))            # per user (the default)
    @endpoint(..., auth="public", rate_limits=(RateLimit("30/minute", per="ip"),))

A route may declare several windows, each keyed by the route and by the caller's uid
(``per="user"``), the client's IP address (``per="ip"``) or nothing (``per="route"``: one
budget for everyone). Every window is a moving window (the `limits` library's
``MovingWindowRateLimiter``): "5/hour" means at most 5 requests in any 3600 seconds.

The counters live in this process's memory, or in Redis when
``IMPERFECT_RATE_LIMIT_REDIS_URL`` is set, so that every instance of a deployment spends
one budget. A Redis that fails does not take the routes down: the limiter lets requests
through (fails open), logs a warning at most once a minute, and tries Redis again a few
seconds later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.util import WindowStats
from pydantic import AliasChoices, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from quart import Request

from core.errors import ApiError, ConfigError

log = logging.getLogger("imperfect.ratelimit")

Per = Literal["user", "ip", "route"]
PER_VALUES: tuple[str, ...] = get_args(Per)
WARNING_INTERVAL = 60.0  # seconds between two "storage failed" warnings
STORAGE_RETRY = 5.0  # seconds the limiter fails open after the storage failed, before retrying
_REDIS_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}


@dataclass(frozen=True)
class RateLimit:
    """One window of a route's rate limit: ``RateLimit("10/minute", per="user")``.

    ``limit`` is `limits`' notation: ``"<amount>/<granularity>"`` or
    ``"<amount> per <multiple> <granularity>"``, for example ``"10/minute"``,
    ``"100/hour"``, ``"5 per 10 seconds"``. ``per`` says whose budget it is: the caller's
    (``"user"``, which needs an authenticated route), the client IP's (``"ip"``), or the
    route's as a whole (``"route"``).
    """

    limit: str
    per: Per = "user"
    item: limits.RateLimitItem = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.per not in PER_VALUES:
            raise ValueError(f"rate limit per={self.per!r}: give one of {', '.join(PER_VALUES)}")
        try:
            [item] = limits.parse_many(self.limit)
        except ValueError as error:
            raise ValueError(
                f"rate limit {self.limit!r} is not one limit like '10/minute' "
                "(declare each window as its own RateLimit)"
            ) from error
        object.__setattr__(self, "item", item)

    @property
    def amount(self) -> int:
        """How many requests the window allows."""
        return int(self.item.amount)

    @property
    def window(self) -> int:
        """The window's length in seconds."""
        return int(self.item.get_expiry())

    def __str__(self) -> str:
        return f"{self.item} per {self.per}"


def declared_limits(
    rate_limits: Iterable[RateLimit | str], per: Per, where: str
) -> tuple[RateLimit, ...]:
    """The windows a route declares, as :class:`RateLimit` (a string takes ``per``)."""
    declared = []
    for value in rate_limits:
        try:
            declared.append(value if isinstance(value, RateLimit) else RateLimit(value, per=per))
        except ValueError as error:
            raise TypeError(f"{where}: {error}") from error
    seen = set()
    for limit in declared:
        key = (limit.amount, limit.window, limit.per)
        if key in seen:
            raise TypeError(f"{where} declares the rate limit {limit} twice")
        seen.add(key)
    # shortest window first: the order the headers and the docs list them in
    return tuple(sorted(declared, key=lambda limit: (limit.window, limit.amount)))


class RateLimitSettings(BaseSettings):
    """The rate limiter's settings; every field is one environment variable."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    enabled: bool = Field(True, validation_alias=AliasChoices("IMPERFECT_RATE_LIMITS"))
    redis_url: str = Field("", validation_alias=AliasChoices("IMPERFECT_RATE_LIMIT_REDIS_URL"))
    key_prefix: str = Field(
        "imperfect-ratelimit",
        min_length=1,
        validation_alias=AliasChoices("IMPERFECT_RATE_LIMIT_KEY_PREFIX"),
    )
    redis_timeout: float = Field(
        0.5, gt=0, validation_alias=AliasChoices("IMPERFECT_RATE_LIMIT_REDIS_TIMEOUT")
    )
    trusted_proxies: int = Field(
        0, ge=0, le=16, validation_alias=AliasChoices("IMPERFECT_TRUSTED_PROXIES")
    )

    @classmethod
    def from_env(cls) -> RateLimitSettings:
        """Read the environment; a bad value is a :class:`ConfigError` naming the variable."""
        try:
            return cls()
        except PydanticValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            raise ConfigError(f"invalid environment: {problems}") from error


def client_ip(request: Request, trusted_proxies: int) -> str:
    """The client's address: the socket peer, or with ``trusted_proxies`` proxies in front the
    ``X-Forwarded-For`` hop the outermost trusted proxy saw (the rightmost untrusted one).

    Each proxy appends the address it received the request from, so with ``n`` trusted
    proxies the client is the ``n``-th entry from the right; entries further left are
    whatever the client sent and are never believed. A header with fewer entries than
    that, or an entry that is not an IP address, falls back to the socket peer. IPv6
    addresses count by their /64 network, which one subscriber usually holds whole.
    """
    if trusted_proxies:
        hops = [
            hop.strip()
            for value in request.headers.getlist("X-Forwarded-For")
            for hop in value.split(",")
        ]
        if len(hops) >= trusted_proxies:
            address = _address(hops[-trusted_proxies])
            if address is not None:
                return address
    return _address(request.remote_addr or "") or "unknown"


def _address(value: str) -> str | None:
    value = value.strip()
    if value.startswith("["):  # "[2001:db8::1]:443"
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.partition(":")[0]
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(frozen=True)
class Usage:
    """Where one window of a route stands for one caller, after this request."""

    limit: RateLimit
    remaining: int
    reset: float  # seconds until the oldest request in the window leaves it


class RateLimiter:
    """The running app's limiter: one storage (memory or Redis), one moving-window strategy."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self.trusted_proxies = settings.trusted_proxies
        self._pool: Any = None
        self.storage: Storage = self._storage(settings)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._failing_until = 0.0
        self._warned_at = -math.inf
        self._failures = 0

    @classmethod
    def from_env(cls) -> RateLimiter:
        return cls(RateLimitSettings.from_env())

    @property
    def shared(self) -> bool:
        """Whether the counters live in Redis (shared by every instance)."""
        return isinstance(self.storage, RedisStorage)

    def _storage(self, settings: RateLimitSettings) -> Storage:
        url = settings.redis_url
        if not url:
            return MemoryStorage()
        scheme, _, rest = url.partition("://")
        if scheme not in _REDIS_SCHEMES or not rest:
            raise ConfigError(
                "IMPERFECT_RATE_LIMIT_REDIS_URL must be a redis://, rediss:// or unix:// URL"
            )
        import redis.asyncio

        # The pool is ours (so it is closed at stop); limits talks to Redis through
        # redis-py's asyncio client ("redispy"), not its default coredis.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
        )
        return RedisStorage(
            f"{_REDIS_SCHEMES[scheme]}://{rest}",
            implementation="redispy",
            key_prefix=settings.key_prefix,
            wrap_exceptions=True,
            connection_pool=self._pool,
        )

    async def start(self) -> None:
        """Say where the counters live; an unreachable Redis is a warning, not a failure."""
        if not self.settings.enabled:
            log.warning("rate limits are off (IMPERFECT_RATE_LIMITS=0)")
            return
        if not self.shared:
            log.info("rate limits are counted in memory, per instance")
            return
        try:
            healthy = await self.storage.check()
        except Exception as error:  # check() may raise instead of answering False
            healthy = False
            log.debug("rate limit storage check failed: %r", error)
        if healthy:
            log.info("rate limits are counted in Redis, shared by every instance")
        else:
            log.warning("rate limit Redis does not answer; requests are let through until it does")

    async def close(self) -> None:
        timer = getattr(self.storage, "timer", None)  # MemoryStorage's expiry task
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def subject(self, per: Per, uid: str | None, request: Request) -> str:
        if per == "user":
            return f"user:{uid}"
        if per == "ip":
            return f"ip:{client_ip(request, self.trusted_proxies)}"
        return "all"

    async def acquire(
        self, route: str, windows: tuple[RateLimit, ...], uid: str | None, request: Request
    ) -> dict[str, str]:
        """Spend one request of every window, or raise the 429; the headers to answer with.

        Every window is read first, and only when all have room is one request spent in
        each, so a refused request spends nothing (unless another instance spent the last
        room in between: then the request is refused too). A storage failure lets the
        request through, with a warning, and no headers.
        """
        if not self.settings.enabled:
            return {}
        if self._failing_until > time.monotonic():
            return {}
        keys = [(limit, (route, self.subject(limit.per, uid, request))) for limit in windows]
        try:
            stats = await asyncio.gather(
                *(self.strategy.get_window_stats(limit.item, *ids) for limit, ids in keys)
            )
            full = [i for i, stat in enumerate(stats) if stat.remaining < 1]
            if not full:
                spent = await asyncio.gather(
                    *(self.strategy.hit(limit.item, *ids) for limit, ids in keys)
                )
                full = [i for i, ok in enumerate(spent) if not ok]
        except (StorageError, OSError, TimeoutError) as error:
            self._storage_failed(error)
            return {}
        now = time.time()
        if full:
            usage = [Usage(windows[i], 0, max(stats[i].reset_time - now, 0.0)) for i in full]
            blocking = max(usage, key=lambda u: u.reset)
            retry = max(1, math.ceil(blocking.reset))
            headers = self._headers(blocking, windows)
            headers["Retry-After"] = str(retry)
            raise ApiError(
                429,
                "rate_limited",
                f"Too many requests: this route allows {blocking.limit.item} "
                f"{_WHOSE[blocking.limit.per]}. Try again in {retry} s.",
                headers=headers,
            )
        usage = [_after_hit(limit, stat, now) for limit, stat in zip(windows, stats, strict=True)]
        return self._headers(min(usage, key=lambda u: (u.remaining, -u.reset)), windows)

    @staticmethod
    def _headers(usage: Usage, windows: tuple[RateLimit, ...]) -> dict[str, str]:
        """IETF ``RateLimit-*`` fields for the window closest to running out."""
        return {
            "RateLimit-Limit": str(usage.limit.amount),
            "RateLimit-Remaining": str(usage.remaining),
            "RateLimit-Reset": str(max(0, math.ceil(usage.reset))),
            "RateLimit-Policy": ", ".join(f"{w.amount};w={w.window}" for w in windows),
        }

    def _storage_failed(self, error: BaseException) -> None:
        """Fail open for a few seconds; warn at most once a minute."""
        self._failing_until = time.monotonic() + STORAGE_RETRY
        self._failures += 1
        now = time.monotonic()
        if now - self._warned_at >= WARNING_INTERVAL:
            log.warning(
                "rate limit storage failed (%d time(s) since the last warning); "
                "requests are let through without limits: %r",
                self._failures,
                error,
            )
            self._warned_at, self._failures = now, 0


_WHOSE: Mapping[str, str] = {"user": "per user", "ip": "per client address", "route": "in all"}


def _after_hit(limit: RateLimit, stat: WindowStats, now: float) -> Usage:
    return Usage(limit, max(0, stat.remaining - 1), max(stat.reset_time - now, 0.0))
