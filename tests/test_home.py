"""The ``home`` family through the real app: the Home state assembled from the families'
parts, boards streamed section by section (timing under the test's control), failing and
slow sections, reconnecting with ``Last-Event-ID``, the narrative writers (rules, and an
OpenAI-compatible stream on a socket), feedback and check-ins reaching hare (also while it
is down), isolation, bad input, account export and deletion.

The sections come from the ``coach`` test family (tests/plugins/coach), whose sections wait
on events the test sets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from plugins.home import boards
from plugins.home.models import Board, BoardEvent
from plugins.home.runtime import Generations
from plugins.home.schemas import FAMILY
from tests.fakes.hare import API_KEY, FakeHare
from tests.fakes.llm import FakeLlm
from tests.health_support import member
from tests.plugins import coach
from tests.support import dispatcher_of, runtime_of
from tests.support.rows import user_rows
from tests.support.sse import Reader, declared
from tests.test_hare import drain

BOARDS = "/user_states/me/boards"
BOARD_EVENTS = "/user_states/me/boards/{board_id}/events"  # as the spec names it
SSE = {"Accept": "text/event-stream"}
JSON = {"Accept": "application/json"}
HOME_TABLES = ("home_board", "home_board_event", "home_feedback", "home_check_in")


@pytest.fixture(autouse=True)
def unlimited(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IMPERFECT_RATE_LIMITS", "0")
    coach.GATES.clear()
    coach.STARTED.clear()
    yield
    for gate in coach.GATES.values():
        gate.set()  # nothing left waiting when the app stops


@pytest.fixture
def fake_hare() -> Iterator[FakeHare]:
    hare = FakeHare().start()
    try:
        yield hare
    finally:
        hare.stop()


def families(
    *,
    sections: list[str] | None = None,
    coach_on: bool = True,
    part: str = "ok",
    hare_url: str | None = None,
    **home: Any,
) -> dict[str, Any]:
    chosen: dict[str, Any] = {"users": {"module": "plugins.users"}}
    if hare_url is not None:
        chosen["hare"] = {
            "module": "plugins.hare",
            "settings": {"base_url": hare_url, "api_key": API_KEY},
        }
    chosen["home"] = {"module": "plugins.home", "settings": home}
    if coach_on:
        settings: dict[str, Any] = {"part": part}
        if sections is not None:
            settings["sections"] = sections
        chosen["coach"] = {"module": "tests.plugins.coach", "settings": settings}
    return chosen


async def open_stream(client: Any, path: str, headers: dict[str, str], method: str = "POST") -> Any:
    connection = client.request(path, method=method, headers={**SSE, **headers})
    await connection.__aenter__()
    await connection.send_complete()
    return connection


async def drop(connection: Any) -> None:
    """The client goes away (and the test waits until the app has seen it)."""
    await connection.disconnect()
    await asyncio.wait_for(connection.__aexit__(None, None, None), 2)


async def board_reader(client: Any, connection: Any) -> Reader:
    """A reader of a new board's stream, each event checked against the spec."""
    return (await declared(client, BOARDS)).reader(connection)


