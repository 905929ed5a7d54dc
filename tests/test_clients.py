"""core.clients.ServiceClient against a real server: retries, timeouts, error mapping, streams."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from quart import Quart, request

from core.clients import ServiceClient, UpstreamStreamError
from core.errors import ApiError
from tests.fakes.server import FakeServer
from tests.fakes.streaming import Script, StreamingServer
from tests.support.ports import free_port


class Flaky:
    """A server whose next answers are scripted: a list of statuses, then 200."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.calls: list[str] = []
        self.delay = 0.0
        self.app = Quart("flaky")

        @self.app.route("/thing", methods=["GET", "POST", "PUT", "DELETE"])
        async def thing() -> tuple[dict[str, object], int]:
            self.calls.append(request.method)
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.script.pop(0) if self.script else 200
            return {"value": 1, "method": request.method}, status


class Thing(BaseModel):
    value: int


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, str]]:
    fake = Flaky()
    with FakeServer(fake.app) as server:
        yield fake, server.url


def client(url: str, **options: float) -> ServiceClient:
    settings = {"connect_timeout": 0.5, "read_timeout": 0.5, "backoff": 0.01, **options}
    return ServiceClient("widgets", url, **settings)  # type: ignore[arg-type]


async def test_idempotent_call_is_retried_on_503_then_succeeds(flaky):
    fake, url = flaky
    fake.script = [503, 502]
    widgets = client(url)
    try:
        response = await widgets.request("GET", "/thing")
        assert widgets.parse(response, Thing).value == 1
    finally:
        await widgets.aclose()
    assert fake.calls == ["GET", "GET", "GET"]


async def test_retries_are_bounded_and_the_error_names_the_service(flaky):
    fake, url = flaky
    fake.script = [503, 503, 503, 503]
    widgets = client(url, retries=2)
    try:
        with pytest.raises(ApiError) as raised:
            await widgets.request("DELETE", "/thing")
    finally:
        await widgets.aclose()
    assert fake.calls == ["DELETE"] * 3
    error = raised.value
    assert (error.status, error.code) == (502, "upstream_unavailable")
    assert error.detail == "widgets failed to answer (HTTP 503)."


async def test_post_is_never_retried(flaky):
    fake, url = flaky
    fake.script = [503]
    widgets = client(url)
    try:
        with pytest.raises(ApiError) as raised:
            await widgets.request("POST", "/thing", json={})
    finally:
        await widgets.aclose()
    assert fake.calls == ["POST"]
    assert raised.value.status == 502


async def test_a_4xx_is_returned_for_the_caller_to_interpret(flaky):
    fake, url = flaky
    fake.script = [404]
    widgets = client(url)
    try:
        response = await widgets.request("GET", "/thing")
    finally:
        await widgets.aclose()
    assert response.status_code == 404
    assert fake.calls == ["GET"]


