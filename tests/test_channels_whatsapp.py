"""Sending through the Cloud API's failures, statuses, replies and reactions, the 190 alert,
an outside plugin's channel, Heylo's admin API, accounts, and two served instances.

The fakes are tests/fakes/whatsapp.py (Meta's webhook sender and the Graph send endpoint,
with scripted error codes) and tests/fakes/heylo.py (the admin API with its 5 req/s limit).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart, Response, request

from core import OutboxItem
from core.models import OutboxMessage
from core.outbox import utcnow
from plugins.channels.models import ChannelIdentity, LinkCode, OutboundMessage, ReceivedMessage
from tests import test_channels as shared
from tests.fakes import whatsapp
from tests.fakes.heylo import API_KEY as HEYLO_KEY
from tests.fakes.server import FakeServer
from tests.fakes.whatsapp import FakeWhatsApp
from tests.support import dispatcher_of, runtime_of
from tests.support.ports import free_port
from tests.support.servers import serving_processes
from tests.test_channels import (
    NUMBER,
    STRANGER,
    deliver,
    drain,
    families,
    register,
)

fake_whatsapp = shared.fake_whatsapp  # the fixtures, shared with tests/test_channels.py
fake_heylo = shared.fake_heylo


async def linked(client, auth_emulator, fake: FakeWhatsApp) -> tuple[dict[str, str], int]:
    """A new user whose WhatsApp number is linked (by the inbound code)."""
    headers, user_id = await register(client, auth_emulator)
    code = (
        await (
            await client.post(
                "/channel_associations", json={"channel": "whatsapp"}, headers=headers
            )
        ).get_json()
    )["code"]
    await deliver(client, whatsapp.envelope([whatsapp.text_message(NUMBER, code)]))
    await drain(dispatcher_of(client))
    fake.sent.clear()
    return headers, user_id


async def send(client, user_id: int, text: str) -> dict[str, Any]:
    """Send through the hook other families call (as the ``pager`` test family)."""
    async with client.app.app_context():
        identity = await ChannelIdentity.filter(user_id=user_id).first().prefetch_related("user")
        [(_, result)] = await runtime_of(client).platform.call_each(
            "send_channel_message",
            user=identity.user,
            text=text,
            sender="pager",
            reference_subject=None,
            reference_ttl_seconds=None,
        )
    return result


# --- (3) sending survives the Cloud API failing ---------------------------------------------


async def test_sending_backs_off_on_throttling_and_switches_to_a_template(
    app_client, auth_emulator, fake_fcm, fake_whatsapp
):
    async with app_client(families(fake_fcm.url, fake_whatsapp.url)) as client:
        _, user_id = await linked(client, auth_emulator, fake_whatsapp)
        assert (await send(client, user_id, "Your plan for next week is ready."))["queued"] == 1
        fake_whatsapp.errors = [130429, 131056, 131047]
        dispatcher = dispatcher_of(client)
        report = await dispatcher.run_once()
        assert (report.claimed, report.retried) == (1, 1)
        message = await OutboxMessage.get(kind="channels.send", status="pending")
        assert message.available_at > utcnow()  # backing off, not at once
        assert "130429" in (await OutboundMessage.get(purpose="message")).last_error
        await drain(dispatcher)
        assert [code for code, _ in fake_whatsapp.refused] == [130429, 131056, 131047]
        [sent] = fake_whatsapp.sent
        assert sent["type"] == "template" and sent["template"]["name"] == "message_waiting"
        assert fake_whatsapp.texts_to(NUMBER) == ["Your plan for next week is ready."]
        row = await OutboundMessage.get(purpose="message")
        assert (row.status, row.via_template) == ("sent", True) and row.external_id
        assert (await OutboxMessage.get(id=message.id)).status == "done"
        # Handling the message again (a dispatcher that died after sending) sends nothing.
        repeat = OutboxItem(message.id, "channels.send", {"outbound_id": row.id}, 4, False)
        await dispatcher.handlers["channels.send"](repeat)
        assert len(fake_whatsapp.sent) == 1

        # Statuses out of order: read before delivered; a late delivered does not undo it.
        at = int(time.time())
        for state in ("read", "delivered", "sent"):
            body = whatsapp.envelope(statuses=[whatsapp.status(row.external_id, state, NUMBER, at)])
            assert (await (await deliver(client, body)).get_json())["statuses"] == 1
        assert (await OutboundMessage.get(id=row.id)).status == "read"


async def test_undeliverable_marks_the_link_and_190_raises_an_alert_on_readyz(
    app_client, auth_emulator, fake_fcm, fake_whatsapp
):
    async with app_client(families(fake_fcm.url, fake_whatsapp.url)) as client:
        headers, user_id = await linked(client, auth_emulator, fake_whatsapp)
        fake_whatsapp.errors = [190]
        await send(client, user_id, "first")
        assert (await dispatcher_of(client).run_once()).retried == 1
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # degraded, not down: the app still serves
        checks = (await ready.get_json())["plugins"]["channels"]["checks"]
        assert not checks["whatsapp"]["ok"]
        assert "credentials refused" in checks["whatsapp"]["error"]
        assert whatsapp.ACCESS_TOKEN not in json.dumps(checks)
        assert checks["heylo"]["ok"]
        await drain(dispatcher_of(client))  # the token works again: the alert clears
        checks = (await (await client.get("/readyz")).get_json())["plugins"]["channels"]["checks"]
        assert checks["whatsapp"] == {"ok": True, "error": None, "detail": "configured"}
        assert fake_whatsapp.texts_to(NUMBER) == ["first"]

        fake_whatsapp.errors = [131026]
        await send(client, user_id, "second")
        assert (await dispatcher_of(client).run_once()).dead == 1
        [link] = (await (await client.get("/channel_associations", headers=headers)).get_json())[
            "links"
        ]
        assert link["status"] == "undeliverable"
        assert (await OutboundMessage.filter(text="second").first()).status == "failed"
        assert (await send(client, user_id, "third"))["queued"] == 0  # no more sending to it
        assert fake_whatsapp.texts_to(NUMBER) == ["first"]


async def test_replies_and_reactions_are_stored_and_only_words_go_on(
    app_client, auth_emulator, fake_fcm, fake_whatsapp
):
    async with app_client(families(fake_fcm.url, fake_whatsapp.url)) as client:
        _, user_id = await linked(client, auth_emulator, fake_whatsapp)
        await send(client, user_id, "How did the long run go?")
        await drain(dispatcher_of(client))
        ours = (await OutboundMessage.get(purpose="message")).external_id
        reply = whatsapp.text_message(NUMBER, "Great, thanks", reply_to=ours)
        react = whatsapp.reaction(NUMBER, ours, "👍")
        answer = await (await deliver(client, whatsapp.envelope([reply, react]))).get_json()
        assert answer == {"messages": 2, "new_messages": 2, "statuses": 0}
        await drain(dispatcher_of(client))
        stored = {m.kind: m for m in await ReceivedMessage.filter(identity__user_id=user_id)}
        assert stored["text"].reply_to == ours and stored["text"].handled_as == "linked"
        assert (stored["reaction"].reacted_to, stored["reaction"].text) == (ours, "👍")
        assert stored["reaction"].handled_as == "stored"


# --- (4) a channel from an installed package ------------------------------------------------


POSTBOX_SECRET = "postbox-secret-0123456789"


@pytest.fixture
def fake_postbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    delivered: list[dict[str, Any]] = []
    app = Quart("fake-postbox")

    @app.post("/deliveries")
    async def deliveries() -> Response:
        delivered.append(await request.get_json())
        return Response(json.dumps({"id": f"pb-{len(delivered)}"}), content_type="application/json")

    with FakeServer(app) as server:
        yield server.url, delivered


def postbox_body(sender: str, text: str, id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "messages": [
                {"id": id, "from": sender, "text": text, "sent_at": datetime.now(UTC).isoformat()}
            ]
        }
    ).encode()
    signature = hmac.new(POSTBOX_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Postbox-Signature": signature}


async def test_a_channel_from_an_installed_package_receives_and_sends_through_the_same_routes(
    app_client, auth_emulator, fake_fcm, fake_whatsapp, fake_postbox
):
    url, delivered = fake_postbox
    plugins = families(fake_fcm.url, fake_whatsapp.url)
    plugins["example"] = {
        "entry_point": "example",
        "settings": {"api_key": "k", "postbox_secret": POSTBOX_SECRET, "postbox_url": url},
    }
    async with app_client(plugins) as client:
        listed = await (await client.get("/channels")).get_json()
        postbox = next(c for c in listed["channels"] if c["name"] == "postbox")
        assert postbox == {
            "name": "postbox",
            "display_name": "Postbox",
            "capabilities": ["receive", "send"],
            "configured": True,
        }
        headers, user_id = await register(client, auth_emulator)
        code = (
            await (
                await client.post(
                    "/channel_associations", json={"channel": "postbox"}, headers=headers
                )
            ).get_json()
        )["code"]
        body, signed = postbox_body("box-7", code, "m-1")
        for _ in range(2):
            response = await client.post("/channel_webhooks/postbox", data=body, headers=signed)
            assert response.status_code == 200, await response.get_data()
        tampered = await client.post("/channel_webhooks/postbox", data=body + b" ", headers=signed)
        assert tampered.status_code == 401
        await drain(dispatcher_of(client))
        identity = await ChannelIdentity.get(channel="postbox", address="box-7")
        assert identity.user_id == user_id
        assert delivered == [{"to": "box-7", "text": "Linked! You can write to us here now."}]
        stranger, signed = postbox_body("box-9", "hello?", "m-2")
        await client.post("/channel_webhooks/postbox", data=stranger, headers=signed)
        await drain(dispatcher_of(client))
        assert delivered[-1]["to"] == "box-9" and delivered[-1]["text"].startswith("Hello!")
        assert (await client.post("/channel_webhooks/nope", data=body)).status_code == 404
        spec = await (await client.get("/openapi.json")).get_json()
    assert spec["components"]["schemas"]["ChatChannel"]["enum"] == ["whatsapp", "heylo", "postbox"]


# --- accounts, and Heylo's admin API with its rate limit --------------------------------------


async def test_export_and_deletion_cover_links_and_remove_the_heylo_member_past_429(
    app_client, auth_emulator, fake_fcm, fake_whatsapp, fake_heylo
):
    from tests.fakes import heylo

    async with app_client(
        families(fake_fcm.url, fake_whatsapp.url, heylo_url=fake_heylo.url)
    ) as client:
        headers, user_id = await linked(client, auth_emulator, fake_whatsapp)
        code = (
            await (
                await client.post(
                    "/channel_associations", json={"channel": "heylo"}, headers=headers
                )
            ).get_json()
        )["code"]
        body = heylo.body_of(heylo.message_event("member-42", code))
        assert (
            await client.post("/heylo_webhooks", data=body, headers=heylo.signed(body))
        ).status_code == 200
        await drain(dispatcher_of(client))
        assert (await ChannelIdentity.get(channel="heylo", address="member-42")).user_id == user_id

        document = await (await client.get("/account/export", headers=headers)).get_json()
        mine = document["families"]["channels"]
        assert sorted(link["channel"] for link in mine["links"]) == ["heylo", "whatsapp"]
        assert len(mine["messages_received"]) == 2

        fake_heylo.members = {"member-42"}
        for _ in range(5):  # another client of the same key spends this second's budget
            httpx.post(
                f"{fake_heylo.url}/apiv1-fetch",
                json={"communityId": "x"},
                headers={"Authorization": f"Bearer {HEYLO_KEY}"},
            )
        assert (await client.delete("/account", headers=headers)).status_code == 204
        assert await ChannelIdentity.filter(user_id=user_id).count() == 0
        assert await LinkCode.filter(user_id=user_id).count() == 0
        assert await ReceivedMessage.all().count() == 0
        await dispatcher_of(client).run_once()
        assert [c.status for c in fake_heylo.calls if c.path == "apiv1-remove"] == [429]
        # Heylo said when (Retry-After): queued again for then, and done then.
        time.sleep(1.1)
        await drain(dispatcher_of(client))
        assert [c.status for c in fake_heylo.calls if c.path == "apiv1-remove"] == [429, 200]
        assert fake_heylo.members == set()
        assert not await OutboxMessage.filter(status="dead").exists()


# --- (1) two served instances on one database ------------------------------------------------


def test_two_served_instances_handle_the_same_event_once(
    tmp_path: Path, database_url: str, auth_emulator, fake_fcm, fake_whatsapp
) -> None:
    plugins = families(fake_fcm.url, fake_whatsapp.url)
    del plugins["pager"]
    env = {
        "DATABASE_URL": database_url,
        "IMPERFECT_AUTO_MIGRATE": "1",
        "FIREBASE_PROJECT_ID": auth_emulator.project_id,
        "IMPERFECT_OUTBOX_INTERVAL": "0.1",
    }
    body = whatsapp.envelope([whatsapp.text_message(STRANGER, "is anyone there?")])
    with serving_processes(tmp_path, plugins, [free_port(), free_port()], env) as bases:
        statuses: list[int] = []
        news: list[int] = []

        def post(base: str) -> None:
            response = httpx.post(
                f"{base}/whatsapp_webhooks", content=body, headers=whatsapp.sign(body)
            )
            statuses.append(response.status_code)
            news.append(response.json()["new_messages"])

        threads = [threading.Thread(target=post, args=(bases[n % 2],)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 8 and sorted(news) == [0] * 7 + [1]
        deadline = time.monotonic() + 15
        while not fake_whatsapp.sent and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # long enough for a second (wrong) reply to arrive too
    assert len(fake_whatsapp.texts_to(STRANGER)) == 1
