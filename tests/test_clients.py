"""core.clients.ServiceClient against a real server: retries, timeouts, error mapping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from quart import Quart, request

from core.clients import ServiceClient
from core.errors import ApiError
from tests.conftest import free_port
from tests.fakes.server import FakeServer


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