async def test_timeout_is_504_within_the_read_timeout_and_not_retried(flaky):
    fake, url = flaky
    fake.delay = 2.0
    widgets = client(url, read_timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(ApiError) as raised:
            await widgets.request("GET", "/thing")
    finally:
        await widgets.aclose()
    assert time.monotonic() - started < 1.0
    assert fake.calls == ["GET"]
    error = raised.value
    assert (error.status, error.code) == (504, "upstream_timeout")
    assert error.detail == "widgets did not answer within 0.2s."


async def test_refused_connection_is_retried_then_502():
    widgets = client(f"http://127.0.0.1:{free_port()}", retries=1)
    try:
        with pytest.raises(ApiError) as raised:
            await widgets.request("GET", "/thing")
    finally:
        await widgets.aclose()
    error = raised.value
    assert (error.status, error.code) == (502, "upstream_unavailable")
    assert error.detail == "widgets could not be reached."


async def test_unexpected_body_is_502_naming_the_service(flaky):
    _, url = flaky
    widgets = client(url)

    class Other(BaseModel):
        missing: str

    try:
        response = await widgets.request("GET", "/thing")
        with pytest.raises(ApiError) as raised:
            widgets.parse(response, Other)
    finally:
        await widgets.aclose()
    assert (raised.value.status, raised.value.code) == (502, "upstream_invalid")
    assert "widgets" in raised.value.detail


# --- streaming: ServiceClient.stream against a scripted server on a real socket ---------------


@pytest.fixture
def streaming() -> Iterator[StreamingServer]:
    with StreamingServer() as server:
        yield server


async def gone(server: StreamingServer) -> bool:
    """Whether the fake saw its client close the connection, within a second."""
    return await asyncio.to_thread(server.disconnected.wait, 1.0)


async def test_chunks_arrive_one_by_one_as_the_server_sends_them(streaming):
    hold = threading.Event()
    streaming.scripts["/events"] = Script(
        headers={"Content-Type": "text/event-stream"}, body=[b"first", hold, b"second"]
    )
    widgets = client(streaming.url)
    try:
        async with widgets.stream("GET", "/events") as upstream:
            assert upstream.status_code == 200
            assert upstream.headers["content-type"] == "text/event-stream"
            chunks = upstream.chunks()
            # The server is holding "second" until `hold` is set: this chunk came on its own.
            assert await asyncio.wait_for(anext(chunks), 1.0) == b"first"
            assert not hold.is_set()
            hold.set()
            assert await asyncio.wait_for(anext(chunks), 1.0) == b"second"
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(anext(chunks), 1.0)
    finally:
        await widgets.aclose()
    assert [(seen.method, seen.path) for seen in streaming.requests] == [("GET", "/events")]


async def test_lines_are_yielded_as_soon_as_complete_across_chunk_boundaries(streaming):
    hold = threading.Event()
    streaming.scripts["/events"] = Script(
        headers={"Content-Type": "text/event-stream; charset=utf-8"},
        # A CRLF and a two-byte UTF-8 character are each split between two chunks.
        body=[b"data: one\n", hold, b"data: t", b"wo\r", b"\n\ncaf\xc3", b"\xa9\rlast"],
    )
    widgets = client(streaming.url)
    try:
        async with widgets.stream("GET", "/events") as upstream:
            lines = upstream.lines()
            assert await asyncio.wait_for(anext(lines), 1.0) == "data: one"
            hold.set()
            rest = [line async for line in lines]
    finally:
        await widgets.aclose()
    assert rest == ["data: two", "", "café", "last"]


async def test_a_stalled_stream_times_out_per_chunk_and_is_closed(streaming):
    streaming.scripts["/events"] = Script(body=[b"first"], ending="stall")
    widgets = client(streaming.url, read_timeout=0.2)  # chunk_timeout defaults to it
    received: list[bytes] = []
    started = time.monotonic()
    try:
        async with widgets.stream("GET", "/events") as upstream:
            with pytest.raises(UpstreamStreamError) as raised:
                async for chunk in upstream.chunks():
                    received.append(chunk)
            # The upstream is closed at the timeout, while the caller is still in the block
            # (writing its error event), not only when it leaves.
            assert await gone(streaming)
    finally:
        await widgets.aclose()
    assert time.monotonic() - started < 1.0
    assert received == [b"first"]
    error = raised.value
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.service) == (504, "upstream_timeout", "widgets")
    assert error.detail == "widgets stopped sending for 0.2s."


async def test_a_chunk_timeout_longer_than_the_read_timeout_lets_a_slow_chunk_through(streaming):
    hold = threading.Event()
    streaming.scripts["/tokens"] = Script(body=[b"a", hold, b"b"])
    widgets = client(streaming.url, read_timeout=0.1)
    timer = threading.Timer(0.3, hold.set)
    try:
        async with widgets.stream("POST", "/tokens", json={}, chunk_timeout=1.0) as upstream:
            timer.start()
            body = await upstream.read()
    finally:
        timer.cancel()
        await widgets.aclose()
    assert body == b"ab"


async def test_a_connection_cut_mid_stream_is_502(streaming):
    streaming.scripts["/events"] = Script(body=[b"first"], ending="cut")
    widgets = client(streaming.url)
    received: list[str] = []
    try:
        async with widgets.stream("GET", "/events") as upstream:
            with pytest.raises(UpstreamStreamError) as raised:
                async for line in upstream.lines():
                    received.append(line)
    finally:
        await widgets.aclose()
    error = raised.value
    assert (error.status, error.code) == (502, "upstream_unavailable")
    assert error.detail == "widgets closed the connection mid-stream."
    assert received == []  # "first" had no line end yet: no half line is passed on


