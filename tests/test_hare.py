"""The ``hare`` family through the real app, with the ``diary`` test family writing messages
and a fake hare on a real socket (tests/fakes/hare.py, docs/services/hare.md).

Messages written while hare is down all arrive once it is back, each once, each user's in
the order written, also with two dispatchers at a time; a change that rolls back sends
nothing; the backfill replays stored messages without duplicates, resuming after an
interruption; disabling hare leaves the writing family working; bad answers from hare end
as a dead message or a retry, with a log line naming hare.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from quart.testing.app import LifespanError

from core.cli import cli
from core.models import OutboxMessage
from core.outbox import Dispatcher, utcnow
from plugins.hare.models import BackfillCheckpoint, PendingSourceEvent
from tests.fakes.hare import API_KEY, FakeHare
from tests.plugins.diary.models import DiaryEntry
from tests.support import bearer, dispatcher_of, new_account, users_family
from tests.support.ports import free_port


@pytest.fixture
def fake_hare() -> Iterator[FakeHare]:
    hare = FakeHare().start()
    try:
        yield hare
    finally:
        hare.stop()


def hare_family(url: str, **settings: Any) -> dict[str, Any]:
    return {"module": "plugins.hare", "settings": {"base_url": url, "api_key": API_KEY, **settings}}


def families(fcm_url: str, hare: dict[str, Any] | None) -> dict[str, Any]:
    """users and diary, with hare when its table is given."""
    chosen: dict[str, Any] = {"root": {"module": "plugins.root"}, "users": users_family(fcm_url)}
    if hare is not None:
        chosen["hare"] = hare
    chosen["diary"] = {"module": "tests.plugins.diary"}
    return chosen


async def register(client, auth_emulator, count: int) -> list[tuple[dict[str, str], int]]:
    """``count`` new users, each with their Authorization header and user id."""
    users = []
    for _ in range(count):
        headers = bearer(new_account(auth_emulator))
        response = await client.post("/users", headers=headers)
        assert response.status_code == 201, await response.get_data()
        users.append((headers, (await response.get_json())["id"]))
    return users


async def write(client, headers: dict[str, str], text: str, **extra: Any) -> int:
    response = await client.post("/diary/entries", json={"text": text, **extra}, headers=headers)
    assert response.status_code == 201, await response.get_data()
    return (await response.get_json())["id"]


def key_of(entry_id: int) -> str:
    return f"diary:entry:{entry_id}"


async def drain(*dispatchers: Dispatcher, passes: int = 400) -> list[int]:
    """Run the dispatchers side by side, an hour ahead (backoffs are due), until no
    hare message is pending; how many messages each one handled."""
    later = utcnow() + timedelta(hours=1)
    handled = [0] * len(dispatchers)
    for _ in range(passes):
        if not await OutboxMessage.filter(status="pending", kind__startswith="hare.").exists():
            return handled
        reports = await asyncio.gather(*(d.run_once(later) for d in dispatchers))
        handled = [n + r.claimed for n, r in zip(handled, reports, strict=True)]
    raise AssertionError("hare messages still pending")


# --- (1) hare down, then back: everything, once, in order -------------------------------


async def test_messages_written_while_hare_is_down_arrive_once_each_in_order(
    app_client, auth_emulator, fake_fcm, fake_hare
):
    fake_hare.fail_with = 503
    hare = hare_family(fake_hare.url)
    # Three handlers per pass: with five users, each dispatcher claims some of them.
    async with app_client(families(fake_fcm.url, hare), outbox_concurrency=3) as client:
        users = await register(client, auth_emulator, 5)
        written: dict[int, list[str]] = {user_id: [] for _, user_id in users}
        for n in range(40):  # interleaved: user 1, 2, ..., 5, user 1, ...
            for headers, user_id in users:
                entry = await write(client, headers, f"message {n} of user {user_id}")
                written[user_id].append(key_of(entry))
        assert await DiaryEntry.all().count() == 200
        assert await PendingSourceEvent.all().count() == 200

        first = dispatcher_of(client)
        report = await first.run_once()
        # One message per user is handed over at a time, the rest wait behind it.
        assert (report.claimed, report.retried) == (3, 3)
        assert (await first.run_once()).retried == 2  # the other two users' first messages
        assert [c.status for c in fake_hare.records()] == [503] * 5

        fake_hare.fail_with = None  # hare is back
        # Like a second instance: its own dispatcher, on the same database and handlers.
        second = Dispatcher(first.handlers, first.policy, name="second", context=first.context)
        by_first, by_second = await drain(first, second)
        assert by_first + by_second == 200 and by_first > 0 and by_second > 0

        assert len(fake_hare.stored) == 200
        for user_id, keys in written.items():
            assert fake_hare.stored_keys_of(user_id) == keys  # in the order written
            for key in keys:
                assert fake_hare.accepted(key).count(201) == 1  # exactly once
                assert 200 not in fake_hare.accepted(key)  # never even repeated
        assert await PendingSourceEvent.all().count() == 0  # delivered rows are gone
        statuses = await OutboxMessage.filter(kind="hare.record").values_list("status", flat=True)
        assert sorted(set(statuses)) == ["done"] and len(statuses) == 200
        body = fake_hare.stored[written[users[0][1]][0]]["body"]
        assert body["surface"] == "board_reply" and body["reference"]["type"] == "diary_entry"
        assert body["user_id"] == str(users[0][1]) and body["written_at"].endswith("Z")


# --- (2) a change that rolls back sends nothing; invalid events are refused -------------


async def test_a_change_that_rolls_back_sends_nothing(
    app_client, auth_emulator, fake_fcm, fake_hare
):
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        refused = await client.post(
            "/diary/entries", json={"text": "never mind", "refuse": True}, headers=headers
        )
        assert refused.status_code == 409
        for bad in (
            {"text": "   "},
            {"text": "x" * (16 * 1024 + 1)},
            {"text": "ok", "surface": "Board Reply"},
            {"text": "ok", "surface": "channel:"},
        ):
            response = await client.post("/diary/entries", json=bad, headers=headers)
            assert response.status_code == 400, bad
            assert "invalid source event" in (await response.get_json())["detail"]
        assert await DiaryEntry.all().count() == 0
        assert await PendingSourceEvent.all().count() == 0
        assert await OutboxMessage.all().count() == 0
        assert (await dispatcher_of(client).run_once()).claimed == 0
        # The limit is hare's: 16 KiB of UTF-8 is accepted, whatever the characters.
        await write(client, headers, "é" * (8 * 1024), surface="channel:whatsapp")
        await drain(dispatcher_of(client))
    assert fake_hare.calls and all(c.status == 201 for c in fake_hare.calls)
    [event] = fake_hare.stored.values()
    assert event["body"]["surface"] == "channel:whatsapp"


# --- (3) the backfill ---------------------------------------------------------------------


def _cli_env(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "IMPERFECT_AUTO_MIGRATE": "1", "IMPERFECT_ENV": "test"}


async def test_the_backfill_replays_stored_messages_once_and_resumes(
    app_client, auth_emulator, fake_fcm, fake_hare, imperfect, database_url
):
    # The messages are written while hare is disabled: only the diary has them.
    async with app_client(families(fake_fcm.url, None)) as client:
        users = await register(client, auth_emulator, 3)
        keys = [key_of(await write(client, h, f"entry {n}")) for n in range(10) for h, _ in users]
    plugins = families(fake_fcm.url, hare_family(fake_hare.url, backfill_page_size=7))
    plugins["hare"]["settings"]["backfill_retries"] = 0
    env = _cli_env(database_url)

    counted = imperfect("hare", "backfill", "--dry-run", plugins=plugins, env=env)
    assert counted.returncode == 0, counted.stderr
    assert "diary: 30 event(s) to send" in counted.stdout
    one_user = imperfect(
        "hare", "backfill", "--dry-run", "--user", str(users[0][1]), plugins=plugins, env=env
    )
    assert "diary: 10 event(s) to send" in one_user.stdout
    assert fake_hare.calls == []

    fake_hare.fail_after = 12  # hare stores 12, then fails
    stopped = imperfect("hare", "backfill", plugins=plugins, env=env)
    assert stopped.returncode == 1
    assert "hare backfill stopped" in stopped.stderr and "Run it again" in stopped.stderr
    assert list(fake_hare.stored) == keys[:12]

    fake_hare.fail_after = None
    sent_before = len(fake_hare.records())
    resumed = imperfect("hare", "backfill", plugins=plugins, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from its checkpoint" in resumed.stdout
    assert "18 new in hare" in resumed.stdout
    assert list(fake_hare.stored) == keys
    # The restart went on after the last event hare answered: nothing was sent twice.
    assert [c.key for c in fake_hare.records()[sent_before:]] == keys[12:]

    again = imperfect("hare", "backfill", plugins=plugins, env=env)
    assert again.returncode == 0, again.stderr
    assert "0 new in hare, 30 already there" in again.stdout
    assert list(fake_hare.stored) == keys  # twice adds nothing
    for key in keys:
        assert fake_hare.accepted(key).count(201) == 1

    async with app_client(plugins) as client:
        assert await BackfillCheckpoint.all().count() == 0  # a finished run leaves none


async def test_the_backfill_command_in_process_pages_and_reports(
    app_client, auth_emulator, fake_fcm, fake_hare, core_settings, monkeypatch
):
    plugins = families(fake_fcm.url, hare_family(fake_hare.url, backfill_page_size=4))
    async with app_client(families(fake_fcm.url, None)) as client:
        [(headers, user_id)] = await register(client, auth_emulator, 1)
        keys = [key_of(await write(client, headers, f"entry {n}")) for n in range(9)]
    settings = core_settings(plugins)
    monkeypatch.setenv("IMPERFECT_PLUGINS_FILE", str(settings.plugins_file))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("IMPERFECT_AUTO_MIGRATE", "1")
    monkeypatch.setenv("IMPERFECT_ENV", "test")
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["hare", "backfill", "--since", "2000-01-01"]
    )
    assert result.exit_code == 0, result.output
    # Not a terminal: a plain line per page (4, 8, 9), then the summary.
    assert "diary: 4 event(s) sent" in result.output and "diary: 8 event(s) sent" in result.output
    assert "diary: 9 event(s): 9 new in hare" in result.output
    assert list(fake_hare.stored) == keys
    assert fake_hare.stored_keys_of(user_id) == keys


# --- (4) hare disabled ----------------------------------------------------------------------


async def test_without_hare_the_writing_family_works_and_nothing_is_queued(
    app_client, auth_emulator, fake_fcm, imperfect
):
    async with app_client(families(fake_fcm.url, None)) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        await write(client, headers, "hare is off")
        listed = await (await client.get("/diary/entries", headers=headers)).get_json()
        assert [e["text"] for e in listed] == ["hare is off"]
        assert await OutboxMessage.all().count() == 0
        export = await (await client.get("/account/export", headers=headers)).get_json()
        assert export["families"]["diary"] == {"entries": ["hare is off"]}
        assert "hare" not in export["families"]
        ready = await (await client.get("/readyz")).get_json()
        assert "hare" not in ready["plugins"]

    disabled = families(fake_fcm.url, {**hare_family("http://127.0.0.1:1"), "enabled": False})
    checked = imperfect("check", plugins=disabled, env={"IMPERFECT_ENV": "test"})
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 3 families enabled (root, users, diary)")
    assert "hare: disabled" in checked.stdout
    enabled = imperfect(
        "check",
        plugins=families(fake_fcm.url, hare_family("http://127.0.0.1:1")),
        env={"IMPERFECT_ENV": "test"},
    )
    assert enabled.returncode == 0, enabled.stderr


# --- (5) bad answers ------------------------------------------------------------------------


async def test_a_refused_message_is_dead_and_does_not_hold_the_next_back(
    app_client, auth_emulator, fake_fcm, fake_hare, caplog
):
    caplog.set_level(logging.INFO)
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        first, second = [key_of(await write(client, headers, f"m{n}")) for n in range(2)]
        fake_hare.refuse[first] = 400
        await drain(dispatcher_of(client))
        assert list(fake_hare.stored) == [second]
        statuses = (
            await OutboxMessage.filter(kind="hare.record")
            .order_by("id")
            .values_list("status", flat=True)
        )
        assert statuses == ["dead", "done"]
        [kept] = await PendingSourceEvent.all()
        assert (kept.idempotency_key, kept.status) == (first, "refused")
        export = await (await client.get("/account/export", headers=headers)).get_json()
        [undelivered] = export["families"]["hare"]["undelivered"]
        assert (undelivered["idempotency_key"], undelivered["status"]) == (first, "refused")
    assert f"hare refused source event {first} for good" in caplog.text


async def test_same_key_other_content_is_a_conflict_and_dead(
    app_client, auth_emulator, fake_fcm, fake_hare, caplog
):
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        key = key_of(await write(client, headers, "original"))
        other = {"user_id": "0", "text": "other content"}
        fake_hare.stored[key] = {"id": "se_x", "recorded_at": "2026-01-01T00:00:00Z", "body": other}
        assert (await dispatcher_of(client).run_once()).dead == 1
        [call] = fake_hare.records()
        assert call.status == 409
    assert f"hare refused source event {key} for good" in caplog.text
    assert "idempotency_conflict" in caplog.text


async def test_malformed_answers_are_retried_and_the_repeat_is_harmless(
    app_client, auth_emulator, fake_fcm, fake_hare, caplog
):
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        key = key_of(await write(client, headers, "garbled answer"))
        fake_hare.malformed = True
        assert (await dispatcher_of(client).run_once()).retried == 1
        assert await PendingSourceEvent.filter(idempotency_key=key).exists()
        fake_hare.malformed = False
        await drain(dispatcher_of(client))
        assert fake_hare.accepted(key) == [201, 200]  # stored once; the repeat answers 200
        assert await PendingSourceEvent.all().count() == 0
    assert f"hare: source event {key} not delivered, will retry" in caplog.text
    assert "not the contract's" in caplog.text


async def test_a_hanging_hare_times_out_well_within_the_handler_limit(
    app_client, auth_emulator, fake_fcm, fake_hare, caplog
):
    hare = hare_family(fake_hare.url, connect_timeout=0.5, read_timeout=0.5)
    async with app_client(families(fake_fcm.url, hare)) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        key = key_of(await write(client, headers, "into the void"))
        fake_hare.delay = 30  # far longer than the read timeout
        started = time.monotonic()
        report = await dispatcher_of(client).run_once()
        assert report.retried == 1
        assert time.monotonic() - started < 5
        [row] = await OutboxMessage.filter(kind="hare.record")
        assert "hare did not answer within 0.5s" in row.last_error
        fake_hare.delay = 0
        await drain(dispatcher_of(client))
        assert key in fake_hare.stored
    assert f"hare: source event {key} not delivered, will retry" in caplog.text


@pytest.mark.parametrize(
    ("setup", "expected", "level"),
    [
        ({"fail_with": 503}, "HTTP 503", logging.WARNING),
        (
            {"fail_with": 429, "retry_after": 7},
            "rate limiting us (HTTP 429, Retry-After 7s)",
            logging.WARNING,
        ),
        ({"api_key": "another-key"}, "check the hare api_key", logging.ERROR),
    ],
)
async def test_unavailable_or_misconfigured_hare_is_retried_with_a_clear_log_line(
    app_client, auth_emulator, fake_fcm, fake_hare, caplog, setup, expected, level
):
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        key = key_of(await write(client, headers, "try again"))
        for name, value in setup.items():
            setattr(fake_hare, name, value)
        assert (await dispatcher_of(client).run_once()).retried == 1
        [row] = await OutboxMessage.filter(kind="hare.record")
        assert row.status == "pending" and expected in row.last_error
    [record] = [r for r in caplog.records if key in r.getMessage() and r.name == "imperfect.hare"]
    assert record.levelno == level and expected in record.getMessage()


async def test_an_unreachable_hare_is_retried_and_readiness_says_so(
    app_client, auth_emulator, fake_fcm, caplog
):
    closed = f"http://127.0.0.1:{free_port()}"
    async with app_client(families(fake_fcm.url, hare_family(closed, max_backlog_age=1))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        key = key_of(await write(client, headers, "nobody home"))
        assert (await dispatcher_of(client).run_once()).retried == 1
        ready = await client.get("/readyz")
        checks = (await ready.get_json())["plugins"]["hare"]["checks"]
        assert not checks["hare"]["ok"] and "unreachable" in checks["hare"]["error"]
        assert "127.0.0.1" not in checks["hare"]["error"]  # no hostnames in public bodies
        await OutboxMessage.all().update(created_at=utcnow() - timedelta(seconds=30))
        checks = (await (await client.get("/readyz")).get_json())["plugins"]["hare"]["checks"]
        assert not checks["backlog"]["ok"] and "1 message(s) waiting" in checks["backlog"]["error"]
    assert f"hare: source event {key} not delivered, will retry" in caplog.text
    assert "could not be reached" in caplog.text


async def test_readiness_reports_hare_and_its_backlog(
    app_client, auth_emulator, fake_fcm, fake_hare
):
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        await write(client, headers, "waiting")
        checks = (await (await client.get("/readyz")).get_json())["plugins"]["hare"]["checks"]
        assert checks["hare"] == {"ok": True, "error": None, "detail": "reachable"}
        assert checks["backlog"]["ok"] and checks["backlog"]["detail"].startswith(
            "1 message(s) waiting"
        )
        await drain(dispatcher_of(client))
        checks = (await (await client.get("/readyz")).get_json())["plugins"]["hare"]["checks"]
        assert checks["backlog"]["detail"] == "0 message(s) waiting, the oldest for 0s"


async def test_without_a_key_messages_wait_and_readiness_says_not_configured(
    app_client, auth_emulator, fake_fcm, fake_hare, caplog
):
    hare = hare_family(fake_hare.url, api_key="")
    async with app_client(families(fake_fcm.url, hare)) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        await write(client, headers, "kept")
        assert (await dispatcher_of(client).run_once()).retried == 1
        checks = (await (await client.get("/readyz")).get_json())["plugins"]["hare"]["checks"]
        assert checks["hare"]["ok"] and checks["hare"]["detail"].startswith("not configured")
    assert fake_hare.calls == []
    assert "hare is not configured" in caplog.text


# --- accounts ------------------------------------------------------------------------------


async def test_deleting_an_account_while_hare_is_down_erases_it_there_later(
    app_client, auth_emulator, fake_fcm, fake_hare
):
    fake_hare.fail_with = 503
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, user_id), (other, other_id)] = await register(client, auth_emulator, 2)
        await write(client, headers, "to be forgotten")
        kept = key_of(await write(client, other, "to be kept"))
        deleted = await client.delete("/account", headers=headers)
        assert deleted.status_code == 204, await deleted.get_data()  # hare being down is no matter
        assert not await PendingSourceEvent.filter(user_id=user_id).exists()
        fake_hare.fail_with = None
        await drain(dispatcher_of(client))
    # The deleted user's message was dropped before delivery; hare was told to erase them.
    assert fake_hare.erased == [str(user_id)]
    assert list(fake_hare.stored) == [kept]
    assert fake_hare.stored_keys_of(other_id) == [kept]


async def test_the_export_holds_what_is_still_on_its_way(
    app_client, auth_emulator, fake_fcm, fake_hare
):
    fake_hare.fail_with = 503
    async with app_client(families(fake_fcm.url, hare_family(fake_hare.url))) as client:
        [(headers, _)] = await register(client, auth_emulator, 1)
        key = key_of(await write(client, headers, "in transit"))
        export = await (await client.get("/account/export", headers=headers)).get_json()
        [event] = export["families"]["hare"]["undelivered"]
        assert (event["idempotency_key"], event["text"], event["status"]) == (
            key,
            "in transit",
            "pending",
        )
        fake_hare.fail_with = None
        await drain(dispatcher_of(client))
        export = await (await client.get("/account/export", headers=headers)).get_json()
        assert export["families"]["hare"] == {"undelivered": []}


async def test_the_read_timeout_must_stay_under_the_outbox_handler_limit(app_client, fake_fcm):
    plugins = families(fake_fcm.url, hare_family("http://127.0.0.1:1", read_timeout=30))
    with pytest.raises(
        LifespanError, match=r"plugin 'hare': start-up failed.*outbox handler limit"
    ):
        async with app_client(plugins):
            pass
