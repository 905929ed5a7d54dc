"""Prometheus metrics: requests, upstream calls, subscriptions, and the outbox at scrape time.

Every metric is named ``imperfect_*``:

=============================================== ========= ===================================
metric                                          type      labels
=============================================== ========= ===================================
``imperfect_http_requests_total``               counter   route, method, status, family
``imperfect_http_request_duration_seconds``     histogram route, method, family
``imperfect_http_rate_limited_total``           counter   route, family
``imperfect_upstream_requests_total``           counter   service, method, outcome
``imperfect_upstream_request_duration_seconds`` histogram service, outcome
``imperfect_subscription_connected``            gauge     subscription
``imperfect_subscription_received_total``       counter   subscription
``imperfect_subscription_failed_total``         counter   subscription
``imperfect_subscription_reconnects_total``     counter   subscription
``imperfect_outbox_pending``                    gauge     kind
``imperfect_outbox_oldest_pending_age_seconds`` gauge     kind
``imperfect_outbox_dead``                       gauge     kind
=============================================== ========= ===================================

``route`` is the URL rule (``/users/<int:user_id>``), never the raw path, so the number of
series is bounded by the routes; a request that matches no rule is ``<unmatched>`` (family
``none``). The labels of each rule are computed once, when the app is built.
``outcome`` is ``ok``, ``4xx``, ``5xx``, ``timeout`` or ``unreachable``, one per attempt
(a retried call counts each attempt). The outbox gauges are read from ``core_outbox`` when
``/metrics`` is scraped (one grouped query, bounded by ``IMPERFECT_READINESS_TIMEOUT``).

Several worker processes: hypercorn's workers are separate processes, and a scrape reaches
one of them. With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client runs in multiprocess
mode: each worker writes its values to files there, and whichever worker answers a scrape
reports the sum over all of them. :func:`prepare_workers` is for the process that starts
the workers: it keeps a directory the deployment names, or makes a fresh one for the run.
A worker that stops marks itself dead (:func:`worker_stopped`), so its ``connected``
gauges stop counting (its counters keep counting, as counters must).
"""

from __future__ import annotations

import asyncio
import atexit
import hmac
import ipaddress
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from quart import Blueprint, Response, current_app, request

from core.endpoints import endpoint
from core.errors import ApiError

if TYPE_CHECKING:
    from quart import Quart

