"""Observability: Prometheus metrics, logs carrying the request id, OpenTelemetry traces."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart, request

from core import logs, metrics, tracing
from core.clients import ServiceClient
from core.errors import ApiError
from core.models import DEAD, OutboxMessage
from core.outbox import enqueue, utcnow
from tests.fakes.server import FakeServer
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.servers import imperfect_serve

CHATTY = {"chatty": {"module": "tests.plugins.chatty"}}
THROTTLED = {"throttled": {"module": "tests.plugins.throttled"}}
IMPERFECT = str(ROOT / ".venv/bin/imperfect")
LOCAL = {"client": ("127.0.0.1", 40000)}  # the test client's scope has no peer by default


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by (name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def scrape(client: Any, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers, scope_base=LOCAL)
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=")
    return await response.get_data(as_text=True)


# --- requests -----------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_method_status_and_family(app_client):
    async with app_client({**CHATTY, "root": {"module": "plugins.root"}}) as client:
        before = await scrape(client)
        for _ in range(3):
            assert (await client.get("/chatty/hello")).status_code == 200
        assert (await client.get("/chatty/nowhere/42")).status_code == 404
        assert (await client.post("/chatty/hello")).status_code == 405
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    hello = {"route": "/chatty/hello", "method": "GET", "family": "chatty"}
    assert delta("imperfect_http_requests_total", status="200", **hello) == 3
    assert delta("imperfect_http_request_duration_seconds_count", **hello) == 3
    assert delta("imperfect_http_request_duration_seconds_bucket", le="+Inf", **hello) == 3
    assert delta("imperfect_http_request_duration_seconds_sum", **hello) > 0
    unmatched = {"route": "<unmatched>", "family": "none"}
    assert delta("imperfect_http_requests_total", method="GET", status="404", **unmatched) == 1
    assert delta("imperfect_http_requests_total", method="POST", status="405", **unmatched) == 1
    # raw paths never become labels: only rule templates do
    assert "/chatty/nowhere/42" not in after
    # the scrape itself is a core route
    core = {"route": "/metrics", "method": "GET", "family": "core", "status": "200"}
    assert delta("imperfect_http_requests_total", **core) >= 1


async def test_429_answers_are_counted_by_route(app_client):
    async with app_client(THROTTLED) as client:
        before = await scrape(client)
        statuses = [(await client.get("/throttled/shared")).status_code for _ in range(6)]
        after = await scrape(client)
    assert statuses.count(429) == 2
    labels = {"route": "/throttled/shared", "family": "throttled"}
    assert (
        value(after, "imperfect_http_rate_limited_total", **labels)
        - value(before, "imperfect_http_rate_limited_total", **labels)
        == 2
    )
    requests = {**labels, "method": "GET", "status": "429"}
    assert value(after, "imperfect_http_requests_total", **requests) >= 2


# --- GET /metrics is guarded and not in the API contract -------------------------------------


async def test_metrics_are_served_to_localhost_only_without_a_token(app_client):
    async with app_client(CHATTY) as client:
        remote = await client.get("/metrics", scope_base={"client": ("203.0.113.9", 5000)})
        assert remote.status_code == 403
        assert (await remote.get_json())["code"] == "forbidden"
        unknown_peer = await client.get("/metrics")
        assert unknown_peer.status_code == 403
        # a proxy on this host forwards outside clients: refused too
        proxied = await client.get(
            "/metrics", headers={"X-Forwarded-For": "198.51.100.7"}, scope_base=LOCAL
        )
        assert proxied.status_code == 403
        ipv6 = await client.get("/metrics", scope_base={"client": ("::1", 5000)})
        assert ipv6.status_code == 200
        spec = await (await client.get("/openapi.json")).get_json()
        assert "/metrics" not in spec["paths"]


async def test_with_a_token_metrics_need_it_from_anywhere(app_client, monkeypatch):
    monkeypatch.setenv(metrics.TOKEN_ENV, "s3cret-token")
    async with app_client(CHATTY) as client:
        missing = await client.get("/metrics", scope_base=LOCAL)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await client.get(
            "/metrics", headers={"Authorization": "Bearer nope"}, scope_base=LOCAL
        )
        assert wrong.status_code == 401
        good = await client.get(
            "/metrics",
            headers={"Authorization": "Bearer s3cret-token", "X-Forwarded-For": "198.51.100.7"},
            scope_base={"client": ("203.0.113.9", 5000)},
        )
        assert good.status_code == 200
        assert "imperfect_http_requests_total" in await good.get_data(as_text=True)


# --- the outbox, read at scrape time ---------------------------------------------------------


async def test_outbox_depth_oldest_age_and_dead_messages_by_kind(app_client):
    async with app_client(CHATTY) as client:
        empty = await scrape(client)
        # core's own kind is always reported, at 0, so its series never vanish
        assert value(empty, "imperfect_outbox_pending", kind="core.account_deletion") == 0
        await enqueue("parcels.send", {"n": 1})
        await enqueue("parcels.send", {"n": 2})
        await (
            OutboxMessage.filter(kind="parcels.send")
            .order_by("id")
            .limit(1)
            .update(created_at=utcnow() - timedelta(minutes=5))
        )
        await enqueue("pings.send", {"n": 3})
        await OutboxMessage.filter(kind="pings.send").update(status=DEAD)
        text = await scrape(client)
    assert value(text, "imperfect_outbox_pending", kind="parcels.send") == 2
    age = value(text, "imperfect_outbox_oldest_pending_age_seconds", kind="parcels.send")
    assert 295 <= age <= 400
    assert value(text, "imperfect_outbox_dead", kind="parcels.send") == 0
    assert value(text, "imperfect_outbox_pending", kind="pings.send") == 0
    assert value(text, "imperfect_outbox_dead", kind="pings.send") == 1


# --- upstream calls --------------------------------------------------------------------------


class Upstream:
    def __init__(self) -> None:
        self.traceparents: list[str | None] = []
        self.app = Quart("upstream")

        @self.app.route("/status/<int:code>", methods=["GET", "POST"])
        async def status(code: int) -> tuple[dict[str, int], int]:
            self.traceparents.append(request.headers.get("traceparent"))
            return {"code": code}, code

        @self.app.route("/slow")
        async def slow() -> dict[str, int]:
            await asyncio.sleep(1)
            return {}


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    fake = Upstream()
    with FakeServer(fake.app) as server:
        yield fake, server.url


async def test_upstream_calls_are_counted_by_service_and_outcome(upstream):
    _, url = upstream
    gizmos = ServiceClient("gizmos", url, connect_timeout=0.5, read_timeout=0.2, retries=0)
    gone = ServiceClient(
        "gizmos", f"http://127.0.0.1:{free_port()}", connect_timeout=0.5, read_timeout=0.5
    )
    before = metrics.generate_latest(metrics.REGISTRY).decode()
    try:
        assert (await gizmos.request("GET", "/status/200")).status_code == 200
        assert (await gizmos.request("POST", "/status/404")).status_code == 404
        with pytest.raises(ApiError):
            await gizmos.request("POST", "/status/500")
        with pytest.raises(ApiError) as timed_out:
            await gizmos.request("GET", "/slow")
        assert timed_out.value.status == 504
        with pytest.raises(ApiError):
            await gone.request("GET", "/status/200", retries=1)  # two attempts
        async with gizmos.stream("GET", "/status/200") as stream:
            await stream.read()
    finally:
        await gizmos.aclose()
        await gone.aclose()
    after = metrics.generate_latest(metrics.REGISTRY).decode()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, service="gizmos", **labels) - value(
            before, name, service="gizmos", **labels
        )

    total = "imperfect_upstream_requests_total"
    assert delta(total, method="GET", outcome="ok") == 2  # the request and the stream
    assert delta(total, method="POST", outcome="4xx") == 1
    assert delta(total, method="POST", outcome="5xx") == 1
    assert delta(total, method="GET", outcome="timeout") == 1
    assert delta(total, method="GET", outcome="unreachable") == 2  # each attempt counts
    seconds = "imperfect_upstream_request_duration_seconds_count"
    assert delta(seconds, outcome="ok") == 2
    assert delta("imperfect_upstream_request_duration_seconds_sum", outcome="timeout") >= 0.2


# --- subscriptions ---------------------------------------------------------------------------


async def test_subscription_state_is_exported():
    from core.subscriptions import Subscription

    async def handler(channel: str, data: bytes) -> None:
        if data == b"bad":
            raise ValueError("bad message")

    name = f"observed-{os.getpid()}"
    subscription = Subscription(
        name,
        f"redis://127.0.0.1:{free_port()}",
        ["events"],
        handler,
        initial_backoff=0.01,
        max_backoff=0.01,
        connect_timeout=0.2,
    )
    await subscription._deliver(b"events", b"good")
    await subscription._deliver(b"events", b"bad")
    subscription.start()
    try:
        deadline = time.monotonic() + 10
        while subscription.reconnects < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await subscription.stop()
    text = metrics.generate_latest(metrics.REGISTRY).decode()
    assert value(text, "imperfect_subscription_received_total", subscription=name) == 2
    assert value(text, "imperfect_subscription_failed_total", subscription=name) == 1
    reconnects = value(text, "imperfect_subscription_reconnects_total", subscription=name)
    assert reconnects == subscription.reconnects >= 2
    assert value(text, "imperfect_subscription_connected", subscription=name) == 0


# --- logs carry the request id ---------------------------------------------------------------


async def test_every_log_line_of_a_request_carries_its_id(app_client, caplog):
    caplog.set_level(logging.DEBUG)
    async with app_client(CHATTY) as client:
        caplog.clear()
        mine = await client.get("/chatty/hello", headers={"X-Request-ID": "req-one.1"})
        theirs = await client.get("/chatty/hello")
    assert mine.headers["X-Request-ID"] == "req-one.1"
    other = theirs.headers["X-Request-ID"]
    family = [r for r in caplog.records if r.name == "tests.plugins.chatty"]
    assert len(family) == 4  # info + debug, per request
    assert [r.request_id for r in family] == ["req-one.1", "req-one.1", other, other]  # type: ignore[attr-defined]
    # outside a request, there is no id
    logging.getLogger("tests.outside").warning("no request here")
    assert caplog.records[-1].request_id is None  # type: ignore[attr-defined]


def _record(message: str, **extra: Any) -> logging.LogRecord:
    logs.install()
    return logging.getLogger("tests.logs").makeRecord(
        "tests.logs", logging.ERROR, __file__, 1, message, (), None, extra=extra
    )


def test_json_lines_have_time_level_logger_message_request_id_and_exception():
    formatter = logs.JsonFormatter()
    token = logs.REQUEST_ID.set("abc123")
    try:
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            record = logging.getLogger("tests.logs").makeRecord(
                "tests.logs",
                logging.ERROR,
                __file__,
                1,
                "failed %s",
                ("here",),
                exc_info=__import__("sys").exc_info(),
            )
    finally:
        logs.REQUEST_ID.reset(token)
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "tests.logs"
    assert entry["message"] == "failed here"
    assert entry["request_id"] == "abc123"
    assert entry["time"].endswith("+00:00")
    assert "RuntimeError: boom" in entry["exception"]
    assert "trace_id" not in entry  # tracing is off
    plain = json.loads(formatter.format(_record("hello")))
    assert plain["request_id"] is None and "exception" not in plain


def test_text_lines_end_with_the_request_id_when_there_is_one():
    formatter = logs.TextFormatter()
    assert formatter.format(_record("outside")).endswith("tests.logs: outside")
    token = logs.REQUEST_ID.set("r-9")
    try:
        record = _record("inside")
    finally:
        logs.REQUEST_ID.reset(token)
    assert formatter.format(record).endswith("tests.logs: inside rid=r-9")


def test_the_log_format_is_text_or_json():
    assert logs.log_format(None) == "text"
    assert logs.log_format("JSON") == "json"
    with pytest.raises(Exception, match="IMPERFECT_LOG_FORMAT=xml is not 'text' or 'json'"):
        logs.log_format("xml")


# --- OpenTelemetry ---------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[Any]:
    pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


async def test_requests_are_traced_as_their_route_continuing_the_callers_trace(app_client, spans):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    async with app_client(CHATTY) as client:
        response = await client.get(
            "/chatty/hello", headers={"traceparent": f"00-{trace_id}-{parent}-01"}
        )
        await client.get("/nowhere")
    (served, unmatched) = spans.get_finished_spans()
    assert served.name == "GET /chatty/hello"
    assert served.kind.name == "SERVER"
    assert f"{served.context.trace_id:032x}" == trace_id
    assert f"{served.parent.span_id:016x}" == parent
    assert served.attributes["http.route"] == "/chatty/hello"
    assert served.attributes["http.response.status_code"] == 200
    assert served.attributes["imperfect.family"] == "chatty"
    assert served.attributes["imperfect.request_id"] == response.headers["X-Request-ID"]
    assert unmatched.name == "GET <unmatched>"
    assert unmatched.attributes["http.response.status_code"] == 404


async def test_upstream_calls_are_child_spans_and_carry_traceparent(upstream, spans):
    fake, url = upstream
    gizmos = ServiceClient("gizmos", url, connect_timeout=0.5, read_timeout=0.5)
    active = tracing.active()
    assert active is not None
    handle = active.start_request("GET", {})
    try:
        await gizmos.request("GET", "/status/200")
        async with gizmos.stream("GET", "/status/503"):
            pass
    except ApiError:
        pass
    finally:
        active.end_request(handle, "GET", "/test", "tests", 200, "rid")
        await gizmos.aclose()
    call, streamed, server = spans.get_finished_spans()
    assert call.name == "gizmos GET" and call.kind.name == "CLIENT"
    assert call.parent.span_id == server.context.span_id
    assert call.attributes["imperfect.service"] == "gizmos"
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["imperfect.outcome"] == "ok"
    assert streamed.attributes["imperfect.outcome"] == "5xx"
    assert not streamed.status.is_ok
    sent = fake.traceparents[0]
    assert sent is not None
    assert sent.startswith(f"00-{call.context.trace_id:032x}-{call.context.span_id:016x}-")


def test_tracing_is_off_unless_an_exporter_is_configured(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(tracing.ENABLE_ENV, raising=False)
    assert not tracing.wanted()
    assert tracing.active() is None
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"IMPERFECT_OTEL": "1"})
    assert not tracing.wanted({"IMPERFECT_OTEL": "1", "OTEL_SDK_DISABLED": "true"})


# --- several worker processes ----------------------------------------------------------------


def test_prepare_workers_makes_a_fresh_directory_unless_one_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")  # restored (unset) after the test
    first = metrics.prepare_workers()
    assert os.environ[metrics.MULTIPROC_ENV] == first and Path(first).is_dir()
    assert not list(Path(first).iterdir())
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path / "given"))
    assert metrics.prepare_workers() == str(tmp_path / "given")
    assert (tmp_path / "given").is_dir()


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Callable[[], str]]]:
    """``imperfect serve --workers 2`` with JSON logs and a metrics directory; its base URL."""
    (tmp_path / "plugins.toml").write_text('[plugins.chatty]\nmodule = "tests.plugins.chatty"\n')
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"sqlite://{tmp_path}/serve.sqlite3",
        "IMPERFECT_LOG_FORMAT": "json",
        metrics.MULTIPROC_ENV: str(tmp_path / "metrics"),
    }
    with imperfect_serve(tmp_path, ["--migrate", "--workers", "2"], env) as (base, log_path):
        yield base, log_path.read_text


def test_two_workers_share_their_metrics_and_log_json_with_request_ids(two_workers):
    base, read_log = two_workers
    answers = []
    for _ in range(16):  # a new connection each time: either worker may take it
        with httpx.Client() as client:
            response = client.get(f"{base}/chatty/hello", timeout=5)
            answers.append((response.json()["pid"], response.headers["X-Request-ID"]))
    pids = {pid for pid, _ in answers}
    assert len(pids) == 2, answers  # both workers answered
    # whichever worker answers a scrape reports every worker's requests
    for _ in range(4):
        with httpx.Client() as client:
            text = client.get(f"{base}/metrics", timeout=5).text
        labels = {"route": "/chatty/hello", "method": "GET", "family": "chatty", "status": "200"}
        assert value(text, "imperfect_http_requests_total", **labels) == 16
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in read_log().splitlines() if line.startswith("{")]
        family = [e for e in lines if e["logger"] == "tests.plugins.chatty"]
        if len(family) >= 16:
            break
        assert time.monotonic() < deadline, read_log()
        time.sleep(0.1)
    by_id = {e["request_id"]: e for e in family}
    for pid, request_id in answers:
        entry = by_id[request_id]
        assert entry["message"] == f"chatty said hello from worker {pid}"
        assert entry["process"] == pid and entry["level"] == "INFO"
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in lines)
