"""The ``cheshire`` family through the real app, with a fake cheshire on a real socket
(tests/fakes/cheshire.py, docs/services/cheshire.md).

Questions are answered as JSON or streamed event by event (the first text arrives while
cheshire is still held); cheshire's internals never reach the client; charts that are not
Vega-Lite are dropped; cheshire down, slow, cut, stalled or failing gives a JSON 502/504
before the stream and an ``error`` event after, and the question is stored either way; a
client that leaves cancels cheshire's work; nobody sees another user's questions.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from core.emulator import Account, AuthEmulator
from plugins.cheshire.models import Question
from tests.fakes.cheshire import API_KEY, INTERNAL, FakeCheshire, chart
from tests.support import bearer, new_account, users_family
from tests.support.sse import DeclaredStream, declared

ASK = "/cheshire/questions"
STREAM = "/cheshire/questions/stream"
SSE = {"Accept": "text/event-stream"}
QUESTION = "How did my long runs go this month?"
LEAKS = ("db-internal", "SELECT", "Traceback", "cheshire.svc", "agent", "alt.Chart", "5432")


def plugins(cheshire: FakeCheshire, **settings: Any) -> dict[str, Any]:
    return {
        "users": users_family(),
        "cheshire": {
            "module": "plugins.cheshire",
            "settings": {"base_url": cheshire.url, "api_key": API_KEY, **settings},
        },
    }


async def _signed_up(client: Any, emulator: AuthEmulator) -> tuple[Account, dict[str, str]]:
    account = new_account(emulator)
    headers = bearer(account)
    assert (await client.post("/users", headers=headers)).status_code in (200, 201)
    return account, headers


async def _declared(client: Any) -> DeclaredStream:
    """The stream route's events as the spec declares them: every event read is checked."""
    return await declared(client, STREAM)


async def _stream(client: Any, headers: dict[str, str], question: str = QUESTION) -> Any:
    connection = client.request(
        STREAM, method="POST", headers={"Content-Type": "application/json", **SSE, **headers}
    )
    await connection.__aenter__()
    await connection.send(json.dumps({"question": question}).encode())
    await connection.send_complete()
    return connection


async def _rows(account: Account) -> list[Question]:
    return await Question.filter(user__firebase_uid=account.uid).order_by("id")


