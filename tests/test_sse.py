"""Server-Sent Events from ``@endpoint(stream=...)``: frames, pace, heartbeats, closing, spec.

Driven through the test client and through ``imperfect serve`` (hypercorn and uvicorn)
with the ``ticker`` test family, whose stream the test holds and releases.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate as validate_spec
from pydantic import BaseModel
from quart import Response

from core import EventStream, ServerSentEvent, endpoint
from core.app import create_app
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.servers import serving_processes
from tests.support.sse import DeclaredStream, declared

TICKER = {"ticker": {"module": "tests.plugins.ticker"}}
STREAM = "/ticker/stream"
SSE_MEDIA = "text/event-stream"
SSE = {"Accept": SSE_MEDIA}


async def _open(client: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    connection = client.request(
        STREAM, method="POST", headers={"Content-Type": "application/json", **(headers or SSE)}
    )
    await connection.__aenter__()
    await connection.send(json.dumps(body).encode())
    await connection.send_complete()
    return connection


async def _closed(client: Any, key: str, timeout: float = 2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await (await client.get(f"/ticker/closed/{key}")).get_json())["closed"]:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_events_arrive_while_the_generator_is_still_blocked(
    app_client: Callable[..., Any],
) -> None:
    key = uuid.uuid4().hex
    async with app_client(TICKER) as client:
        connection = await _open(client, {"key": key, "count": 3, "hold_after": 1})
        reader = (await declared(client, STREAM)).reader(connection)
        first = await reader.frame()
        assert connection.status_code == 200
        assert connection.headers["Content-Type"] == "text/event-stream"
        assert connection.headers["Cache-Control"] == "no-cache"
        assert first["event"] == "tick" and first["id"] == "1" and first["data"]["n"] == 1
        assert not await _closed(client, key, timeout=0.1)  # still held after the first tick
        assert (await client.post(f"/ticker/release/{key}")).status_code == 204
        rest = [await reader.frame() for _ in range(3)]
        await connection.__aexit__(None, None, None)
        assert [f["event"] for f in rest] == ["tick", "tick", "done"]
        assert [f.get("id") for f in rest] == ["2", "3", None]
        assert rest[-1]["data"] == {"count": 3, "last_event_id": None}
        assert await _closed(client, key)


async def test_heartbeats_keep_an_idle_stream_open(app_client: Callable[..., Any]) -> None:
    key = uuid.uuid4().hex
    async with app_client(TICKER, sse_heartbeat_seconds=0.05) as client:
        connection = await _open(client, {"key": key, "count": 2, "hold_after": 1})
        reader = (await declared(client, STREAM)).reader(connection)
        assert (await reader.frame())["event"] == "tick"
        started = time.monotonic()
        beats = [await reader.frame(timeout=1) for _ in range(3)]
        assert beats == [{"comment": "heartbeat"}] * 3
        assert time.monotonic() - started >= 0.1  # paced by the setting, not a busy loop
        await client.post(f"/ticker/release/{key}")
        frames = [await reader.frame(timeout=1) for _ in range(2)]
        while frames[-1].get("comment"):
            frames.append(await reader.frame(timeout=1))
        assert [f["event"] for f in frames if "event" in f] == ["tick", "done"]
        await connection.__aexit__(None, None, None)


async def test_a_client_that_goes_away_closes_the_generator(
    app_client: Callable[..., Any],
) -> None:
    key = uuid.uuid4().hex
    async with app_client(TICKER) as client:
        connection = await _open(client, {"key": key, "count": 5, "hold_after": 1})
        assert (await (await declared(client, STREAM)).reader(connection).frame())["data"]["n"] == 1
        await connection.disconnect()
        assert await _closed(client, key)  # the handler's finally ran while it was held


async def test_accept_json_gets_the_finished_stream_as_one_document(
    app_client: Callable[..., Any],
) -> None:
    async with app_client(TICKER) as client:
        answer = await client.post(
            STREAM,
            json={"key": uuid.uuid4().hex, "count": 2},
            headers={"Accept": "application/json", "Last-Event-ID": "1"},
        )
        events = await (await declared(client, STREAM)).read(answer)
    assert answer.content_type == "application/json"
    assert [(e["event"], e["id"]) for e in events] == [("tick", "2"), ("done", None)]
    assert events[-1]["data"] == {"count": 2, "last_event_id": "1"}


async def test_an_error_before_the_first_event_is_a_json_error(
    app_client: Callable[..., Any],
) -> None:
    key = uuid.uuid4().hex
    async with app_client(TICKER) as client:
        answer = await client.post(STREAM, json={"key": key, "fail": "before"}, headers=SSE)
        assert answer.status_code == 502
        assert (await answer.get_json())["code"] == "upstream_unavailable"
        assert await _closed(client, key)
        invalid = await client.post(STREAM, json={"key": key, "count": 0}, headers=SSE)
        assert invalid.status_code == 422


@pytest.mark.parametrize("fail", ["after", "stray"])
async def test_a_failure_after_the_start_ends_the_stream_and_is_logged(
    app_client: Callable[..., Any], fail: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = uuid.uuid4().hex
    async with app_client(TICKER) as client:
        answer = await client.post(STREAM, json={"key": key, "count": 3, "fail": fail}, headers=SSE)
        frames = await (await declared(client, STREAM)).read(answer)
        assert [(f["event"], f["id"]) for f in frames] == [("tick", "1")]  # and nothing after
        assert await _closed(client, key)
    assert "failed after its stream started" in caplog.text


@pytest.mark.parametrize(
    ("media", "body", "refused"),
    [
        (SSE_MEDIA, 'id: 1\nevent: tick\ndata: {"n": 1, "at": 0.5}\n\n', None),
        (SSE_MEDIA, 'event: tick\ndata: {"n": "one", "at": 0.5}\n\n', "'tick' data"),
        (SSE_MEDIA, 'event: tock\ndata: {"n": 1, "at": 0.5}\n\n', "the wire"),
        (SSE_MEDIA, "event: tick\n\n", "the wire"),
        (SSE_MEDIA, 'event: tick\nretry: 5\ndata: {"n": 1, "at": 0}\n\n', "unexpected SSE"),
        (SSE_MEDIA, 'event: tick\ndata: {"n": 1, "at": 0}', "ended inside a frame"),
        ("application/json", '{"events": [{"event": "done", "data": {"count": 1}}]}', "JSON"),
        ("application/json", '{"items": []}', "JSON"),
    ],
)
async def test_the_readers_refuse_an_event_the_spec_does_not_declare(
    core_settings: Callable[..., Any], media: str, body: str, refused: str | None
) -> None:
    # Deliberately invalid answers, made here rather than by the app: what every test that
    # reads events relies on is that tests/support/sse.py fails them.
    document = create_app(core_settings(TICKER)).extensions["imperfect"].spec.document
    answer = Response(body, status=200, content_type=media)
    if refused is None:
        assert (await DeclaredStream(document, STREAM).read(answer))[0]["data"]["n"] == 1
        return
    with pytest.raises(AssertionError, match=refused):
        await DeclaredStream(document, STREAM).read(answer)


def test_declaration_mistakes_are_refused_when_the_module_loads() -> None:
    class Data(BaseModel):
        n: int

    stream = EventStream({"data": Data})
    with pytest.raises(TypeError, match="async generator"):

        @endpoint(auth="public", stream=stream)
        async def not_a_generator() -> None: ...

    with pytest.raises(TypeError, match="answers 200"):

        @endpoint(auth="public", stream=stream, status=201)
        async def created() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent("data", Data(n=1))

    with pytest.raises(TypeError, match="last_event_id"):

        @endpoint(auth="public")
        async def wants_an_id(last_event_id: str | None) -> None: ...

    with pytest.raises(TypeError, match="event name"):
        EventStream({"Bad Name": Data})
    with pytest.raises(ValueError, match="CR, LF"):
        ServerSentEvent("data", Data(n=1), id="a\nb")


def test_the_spec_of_a_streaming_route_is_valid_and_lints_clean(
    core_settings: Callable[..., Any], tmp_path: Path
) -> None:
    app = create_app(core_settings(TICKER))
    document = app.extensions["imperfect"].spec.document
    validate_spec(document)
    success = document["paths"][STREAM]["post"]["responses"]["200"]["content"]
    assert set(success) == {"text/event-stream", "application/json"}
    variants = success["text/event-stream"]["schema"]["oneOf"]
    assert [v["properties"]["event"]["const"] for v in variants] == ["tick", "done"]
    assert {v["properties"]["data"]["type"] for v in variants} == {"string"}
    assert [v["properties"]["data"]["contentSchema"]["$ref"] for v in variants] == [
        "#/components/schemas/Tick",
        "#/components/schemas/Ticked",
    ]
    assert {"Tick", "Ticked"} <= set(document["components"]["schemas"])
    spec_file = tmp_path / "openapi.json"
    spec_file.write_text(json.dumps(document))
    config = (ROOT / "redocly.yaml").read_text().replace("docs/openapi.json", str(spec_file))
    (tmp_path / "redocly.yaml").write_text(config)
    lint = subprocess.run(
        [
            str(ROOT / "tools/node_modules/.bin/redocly"),
            "lint",
            "--config",
            "redocly.yaml",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    problems = json.loads(lint.stdout)["problems"]
    # the ticker family is public, so the bearer scheme is unused here: nothing else
    assert [p["message"] for p in problems] == [
        'Security scheme: "FirebaseBearer" is never used.'
    ], lint.stdout


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_a_served_app_delivers_each_event_at_once_and_notices_a_client_gone(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPERFECT_TEST_SERVER", server)
    env = {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite://{tmp_path}/serve.sqlite3",
        "IMPERFECT_AUTO_MIGRATE": "1",
        "IMPERFECT_SSE_HEARTBEAT_SECONDS": "0.2",
    }
    with (
        serving_processes(tmp_path, TICKER, [free_port()], env) as [base],
        httpx.Client(base_url=base, timeout=5) as http,
    ):
        key = uuid.uuid4().hex
        body = {"key": key, "count": 2, "hold_after": 1}
        declared_stream = DeclaredStream(http.get("/openapi.json").json(), STREAM)
        with http.stream("POST", STREAM, json=body, headers=SSE) as stream:
            assert stream.status_code == 200
            reader = declared_stream.socket_reader(stream)
            first = reader.frame()
            assert (first["id"], first["event"], first["data"]["n"]) == ("1", "tick", 1)
            assert reader.frame() == {"comment": "heartbeat"}  # held: the tick came on its own
            assert not http.get(f"/ticker/closed/{key}").json()["closed"]
        deadline = time.monotonic() + 5  # the client is gone: the generator is closed
        while not http.get(f"/ticker/closed/{key}").json()["closed"]:
            assert time.monotonic() < deadline, "the generator was not closed"
            time.sleep(0.05)


@pytest.fixture(autouse=True)
def _no_shell_plugins_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The served apps get their own plugins file, whatever the shell running the suite set."""
    for name in ("IMPERFECT_PLUGINS_FILE", "IMPERFECT_DISABLE", "IMPERFECT_ENABLE"):
        if name in os.environ:
            monkeypatch.delenv(name)