async def test_a_5xx_before_streaming_is_502_logged_and_not_retried(streaming, caplog):
    streaming.scripts["/events"] = Script(status=503, body=[b"database on fire"])
    widgets = client(streaming.url)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="imperfect.clients"),
            pytest.raises(ApiError) as raised,
        ):
            async with widgets.stream("GET", "/events"):
                pytest.fail("a 5xx must not be yielded")
    finally:
        await widgets.aclose()
    error = raised.value
    assert not isinstance(error, UpstreamStreamError)
    assert (error.status, error.code) == (502, "upstream_unavailable")
    assert error.detail == "widgets failed to answer (HTTP 503)."
    assert "database on fire" in caplog.text
    assert len(streaming.requests) == 1  # GET, 503: request() would retry, a stream does not


async def test_a_4xx_is_passed_back_with_its_body_readable(streaming):
    streaming.scripts["/events"] = Script(status=404, body=[b'{"detail": "no such stream"}'])
    widgets = client(streaming.url)
    try:
        async with widgets.stream("GET", "/events") as upstream:
            assert upstream.status_code == 404
            assert await upstream.read() == b'{"detail": "no such stream"}'
    finally:
        await widgets.aclose()


async def test_the_request_carries_params_json_and_headers(streaming):
    streaming.scripts["/chat"] = Script(body=[b"ok"])
    widgets = client(streaming.url)
    try:
        async with widgets.stream(
            "post",
            "/chat",
            params={"model": "tiny"},
            json={"prompt": "hi"},
            headers={"Accept": "text/event-stream"},
        ) as upstream:
            assert await upstream.read() == b"ok"
    finally:
        await widgets.aclose()
    [seen] = streaming.requests
    assert (seen.method, seen.path) == ("POST", "/chat")
    assert json.loads(seen.body) == {"prompt": "hi"}
    assert seen.headers["accept"] == "text/event-stream"


async def test_a_refused_connection_is_502_and_not_retried():
    widgets = client(f"http://127.0.0.1:{free_port()}", retries=3)
    started = time.monotonic()
    try:
        with pytest.raises(ApiError) as raised:
            async with widgets.stream("GET", "/events"):
                pytest.fail("nothing to stream from")
    finally:
        await widgets.aclose()
    assert time.monotonic() - started < 0.5
    error = raised.value
    assert (error.status, error.code) == (502, "upstream_unavailable")
    assert error.detail == "widgets could not be reached."


async def test_no_headers_within_the_read_timeout_is_504(flaky):
    fake, url = flaky
    fake.delay = 2.0
    widgets = client(url, read_timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(ApiError) as raised:
            async with widgets.stream("GET", "/thing"):
                pytest.fail("no headers came")
    finally:
        await widgets.aclose()
    assert time.monotonic() - started < 1.0
    assert fake.calls == ["GET"]
    assert (raised.value.status, raised.value.code) == (504, "upstream_timeout")
    assert raised.value.detail == "widgets did not answer within 0.2s."


async def test_cancelling_the_consumer_closes_the_upstream_connection(streaming):
    streaming.scripts["/events"] = Script(body=[b"first"], ending="stall")
    widgets = client(streaming.url)
    first = asyncio.Event()

    async def consume() -> None:
        async with widgets.stream("GET", "/events", chunk_timeout=10.0) as upstream:
            async for _ in upstream.chunks():
                first.set()

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(first.wait(), 1.0)
        assert not streaming.disconnected.is_set()
        consumer.cancel()  # as when our own client goes away
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert await gone(streaming)
    finally:
        consumer.cancel()
        await widgets.aclose()


async def test_leaving_the_block_early_closes_the_upstream_and_the_client_goes_on(streaming):
    streaming.scripts["/events"] = Script(body=[b"first\n", b"second\n"], ending="stall")
    streaming.scripts["/again"] = Script(body=[b"fine"])
    widgets = client(streaming.url, read_timeout=1.5)
    try:
        async with widgets.stream("GET", "/events") as upstream:
            chunks = upstream.chunks()
            assert await anext(chunks) == b"first\n"
            # Left with `chunks` suspended and still referenced: only leaving the block
            # closes the response, not the iterator's clean-up.
        assert await gone(streaming)
        await chunks.aclose()
        async with widgets.stream("GET", "/again") as upstream:
            assert await upstream.read() == b"fine"
    finally:
        await widgets.aclose()