async def test_a_json_answer_is_stored_with_its_charts(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    async with app_client(plugins(fake_cheshire)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        answer = await client.post(ASK, json={"question": QUESTION}, headers=headers)
        assert answer.status_code == 201
        body = await answer.get_json()
        assert body["status"] == "answered" and body["error"] is None
        assert body["text"] == f"Here is what I found about: {QUESTION}"
        assert body["charts"] == [chart()]
        [call] = fake_cheshire.calls
        assert call.body == {"question": QUESTION, "user_id": account.uid}
        assert call.authorization == f"Bearer {API_KEY}"
        assert "application/json" in call.accept
        stored = await client.get(f"{ASK}/{body['id']}", headers=headers)
        assert await stored.get_json() == body
        [row] = await _rows(account)
        assert (row.status, row.text, row.charts) == ("answered", body["text"], [chart()])


async def test_a_stream_passes_each_piece_on_at_once_and_nothing_of_cheshire_inside(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    fake_cheshire.hold = threading.Event()
    async with app_client(plugins(fake_cheshire)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        connection = await _stream(client, headers)
        reader = (await _declared(client)).reader(connection)
        frames = [await reader.frame() for _ in range(3)]
        assert connection.status_code == 200
        assert [f["event"] for f in frames] == ["question", "progress", "delta"]
        assert frames[1]["data"] == {"stage": "planning"}
        assert frames[2]["data"] == {"text": "Here "}  # while cheshire is still held
        [row] = await _rows(account)
        assert row.status == "pending" and frames[0]["data"] == {"question_id": row.id}
        fake_cheshire.hold.set()
        while frames[-1]["event"] != "done":
            frames.append(await reader.frame())
        await connection.__aexit__(None, None, None)
        raw = reader.raw + connection.response_data.decode()
        events = [f["event"] for f in frames]
        assert events[3] == "progress" and frames[3]["data"] == {"stage": "working"}
        assert events.count("chart") == 1 and "future_event" not in events
        text = "".join(f["data"]["text"] for f in frames if f["event"] == "delta")
        assert text == f"Here is what I found about: {QUESTION}"
        assert frames[-1]["data"] == {"question_id": row.id}
        serialised = json.dumps(frames) + raw
        assert not [leak for leak in LEAKS if leak in serialised]
        await row.refresh_from_db()
        assert (row.status, row.text) == ("answered", text)
        assert row.charts == [chart()]
        assert row.answered_at is not None


async def test_accept_json_on_the_stream_route_gets_the_same_events_at_once(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    async with app_client(plugins(fake_cheshire)) as client:
        _, headers = await _signed_up(client, auth_emulator)
        answer = await client.post(
            STREAM, json={"question": QUESTION}, headers={**headers, "Accept": "application/json"}
        )
        events = await (await _declared(client)).read(answer)
        assert answer.content_type == "application/json"
        assert events[0]["event"] == "question" and events[-1]["event"] == "done"


async def test_charts_that_are_not_vega_lite_are_dropped(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    fake_cheshire.mode = "bad_chart"
    async with app_client(plugins(fake_cheshire)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        answer = await client.post(ASK, json={"question": QUESTION}, headers=headers)
        assert (await answer.get_json())["charts"] == []
        streamed = await client.post(
            STREAM, json={"question": QUESTION}, headers={**headers, **SSE}
        )
        frames = await (await _declared(client)).read(streamed)
        assert "chart" not in [f["event"] for f in frames]
        assert frames[-1]["event"] == "done"
        assert [row.charts for row in await _rows(account)] == [[], []]


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [("down", 502, "upstream_unavailable"), ("slow", 504, "upstream_timeout")],
)
@pytest.mark.parametrize("path", [ASK, STREAM])
async def test_cheshire_down_or_slow_is_a_json_error_and_the_question_is_kept(
    app_client: Callable[..., Any],
    auth_emulator: AuthEmulator,
    fake_cheshire: FakeCheshire,
    mode: str,
    status: int,
    code: str,
    path: str,
) -> None:
    fake_cheshire.mode, fake_cheshire.delay = mode, 2.0
    async with app_client(plugins(fake_cheshire, read_timeout=0.3, chunk_timeout=0.3)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        answer = await asyncio.wait_for(
            client.post(path, json={"question": QUESTION}, headers={**headers, **SSE}), 5
        )
        assert answer.status_code == status
        assert answer.content_type == "application/json"
        body = await answer.get_json()
        assert body["code"] == code
        assert not [leak for leak in LEAKS if leak in json.dumps(body)]
        [row] = await _rows(account)
        assert (row.question, row.status, row.error) == (QUESTION, "failed", code)
        history = await (await client.get(ASK, headers=headers)).get_json()
        assert [item["status"] for item in history["items"]] == ["failed"]


async def test_a_refused_question_is_a_400_and_kept(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    fake_cheshire.mode = "refuse"
    async with app_client(plugins(fake_cheshire)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        answer = await client.post(ASK, json={"question": "Write me a poem"}, headers=headers)
        assert answer.status_code == 400
        body = await answer.get_json()
        assert body["code"] == "question_refused" and INTERNAL not in json.dumps(body)
        assert [(r.status, r.error) for r in await _rows(account)] == [
            ("failed", "question_refused")
        ]


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("cut", "upstream_unavailable"),
        ("stall", "upstream_timeout"),
        ("error", "upstream_invalid"),
    ],
)
async def test_a_failure_mid_stream_is_an_error_event_and_what_arrived_is_kept(
    app_client: Callable[..., Any],
    auth_emulator: AuthEmulator,
    fake_cheshire: FakeCheshire,
    mode: str,
    code: str,
) -> None:
    fake_cheshire.mode = mode
    async with app_client(plugins(fake_cheshire, chunk_timeout=0.3)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        answer = await asyncio.wait_for(
            client.post(STREAM, json={"question": QUESTION}, headers={**headers, **SSE}), 5
        )
        frames = await (await _declared(client)).read(answer)
        assert [f["event"] for f in frames] == ["question", "progress", "delta", "error"]
        assert frames[-1]["data"]["code"] == code
        assert not [leak for leak in LEAKS if leak in (await answer.get_data()).decode()]
        [row] = await _rows(account)
        assert (row.question, row.status, row.error, row.text) == (
            QUESTION,
            "failed",
            code,
            "Here ",
        )


async def test_a_client_that_leaves_cancels_cheshire_and_the_answer_is_kept(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    fake_cheshire.mode = "endless"
    async with app_client(plugins(fake_cheshire)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        connection = await _stream(client, headers)
        reader = (await _declared(client)).reader(connection)
        assert [(await reader.frame())["event"] for _ in range(4)] == [
            "question",
            "progress",
            "delta",
            "delta",
        ]
        await connection.disconnect()
        assert await asyncio.to_thread(fake_cheshire.disconnected.wait, 5)
        for _ in range(100):  # the generator's finally stores what arrived
            [row] = await _rows(account)
            if row.status != "pending":
                break
            await asyncio.sleep(0.02)
        assert row.status == "interrupted" and row.text.startswith("Here and more ")


async def test_questions_are_paged_and_private_and_bad_input_writes_nothing(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    async with app_client(plugins(fake_cheshire)) as client:
        _, alice_headers = await _signed_up(client, auth_emulator)
        _, bob_headers = await _signed_up(client, auth_emulator)
        ids = []
        for n in range(3):
            answer = await client.post(ASK, json={"question": f"q{n}"}, headers=alice_headers)
            ids.append((await answer.get_json())["id"])
        first = await (await client.get(f"{ASK}?limit=2", headers=alice_headers)).get_json()
        assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
        after = first["next_before"]
        second = await client.get(f"{ASK}?limit=2&before={after}", headers=alice_headers)
        assert [i["id"] for i in (await second.get_json())["items"]] == [ids[0]]
        assert (await second.get_json())["next_before"] is None
        bobs = await (await client.get(ASK, headers=bob_headers)).get_json()
        assert bobs == {"items": [], "next_before": None}
        for question_id in (ids[0], 2**31 - 1, 10**20):
            missing = await client.get(f"{ASK}/{question_id}", headers=bob_headers)
            assert missing.status_code == 404
            assert (await missing.get_json())["code"] == "question_not_found"
        for path in (ASK, STREAM):
            for bad in (
                {},
                {"question": ""},
                {"question": "   "},
                {"question": "x" * 2001},
                {"question": "nul\x00"},
                {"question": 5},
                {"question": "q", "user_id": "x"},
            ):
                refused = await client.post(path, json=bad, headers={**bob_headers, **SSE})
                assert refused.status_code == 422, (path, bad)
        assert (await client.get(f"{ASK}?limit=0", headers=bob_headers)).status_code == 422
        assert (await client.get(ASK)).status_code == 401
        assert len(fake_cheshire.calls) == 3
        assert await Question.all().count() == 3


async def test_export_and_deletion_cover_the_questions(
    app_client: Callable[..., Any], auth_emulator: AuthEmulator, fake_cheshire: FakeCheshire
) -> None:
    async with app_client(plugins(fake_cheshire)) as client:
        account, headers = await _signed_up(client, auth_emulator)
        _, other_headers = await _signed_up(client, auth_emulator)
        await client.post(ASK, json={"question": QUESTION}, headers=headers)
        await client.post(ASK, json={"question": "theirs"}, headers=other_headers)
        export = await (await client.get("/account/export", headers=headers)).get_json()
        [exported] = export["families"]["cheshire"]["questions"]
        assert (exported["question"], exported["charts"]) == (QUESTION, [chart()])
        assert (await client.delete("/account", headers=headers)).status_code == 204
        assert await _rows(account) == []
        assert [q.question for q in await Question.all()] == ["theirs"]