async def json_board(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """A new board's events, as the JSON fallback (checked against the spec)."""
    response = await client.post(BOARDS, headers={**JSON, **headers})
    return await (await declared(client, BOARDS)).read(response)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def stored_view(board: dict[str, Any]) -> dict[str, Any]:
    return {k: board[k] for k in ("sections", "errors", "narrative")}


def streamed_view(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client that received ``events`` knows of the board, shaped like the stored one."""
    sections = sorted(
        (e["data"] for e in events if e["event"] == "section"),
        key=lambda s: (s["order"], s["name"]),
    )
    pieces = [e["data"]["text"] for e in events if e["event"] == "narrative"]
    return {
        "sections": sections,
        "errors": [e["data"] for e in events if e["event"] == "error"],
        "narrative": "".join(pieces) or None,
    }


# --- (1) real streaming ------------------------------------------------------------------


async def test_the_first_section_arrives_while_the_slowest_is_still_being_computed(
    app_client, auth_emulator
):
    slow = coach.GATES["volume"] = asyncio.Event()
    async with app_client(families(sections=["countdown", "volume"])) as client:
        runner = await member(client, auth_emulator)
        connection = await open_stream(client, BOARDS, runner.headers)
        reader = await board_reader(client, connection)
        started = await reader.frame()
        assert connection.status_code == 200
        assert connection.headers["Content-Type"] == "text/event-stream"
        assert started["event"] == "board"
        board_id = started["data"]["board_id"]
        assert started["id"] == f"{board_id}-1"
        assert set(started["data"]["sections"]) == {"countdown", "volume", "check_ins"}
        first = await reader.frame()
        assert first["event"] == "section" and first["data"]["name"] == "countdown"
        assert first["data"]["family"] == "coach" and first["data"]["title"] == "Countdown"
        # the slowest section has started and is still waiting on the test
        assert coach.STARTED["volume"].is_set() and not slow.is_set()
        assert (await Board.get(id=board_id)).status == "generating"
        slow.set()
        rest = await reader.until_done()
        await connection.__aexit__(None, None, None)
        assert names(rest)[0] == "section" and rest[0]["data"]["name"] == "volume"
        assert names(rest)[1:] == ["narrative", "narrative", "done"]
        assert [f["id"] for f in [started, first, *rest]] == [
            f"{board_id}-{n}" for n in range(1, 7)
        ]
        # the rules writer: one sentence per section, in board order (countdown first)
        text = "".join(f["data"]["text"] for f in rest if f["event"] == "narrative")
        assert text.startswith("Countdown: ") and "Volume: 42 km this week." in text
        stored = await (await client.get(f"{BOARDS}/{board_id}", headers=runner.headers)).get_json()
        assert stored["status"] == "done" and stored["writer"] == "rules"
        assert stored_view(stored) == streamed_view([started, first, *rest])
        assert rest[-1]["data"] == {"board_id": board_id}


async def test_a_familys_section_and_part_are_there_when_it_is_on_and_absent_when_off(
    app_client, auth_emulator
):
    async with app_client(families()) as client:
        runner = await member(client, auth_emulator)
        events = await json_board(client, runner.headers)
        sections = [e["data"]["name"] for e in events if e["event"] == "section"]
        assert sorted(sections) == ["countdown", "volume"]
        state = await (await client.get("/user_states/me", headers=runner.headers)).get_json()
        assert state["parts"]["active_goal"]["event"] == "Coach Marathon"
        assert state["parts"]["latest_board"]["id"] == events[-1]["data"]["board_id"]
        assert state["unavailable"] == []
    async with app_client(families(coach_on=False)) as client:
        runner = await member(client, auth_emulator)
        events = await json_board(client, runner.headers)
        assert names(events) == ["board", "narrative", "done"]
        assert events[0]["data"]["sections"] == ["check_ins"]
        state = await (await client.get("/user_states/me", headers=runner.headers)).get_json()
        assert "active_goal" not in state["parts"]
        assert set(state["parts"]) == {"latest_board", "check_in"}


async def test_failing_slow_and_malformed_sections_are_error_events_and_the_board_completes(
    app_client, auth_emulator
):
    plugins = families(
        sections=["countdown", "broken", "sleepy", "shapeless"], section_timeout_seconds=0.3
    )
    async with app_client(plugins) as client:
        runner = await member(client, auth_emulator)
        started = time.monotonic()
        events = await json_board(client, runner.headers)
        assert time.monotonic() - started < 3  # the sleeper was cut at its limit
        errors = {e["data"]["section"]: e["data"] for e in events if e["event"] == "error"}
        assert {name: e["reason"] for name, e in errors.items()} == {
            "broken": "failed",
            "sleepy": "timed_out",
            "shapeless": "invalid",
        }
        assert "db-internal" not in json.dumps(events)  # no internals reach the client
        assert [e["data"]["name"] for e in events if e["event"] == "section"] == ["countdown"]
        assert names(events)[-1] == "done"
        board_id = events[-1]["data"]["board_id"]
        stored = await (await client.get(f"{BOARDS}/{board_id}", headers=runner.headers)).get_json()
        assert stored["status"] == "done"
        assert stored_view(stored) == streamed_view(events)


# --- (2) reconnecting --------------------------------------------------------------------


async def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed(
    app_client, auth_emulator
):
    slow = coach.GATES["volume"] = asyncio.Event()
    async with app_client(families(sections=["countdown", "volume"])) as client:
        runner = await member(client, auth_emulator)
        dropping = await open_stream(client, BOARDS, runner.headers)
        reader = await board_reader(client, dropping)
        seen = [await reader.frame(), await reader.frame()]
        board_id = seen[0]["data"]["board_id"]
        steady = await open_stream(client, f"{BOARDS}/{board_id}/events", runner.headers, "GET")
        await drop(dropping)  # the client drops mid-board
        slow.set()  # the board is made on without it
        followed = await declared(client, BOARD_EVENTS, "get")
        never_dropped = await followed.reader(steady).until_done()
        await steady.__aexit__(None, None, None)
        assert (await Board.get(id=board_id)).status == "done"
        last = seen[-1]["id"]
        for stream, resumed in (
            (
                followed,
                await client.get(
                    f"{BOARDS}/{board_id}/events",
                    headers={**SSE, **runner.headers, "Last-Event-ID": last},
                ),
            ),
            (
                await declared(client, BOARDS),
                await client.post(BOARDS, headers={**SSE, **runner.headers, "Last-Event-ID": last}),
            ),
        ):
            missed = await stream.read(resumed)
            assert seen + missed == never_dropped
        assert await Board.filter(user_id=runner.id).count() == 1  # resuming made no new board
        stored = await (await client.get(f"{BOARDS}/{board_id}", headers=runner.headers)).get_json()
        assert stored_view(stored) == streamed_view(never_dropped)
        for bad in ("7", "x-1", f"{board_id}-", "1-99999999999"):
            refused = await client.get(
                f"{BOARDS}/{board_id}/events", headers={**runner.headers, "Last-Event-ID": bad}
            )
            assert refused.status_code == 400, bad
            assert (await refused.get_json())["code"] == "invalid_last_event_id"
        other = await client.get(
            f"{BOARDS}/{board_id}/events",
            headers={**runner.headers, "Last-Event-ID": f"{board_id + 1}-1"},
        )
        assert other.status_code == 400


async def test_a_reader_without_wakeups_follows_a_board_made_elsewhere_through_storage(
    app_client, auth_emulator
):
    """A reconnect landing on another instance: its own Generations never hears of the
    board, so it reads the rows as the generating instance stores them."""
    slow = coach.GATES["volume"] = asyncio.Event()
    async with app_client(families(sections=["countdown", "volume"])) as client:
        runner = await member(client, auth_emulator)
        connection = await open_stream(client, BOARDS, runner.headers)
        board_id = (await (await board_reader(client, connection)).frame())["data"]["board_id"]
        await drop(connection)
        board = await Board.get(id=board_id)
        elsewhere = Generations()
        settings = FAMILY.of(runtime_of(client).platform).settings

        async def follow() -> list[tuple[int, str, Any]]:
            return [e async for e in boards.follow(elsewhere, settings, board, 1)]

        reading = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        assert not reading.done()  # waiting on the slow section, polling storage
        slow.set()
        followed = await asyncio.wait_for(reading, 5)
        rows = await BoardEvent.filter(board_id=board_id, seq__gt=1).order_by("seq")
        assert [(seq, name) for seq, name, _ in followed] == [(r.seq, r.event) for r in rows]
        assert followed[-1][1] == "done"


async def test_a_board_cut_short_by_a_stopping_instance_is_lost_and_its_events_replay(
    app_client, auth_emulator
):
    coach.GATES["volume"] = asyncio.Event()  # never set: the app stops mid-board
    plugins = families(sections=["countdown", "volume"])
    async with app_client(plugins) as client:
        runner = await member(client, auth_emulator)
        connection = await open_stream(client, BOARDS, runner.headers)
        reader = await board_reader(client, connection)
        seen = [await reader.frame(), await reader.frame()]
        await drop(connection)
    async with app_client(plugins) as client:  # the next instance, on the same database
        board_id = seen[0]["data"]["board_id"]
        stored = await (await client.get(f"{BOARDS}/{board_id}", headers=runner.headers)).get_json()
        assert stored["status"] == "lost"
        replay = await client.get(f"{BOARDS}/{board_id}/events", headers={**SSE, **runner.headers})
        replayed = await (await declared(client, BOARD_EVENTS, "get")).read(replay)
        assert replayed == seen  # and no done
        latest = await client.get(f"{BOARDS}/latest", headers=runner.headers)
        assert latest.status_code == 404  # only finished boards count


# --- the narrative writer ----------------------------------------------------------------


@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    with FakeLlm() as llm:
        yield llm


def llm_settings(llm: FakeLlm, **extra: Any) -> dict[str, Any]:
    return {
        "llm_base_url": llm.base_url,
        "llm_model": "coach-small",
        "llm_api_key": "sk-test-key",
        "llm_chunk_timeout": 0.5,
        **extra,
    }


async def test_the_llm_writer_streams_its_text_into_the_board_token_by_token(
    app_client, auth_emulator, fake_llm
):
    hold = fake_llm.answer(["You ", "are ", "on ", "track."], hold_after=2)
    plugins = families(sections=["countdown"], **llm_settings(fake_llm, llm_chunk_timeout=5))
    async with app_client(plugins) as client:
        runner = await member(client, auth_emulator)
        connection = await open_stream(client, BOARDS, runner.headers)
        reader = await board_reader(client, connection)
        frames = [await reader.frame() for _ in range(4)]
        assert names(frames) == ["board", "section", "narrative", "narrative"]
        assert [f["data"]["text"] for f in frames[2:]] == ["You ", "are "]  # the model holds
        hold.set()
        frames += await reader.until_done()
        await connection.__aexit__(None, None, None)
        assert [f["data"]["text"] for f in frames if f["event"] == "narrative"] == [
            "You ",
            "are ",
            "on ",
            "track.",
        ]
        board_id = frames[0]["data"]["board_id"]
        stored = await (await client.get(f"{BOARDS}/{board_id}", headers=runner.headers)).get_json()
        assert stored["narrative"] == "You are on track." and stored["writer"] == "llm"
    (seen,) = fake_llm.requests()
    sent = json.loads(seen.body)
    assert seen.headers["authorization"] == "Bearer sk-test-key"
    assert sent["model"] == "coach-small" and sent["stream"] is True
    assert "days to go to the Coach Marathon" in sent["messages"][1]["content"]


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({"tokens": ["Half ", "a "], "ending": "cut"}, "failed"),
        ({"tokens": ["Half ", "a "], "ending": "stall"}, "timed_out"),
        ({"tokens": [], "status": 500}, "failed"),
    ],
)
async def test_a_failing_model_is_an_error_event_and_the_board_still_completes(
    app_client, auth_emulator, fake_llm, script, reason
):
    fake_llm.answer(**script)
    async with app_client(families(sections=["countdown"], **llm_settings(fake_llm))) as client:
        runner = await member(client, auth_emulator)
        started = time.monotonic()
        events = await json_board(client, runner.headers)
        assert time.monotonic() - started < 3  # no hung stream
        assert names(events)[-1] == "done"
        errors = [e["data"] for e in events if e["event"] == "error"]
        assert [(e["section"], e["reason"]) for e in errors] == [("narrative", reason)]
        board_id = events[-1]["data"]["board_id"]
        stored = await (await client.get(f"{BOARDS}/{board_id}", headers=runner.headers)).get_json()
        assert stored["status"] == "done"
        assert stored_view(stored) == streamed_view(events)


# --- the Home state ----------------------------------------------------------------------


@pytest.mark.parametrize(("part", "reason"), [("fail", "failed"), ("hang", "timed_out")])
async def test_a_failing_or_slow_part_is_unavailable_and_the_rest_arrive(
    app_client, auth_emulator, part, reason
):
    async with app_client(families(part=part, part_timeout_seconds=0.3)) as client:
        runner = await member(client, auth_emulator)
        started = time.monotonic()
        response = await client.get("/user_states/me", headers=runner.headers)
        assert time.monotonic() - started < 2
        assert response.status_code == 200
        state = await response.get_json()
        assert state["unavailable"] == [{"family": "coach", "reason": reason}]
        assert state["parts"]["check_in"] == {"pending": True, "streak_days": 0, "last_day": None}


# --- feedback and check-ins --------------------------------------------------------------


async def test_feedback_and_check_ins_are_stored_and_reach_hare_even_while_it_is_down(
    app_client, auth_emulator, fake_hare
):
    async with app_client(families(sections=["countdown"], hare_url=fake_hare.url)) as client:
        runner = await member(client, auth_emulator)
        board_id = (await json_board(client, runner.headers))[-1]["data"]["board_id"]
        fake_hare.fail_with = 503  # hare is down while the athlete writes
        written = [
            ("/user_states/me/check-ins", {"mood": 4.0, "energy": 3, "text": "legs heavy"}),
            (
                "/user_states/me/feedback",
                {"target": "section", "board_id": board_id, "section": "countdown", "rating": "up"},
            ),
            (
                "/user_states/me/feedback",
                {"target": "board", "board_id": board_id, "text": "more detail please"},
            ),
        ]
        for path, body in written:
            response = await client.post(path, json=body, headers=runner.headers)
            assert response.status_code == 201, await response.get_data()
        await dispatcher_of(client).run_once()
        assert fake_hare.stored == {}
        state = await (await client.get("/user_states/me", headers=runner.headers)).get_json()
        assert state["parts"]["check_in"]["pending"] is False
        assert state["parts"]["check_in"]["streak_days"] == 1
        fake_hare.fail_with = None
        await drain(dispatcher_of(client))
        texts = [fake_hare.stored[k]["body"]["text"] for k in fake_hare.stored_keys_of(runner.id)]
        assert texts == ["legs heavy", "more detail please"]  # a rating alone is not text
        surfaces = [
            fake_hare.stored[k]["body"]["surface"] for k in fake_hare.stored_keys_of(runner.id)
        ]
        assert surfaces == ["home_check_in", "board_reply"]
        rows = await user_rows(runner.id)
        assert len(rows["home_feedback"]) == 2
        assert [row["mood"] for row in rows["home_check_in"]] == [4]  # 4.0 is an integer


BAD_INPUT: dict[str, list[Any]] = {
    "/user_states/me/check-ins": [
        {},
        {"mood": 0},
        {"mood": 6},
        {"mood": "4"},
        {"mood": 4.5},
        {"mood": True},
        {"mood": 3, "text": ""},
        {"mood": 3, "text": " \n\t "},
        {"mood": 3, "text": "x" * 4001},
        {"mood": 3, "day": "2020-01-01"},
        [],
    ],
    "/user_states/me/feedback": [
        {},
        {"target": "board", "rating": "up"},
        {"target": "board", "board_id": 1},
        {"target": "board", "board_id": 1, "rating": "meh"},
        {"target": "section", "board_id": 1, "rating": "up"},
        {"target": "activity", "activity_id": "a/b", "rating": "up"},
        {"target": "activity", "activity_id": "a1", "board_id": 1, "rating": "up"},
        {"target": "board", "board_id": "1", "rating": "up"},
        {"target": "news", "board_id": 1, "rating": "up"},
        {"target": "board", "board_id": 1, "rating": "up", "text": ""},
        {"target": "activity", "activity_id": "0", "text": None},
    ],
}


async def test_bad_input_is_a_422_that_writes_nothing(app_client, auth_emulator):
    async with app_client(families(sections=["countdown"])) as client:
        runner = await member(client, auth_emulator)
        before = await user_rows(runner.id)
        for path, bodies in BAD_INPUT.items():
            for body in bodies:
                response = await client.post(path, json=body, headers=runner.headers)
                assert response.status_code == 422, (path, body)
                assert "detail" in await response.get_json()
        page = await client.get(f"{BOARDS}?limit=0", headers=runner.headers)
        assert page.status_code == 422
        assert await user_rows(runner.id) == before


# --- (6) isolation, export, deletion -----------------------------------------------------


async def test_another_users_boards_and_feedback_targets_look_missing(app_client, auth_emulator):
    async with app_client(families(sections=["countdown"])) as client:
        alice, bob = await member(client, auth_emulator), await member(client, auth_emulator)
        board_id = (await json_board(client, alice.headers))[-1]["data"]["board_id"]
        for path in (f"{BOARDS}/{board_id}", f"{BOARDS}/{board_id}/events", f"{BOARDS}/latest"):
            response = await client.get(path, headers=bob.headers)
            assert response.status_code == 404, path
        resumed = await client.post(
            BOARDS, headers={**JSON, **bob.headers, "Last-Event-ID": f"{board_id}-1"}
        )
        assert resumed.status_code == 404
        assert (await (await client.get(BOARDS, headers=bob.headers)).get_json())["items"] == []
        feedback = await client.post(
            "/user_states/me/feedback",
            json={"target": "board", "board_id": board_id, "rating": "down"},
            headers=bob.headers,
        )
        assert feedback.status_code == 404
        state = await (await client.get("/user_states/me", headers=bob.headers)).get_json()
        assert "latest_board" not in state["parts"]
        assert state["parts"]["active_goal"]["user_id"] == bob.id
        mine = await (await client.get(BOARDS, headers=alice.headers)).get_json()
        assert [b["id"] for b in mine["items"]] == [board_id]


async def test_boards_page_newest_first(app_client, auth_emulator):
    async with app_client(families(sections=["countdown"])) as client:
        runner = await member(client, auth_emulator)
        made = [
            (await json_board(client, runner.headers))[-1]["data"]["board_id"] for _ in range(3)
        ]
        first = await (await client.get(f"{BOARDS}?limit=2", headers=runner.headers)).get_json()
        assert [b["id"] for b in first["items"]] == made[::-1][:2]
        rest = await (
            await client.get(
                f"{BOARDS}?limit=2&before={first['next_before']}", headers=runner.headers
            )
        ).get_json()
        assert [b["id"] for b in rest["items"]] == made[:1] and rest["next_before"] is None
        latest = await (await client.get(f"{BOARDS}/latest", headers=runner.headers)).get_json()
        assert latest["id"] == made[-1]


async def test_export_holds_and_deletion_erases_every_home_row(app_client, auth_emulator):
    async with app_client(families(sections=["countdown"])) as client:
        runner = await member(client, auth_emulator)
        board_id = (await json_board(client, runner.headers))[-1]["data"]["board_id"]
        await client.post("/user_states/me/check-ins", json={"mood": 2}, headers=runner.headers)
        await client.post(
            "/user_states/me/feedback",
            json={"target": "board", "board_id": board_id, "text": "nice"},
            headers=runner.headers,
        )
        exported = await (await client.get("/account/export", headers=runner.headers)).get_json()
        mine = exported["families"]["home"]
        assert [b["id"] for b in mine["boards"]] == [board_id]
        assert [f["text"] for f in mine["feedback"]] == ["nice"]
        assert [c["mood"] for c in mine["check_ins"]] == [2]
        assert (await client.delete("/account", headers=runner.headers)).status_code == 204
        rows = await user_rows(runner.id)
        for table in HOME_TABLES:
            assert rows.get(table, []) == [], table
        assert not await BoardEvent.filter(board_id=board_id).exists()