log = logging.getLogger("imperfect.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TOKEN_ENV = "IMPERFECT_METRICS_TOKEN"
UNMATCHED = "<unmatched>"
NO_FAMILY = "none"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Most answers take milliseconds; the top buckets catch slow upstreams and streams.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# ``*_created`` series (a timestamp per counter) double the exposition and say nothing here.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "imperfect_http_requests",
    "Requests answered, by route template, method, status and family.",
    ["route", "method", "status", "family"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "imperfect_http_request_duration_seconds",
    "Time from the request reaching the app to its response being ready (not streamed bodies).",
    ["route", "method", "family"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "imperfect_http_rate_limited",
    "Requests answered 429, by route template and family.",
    ["route", "family"],
    registry=REGISTRY,
)
UPSTREAM = Counter(
    "imperfect_upstream_requests",
    "Attempts to call an outside service, by service, method and outcome.",
    ["service", "method", "outcome"],
    registry=REGISTRY,
)
UPSTREAM_SECONDS = Histogram(
    "imperfect_upstream_request_duration_seconds",
    "Time an attempt waited for an outside service's response headers, by outcome.",
    ["service", "outcome"],
    buckets=UPSTREAM_BUCKETS,
    registry=REGISTRY,
)
SUBSCRIPTION_CONNECTED = Gauge(
    "imperfect_subscription_connected",
    "Subscriptions currently subscribed (summed over the live worker processes).",
    ["subscription"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
SUBSCRIPTION_RECEIVED = Counter(
    "imperfect_subscription_received",
    "Messages taken off a subscription's channels, handled or not.",
    ["subscription"],
    registry=REGISTRY,
)
SUBSCRIPTION_FAILED = Counter(
    "imperfect_subscription_failed",
    "Messages whose handler raised.",
    ["subscription"],
    registry=REGISTRY,
)
SUBSCRIPTION_RECONNECTS = Counter(
    "imperfect_subscription_reconnects",
    "Times a subscription lost Redis (or failed) and connected again.",
    ["subscription"],
    registry=REGISTRY,
)


# prometheus_client chooses its mode when it is imported (just above): values in this
# process's memory, or in files under PROMETHEUS_MULTIPROC_DIR shared by the workers.
_MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))
if _MULTIPROCESS:  # values are written there from the first request on
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)


class SubscriptionMetrics:
    """The series of one :class:`~core.subscriptions.Subscription`, by its name."""

    def __init__(self, name: str) -> None:
        self.connected = SUBSCRIPTION_CONNECTED.labels(name)
        self.received = SUBSCRIPTION_RECEIVED.labels(name)
        self.failed = SUBSCRIPTION_FAILED.labels(name)
        self.reconnects = SUBSCRIPTION_RECONNECTS.labels(name)


def multiprocess() -> bool:
    """Whether this process keeps its values in the shared directory (several workers)."""
    return _MULTIPROCESS


# --- serving several worker processes ------------------------------------------------------


def prepare_workers() -> str:
    """Before ``imperfect serve`` starts its workers: the directory they share their values in.

    ``PROMETHEUS_MULTIPROC_DIR`` when the deployment sets it (it must then be emptied
    before each start, as prometheus_client requires), else a fresh temporary directory,
    removed when the server exits. Workers inherit the variable from this process.
    """
    named = os.environ.get(MULTIPROC_ENV, "")
    if named:
        os.makedirs(named, exist_ok=True)
        return named
    directory = tempfile.mkdtemp(prefix="imperfect-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def worker_stopped(pid: int | None = None) -> None:
    """A worker process stops: its live gauges no longer count (multiprocess mode only)."""
    if not multiprocess():
        return
    from prometheus_client import multiprocess as mp

    try:
        mp.mark_process_dead(os.getpid() if pid is None else pid)
    except OSError as error:  # the directory went away with the server: nothing to mark
        log.debug("could not mark worker %s dead: %r", pid, error)


# --- the request pipeline ------------------------------------------------------------------


class RequestMetrics:
    """Request counting for one app: each URL rule's labels, prepared once."""

    def __init__(self, app: Quart, owners: Mapping[str, str]) -> None:
        self.labels: dict[str | None, tuple[str, str]] = {None: (UNMATCHED, NO_FAMILY)}
        for rule in app.url_map.iter_rules():
            family = owners.get(rule.endpoint.rpartition(".")[0], "core")
            self.labels[rule.endpoint] = (rule.rule, family)
        self._children: dict[tuple[str | None, str, int], tuple[Any, Any, Any]] = {}
        self._failed = False

    def observe(self, endpoint: str | None, method: str, status: int, seconds: float) -> None:
        """Count one answered request (a dictionary lookup and two or three increments).

        Never raises: a request is not failed for its metrics (a metrics directory removed
        under a running server, say); the first such error is logged.
        """
        try:
            key = (endpoint, method, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = self._prepare(endpoint, method, status)
            count, duration, limited = children
            count.inc()
            duration.observe(seconds)
            if limited is not None:
                limited.inc()
        except Exception:
            if not self._failed:
                self._failed = True
                log.exception("metrics: a request could not be counted; later failures are silent")

    def _prepare(self, endpoint: str | None, method: str, status: int) -> tuple[Any, Any, Any]:
        route, family = self.labels.get(endpoint, (UNMATCHED, NO_FAMILY))
        method = method if method in METHODS else "OTHER"
        return (
            REQUESTS.labels(route, method, str(status), family),
            REQUEST_SECONDS.labels(route, method, family),
            RATE_LIMITED.labels(route, family) if status == 429 else None,
        )

    def route(self, endpoint: str | None) -> tuple[str, str]:
        """``(route template, family)`` of a rule's endpoint."""
        return self.labels.get(endpoint, (UNMATCHED, NO_FAMILY))


# --- upstream calls (core.clients) ---------------------------------------------------------


def upstream_outcome(status: int) -> str:
    if status >= 500:
        return "5xx"
    return "4xx" if status >= 400 else "ok"


def observe_upstream(service: str, method: str, outcome: str, seconds: float) -> None:
    """Count one attempt; never raises (a call is not failed for its metrics)."""
    try:
        UPSTREAM.labels(service, method, outcome).inc()
        UPSTREAM_SECONDS.labels(service, outcome).observe(seconds)
    except Exception as error:
        log.warning("metrics: an upstream call could not be counted: %r", error)


# --- the scrape ----------------------------------------------------------------------------


class _Snapshot(Collector):
    """Metric families read just before a scrape (the outbox), served once."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


async def outbox_families(kinds: Iterable[str], now: datetime | None = None) -> list[Metric]:
    """Pending count, oldest pending age and dead count per kind, in one grouped query.

    Every kind with a registered handler is reported (0 when it has no messages), plus
    any other kind found in the table.
    """
    from tortoise.functions import Count, Min

    from core.models import DEAD, PENDING, OutboxMessage

    rows = (
        await OutboxMessage.filter(status__in=[PENDING, DEAD])
        .group_by("kind", "status")
        .annotate(count=Count("id"), oldest=Min("created_at"))
        .values("kind", "status", "count", "oldest")
    )
    now = now or datetime.now(UTC)
    pending = {kind: 0 for kind in kinds}
    ages = dict.fromkeys(pending, 0.0)
    dead = dict.fromkeys(pending, 0)
    for row in rows:
        kind = row["kind"]
        pending.setdefault(kind, 0)
        ages.setdefault(kind, 0.0)
        dead.setdefault(kind, 0)
        if row["status"] == DEAD:
            dead[kind] = int(row["count"])
            continue
        pending[kind] = int(row["count"])
        oldest = _as_datetime(row["oldest"])
        if oldest is not None:
            ages[kind] = max(0.0, (now - oldest).total_seconds())
    depth = GaugeMetricFamily(
        "imperfect_outbox_pending",
        "Outbox messages waiting, backing off or being handled, by kind.",
        labels=["kind"],
    )
    age = GaugeMetricFamily(
        "imperfect_outbox_oldest_pending_age_seconds",
        "Seconds since the oldest pending outbox message of a kind was queued (0: none).",
        labels=["kind"],
    )
    given_up = GaugeMetricFamily(
        "imperfect_outbox_dead",
        "Outbox messages given up on and kept for inspection, by kind.",
        labels=["kind"],
    )
    for kind in sorted(pending):
        depth.add_metric([kind], pending[kind])
        age.add_metric([kind], ages[kind])
        given_up.add_metric([kind], dead[kind])
    return [depth, age, given_up]


def _as_datetime(value: Any) -> datetime | None:
    """``MIN(created_at)`` as an aware datetime (SQLite hands back text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


async def exposition(kinds: Iterable[str], timeout: float) -> bytes:
    """The text exposition: this process's (or every worker's) metrics, then the outbox."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    try:
        families = await asyncio.wait_for(outbox_families(kinds), timeout)
    except Exception as error:  # the database is down or slow: the rest is still worth having
        log.warning("metrics: outbox not read: %s", f"{type(error).__name__}: {error}"[:200])
        return body
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(families))
    return body + generate_latest(snapshot)


# --- GET /metrics --------------------------------------------------------------------------

_FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def metrics_blueprint(token: str | None = None) -> Blueprint:
    """``GET /metrics`` (not in the OpenAPI document): operational data, so guarded.

    With ``IMPERFECT_METRICS_TOKEN`` set, only requests with ``Authorization: Bearer
    <token>`` are answered (from anywhere). Without it, only requests whose socket peer is
    a loopback address and that carry no forwarding header (``X-Forwarded-For``,
    ``Forwarded``, ``X-Real-IP``), so a scraper on the same host (or a sidecar sharing its
    network namespace) can read them and a client coming through a proxy cannot.
    """
    secret = (os.environ.get(TOKEN_ENV, "") if token is None else token).encode()
    blueprint = Blueprint("core_metrics", __name__)

    @blueprint.get("/metrics")
    @endpoint(auth="public", include_in_schema=False)
    async def metrics() -> Response:
        if secret:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), secret):
                raise ApiError(
                    401,
                    "unauthorized",
                    "Metrics need the bearer token configured in IMPERFECT_METRICS_TOKEN.",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        elif not _is_loopback(request.remote_addr or "") or any(
            name in request.headers for name in _FORWARDING_HEADERS
        ):
            raise ApiError(
                403,
                "forbidden",
                "Metrics are served to localhost only; set IMPERFECT_METRICS_TOKEN to scrape "
                "them from elsewhere.",
            )
        runtime = current_app.extensions["imperfect"]
        body = await exposition(runtime.outbox_handlers, runtime.core.readiness_timeout)
        return Response(
            body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    return blueprint
