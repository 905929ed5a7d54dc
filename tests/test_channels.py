"""The ``channels`` family through the real app: signed webhooks (tests/fakes/whatsapp.py,
tests/fakes/heylo.py), linking a chat identity, messages reaching hare (tests/fakes/hare.py)
once, one polite reply to strangers, and message references.

Sending through the Cloud API's failures, statuses and the outside plugin's channel are
in tests/test_channels_whatsapp.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from core.endpoints import declared_endpoint
from core.models import HandledMessage, OutboxMessage
from core.outbox import Dispatcher, utcnow
from plugins.channels.models import (
    ChannelIdentity,
    LinkCode,
    MessageReference,
    OutboundMessage,
    ReceivedMessage,
)
from tests.fakes import heylo, whatsapp
from tests.fakes.hare import API_KEY as HARE_KEY
from tests.fakes.hare import FakeHare
from tests.fakes.heylo import FakeHeylo
from tests.fakes.whatsapp import FakeWhatsApp
from tests.plugins import pager
from tests.support import bearer, dispatcher_of, new_account, runtime_of, users_family

NUMBER = "14155552671"
STRANGER = "14155550100"
HINT_START = "Hello! We can't read messages from this number yet."


@pytest.fixture
def fake_whatsapp() -> Iterator[FakeWhatsApp]:
    fake = FakeWhatsApp().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_hare() -> Iterator[FakeHare]:
    fake = FakeHare().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_heylo() -> Iterator[FakeHeylo]:
    fake = FakeHeylo().start()
    try:
        yield fake
    finally:
        fake.stop()


def channels_family(graph_url: str, heylo_url: str = "http://127.0.0.1:9", **settings: Any):
    return {
        "module": "plugins.channels",
        "settings": {
            "whatsapp": {
                "app_secret": whatsapp.APP_SECRET,
                "verify_token": whatsapp.VERIFY_TOKEN,
                "access_token": whatsapp.ACCESS_TOKEN,
                "phone_number_id": whatsapp.PHONE_NUMBER_ID,
                "graph_url": graph_url,
            },
            "heylo": {
                "webhook_secret": heylo.WEBHOOK_SECRET,
                "api_url": heylo_url,
                "api_key": heylo.API_KEY,
                "community_id": heylo.COMMUNITY_ID,
            },
            **settings,
        },
    }


def families(
    fcm_url: str, graph_url: str, hare_url: str = "", heylo_url: str = "http://127.0.0.1:9"
) -> dict[str, Any]:
    chosen: dict[str, Any] = {"root": {"module": "plugins.root"}, "users": users_family(fcm_url)}
    if hare_url:
        chosen["hare"] = {
            "module": "plugins.hare",
            "settings": {"base_url": hare_url, "api_key": HARE_KEY},
        }
    chosen["channels"] = channels_family(graph_url, heylo_url)
    chosen["pager"] = {"module": "tests.plugins.pager"}
    return chosen


async def register(client, auth_emulator) -> tuple[dict[str, str], int]:
    headers = bearer(new_account(auth_emulator))
    response = await client.post("/users", headers=headers)
    assert response.status_code == 201, await response.get_data()
    return headers, (await response.get_json())["id"]


async def drain(*dispatchers: Dispatcher) -> None:
    """Run passes an hour further ahead each time (backoffs are due) until nothing is pending."""
    for n in range(1, 100):
        if not await OutboxMessage.filter(status="pending").exists():
            return
        later = utcnow() + timedelta(hours=n)
        await asyncio.gather(*(d.run_once(later) for d in dispatchers))
    raise AssertionError("outbox messages still pending")


async def deliver(client, body: bytes, headers: dict[str, str] | None = None):
    return await client.post(
        "/whatsapp_webhooks", data=body, headers=headers or whatsapp.sign(body)
    )


async def nothing_stored() -> None:
    assert await ReceivedMessage.all().count() == 0
    assert await ChannelIdentity.all().count() == 0
    assert await OutboxMessage.all().count() == 0
    assert await HandledMessage.all().count() == 0


# --- (1) refused webhooks change nothing; the handshake ------------------------------------


async def test_unsigned_missigned_old_secret_stale_and_oversized_webhooks_change_nothing(
    app_client, fake_fcm, fake_whatsapp
):
    body = whatsapp.envelope([whatsapp.text_message(STRANGER, "hi")])
    good = whatsapp.sign(body)["X-Hub-Signature-256"]
    flipped = body.replace(b'"hi"', b'"hj"')  # one byte changed after signing
    old = whatsapp.sign(body, secret="the-secret-before-rotation-0123456789")
    hbody = heylo.body_of(heylo.message_event("member-1", "hello"))
    async with app_client(
        families(fake_fcm.url, fake_whatsapp.url), max_body_bytes=64 * 1024
    ) as client:
        cases = [
            (
                "/whatsapp_webhooks",
                body,
                {"Content-Type": "application/json"},
                401,
                "missing_signature",
            ),
            (
                "/whatsapp_webhooks",
                flipped,
                {"Content-Type": "application/json", "X-Hub-Signature-256": good},
                401,
                "bad_signature",
            ),
            ("/whatsapp_webhooks", body, old, 401, "bad_signature"),
            (
                "/whatsapp_webhooks",
                body,
                {"Content-Type": "application/json", "X-Hub-Signature-256": "sha1=" + good[7:]},
                401,
                "bad_signature",
            ),
            (
                "/heylo_webhooks",
                hbody,
                {"Content-Type": "application/json"},
                401,
                "missing_signature",
            ),
            (
                "/heylo_webhooks",
                hbody,
                heylo.signed(hbody, secret="not-the-heylo-secret-000000000000"),
                401,
                "bad_signature",
            ),
            (
                "/heylo_webhooks",
                hbody,
                heylo.signed(hbody, at=int(time.time()) - 301),
                401,
                "stale_webhook",
            ),
            (
                "/heylo_webhooks",
                hbody,
                heylo.signed(hbody, at=int(time.time()) + 301),
                401,
                "stale_webhook",
            ),
        ]
        for path, data, headers, status, code in cases:
            response = await client.post(path, data=data, headers=headers)
            assert response.status_code == status, (path, code, await response.get_data())
            assert (await response.get_json())["code"] == code
        huge = whatsapp.envelope([whatsapp.text_message(STRANGER, "x" * 70_000)])
        response = await deliver(client, huge)
        assert response.status_code == 413
        assert (await response.get_json())["code"] == "payload_too_large"
        signed_garbage = b'{"object": "page"}'
        response = await deliver(client, signed_garbage)
        assert response.status_code == 400
        assert (await response.get_json())["code"] == "invalid_webhook"
        await nothing_stored()

        # Within the window, Heylo's signed delivery is taken.
        response = await client.post("/heylo_webhooks", data=hbody, headers=heylo.signed(hbody))
        assert response.status_code == 200, await response.get_data()
        assert await response.get_json() == {"messages": 1, "new_messages": 1, "statuses": 0}


async def test_the_verify_handshake_echoes_the_challenge_only_for_our_token(
    app_client, fake_fcm, fake_whatsapp
):
    async with app_client(families(fake_fcm.url, fake_whatsapp.url)) as client:
        query = {
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": whatsapp.VERIFY_TOKEN,
        }
        response = await client.get("/whatsapp_webhooks", query_string=query)
        assert response.status_code == 200
        assert response.content_type.startswith("text/plain")
        assert await response.get_data() == b"1158201444"
        for wrong in ({"hub.verify_token": "guess"}, {"hub.mode": "unsubscribe"}):
            response = await client.get("/whatsapp_webhooks", query_string={**query, **wrong})
            assert response.status_code == 403
            assert (await response.get_json())["code"] == "verification_failed"


async def test_unconfigured_webhooks_refuse_clearly(app_client, fake_fcm):
    plugins = {
        "root": {"module": "plugins.root"},
        "users": users_family(fake_fcm.url),
        "channels": {"module": "plugins.channels"},
    }
    async with app_client(plugins) as client:
        body = whatsapp.envelope([whatsapp.text_message(STRANGER, "hi")])
        for response in (
            await deliver(client, body),
            await client.get("/whatsapp_webhooks", query_string={"hub.mode": "subscribe"}),
            await client.post("/heylo_webhooks", data=body, headers=heylo.signed(body)),
        ):
            assert response.status_code == 503
            assert (await response.get_json())["code"] == "channel_not_configured"
        ready = await (await client.get("/readyz")).get_json()
        await nothing_stored()
    checks = ready["plugins"]["channels"]["checks"]
    assert checks["whatsapp"]["detail"] == "off: no app_secret or verify_token"
    assert checks["heylo"]["detail"] == "off: no webhook_secret"


# --- (1) the same event three times, and to two instances at once, is handled once ----------


async def test_a_repeated_event_is_handled_once_also_concurrently_and_after_a_restart(
    app_client, fake_fcm, fake_whatsapp
):
    plugins = families(fake_fcm.url, fake_whatsapp.url)
    once = whatsapp.envelope([whatsapp.text_message(STRANGER, "hi there")])
    again = whatsapp.envelope([whatsapp.text_message(STRANGER, "anyone?")])
    async with app_client(plugins) as client:
        answers = [await (await deliver(client, once)).get_json() for _ in range(3)]
        assert [a["new_messages"] for a in answers] == [1, 0, 0]
        # Ten concurrent deliveries of another message (the database decides, not memory).
        responses = await asyncio.gather(*(deliver(client, again) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10
        new = [(await r.get_json())["new_messages"] for r in responses]
        assert sorted(new) == [0] * 9 + [1]
        assert await ReceivedMessage.all().count() == 2
        assert await OutboxMessage.filter(kind="channels.inbound").count() == 2
        hint = runtime_of(client).platform.plugins["channels"].settings.link_hint

        first = dispatcher_of(client)
        second = Dispatcher(first.handlers, first.policy, name="second", context=first.context)
        await drain(first, second)
        # A stranger: one polite reply, quoting their first message, not one per message.
        assert fake_whatsapp.texts_to(STRANGER) == [hint]
        assert hint.startswith(HINT_START)
        assert (
            fake_whatsapp.sent[0]["context"]["message_id"]
            == json.loads(once)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        )
        handled = await ReceivedMessage.all().order_by("id").values_list("handled_as", flat=True)
        assert handled == ["hinted", "ignored"]
    # A restart: the database remembers what was handled.
    async with app_client(plugins) as client:
        assert (await (await deliver(client, once)).get_json())["new_messages"] == 0
        assert await ReceivedMessage.all().count() == 2
        await drain(dispatcher_of(client))
        assert len(fake_whatsapp.sent) == 1


# --- (2) linking, then messages reach hare once ---------------------------------------------


async def test_link_by_inbound_code_then_messages_reach_hare_exactly_once(
    app_client, auth_emulator, fake_fcm, fake_whatsapp, fake_hare
):
    async with app_client(families(fake_fcm.url, fake_whatsapp.url, fake_hare.url)) as client:
        headers, user_id = await register(client, auth_emulator)
        response = await client.post(
            "/channel_associations", json={"channel": "whatsapp"}, headers=headers
        )
        assert response.status_code == 201, await response.get_data()
        issued = await response.get_json()
        code = issued["code"]
        assert len(code) == 9 and code[4] == "-" and code in issued["instructions"]
        stored = await LinkCode.get(user_id=user_id)
        assert code.replace("-", "") not in stored.code_hash and len(stored.code_hash) == 64

        # A wrong code first, then the right one typed in lower case without its dash.
        await deliver(client, whatsapp.envelope([whatsapp.text_message(NUMBER, "ABCD-EFGH")]))
        right = code.replace("-", "").lower()
        await deliver(client, whatsapp.envelope([whatsapp.text_message(NUMBER, right)]))
        await drain(dispatcher_of(client))
        identity = await ChannelIdentity.get(channel="whatsapp", address=NUMBER)
        assert identity.user_id == user_id and identity.wrong_codes == 0
        replies = fake_whatsapp.texts_to(NUMBER)
        assert replies[0].startswith("That code is not valid") and replies[1].startswith("Linked!")
        links = await (await client.get("/channel_associations", headers=headers)).get_json()
        assert [(link["channel"], link["identity"]) for link in links["links"]] == [
            ("whatsapp", NUMBER)
        ]

        # The code is spent: sending it again from another number links nothing.
        await deliver(client, whatsapp.envelope([whatsapp.text_message(STRANGER, code)]))
        message = whatsapp.text_message(NUMBER, "Ran 10 km today, legs heavy 🦵")
        body = whatsapp.envelope([message])
        assert b"\\ud83e" in body  # escaped like Meta's, and signed as sent
        for _ in range(3):
            assert (await deliver(client, body)).status_code == 200
        await drain(dispatcher_of(client))
        assert (await ChannelIdentity.get(channel="whatsapp", address=STRANGER)).user_id is None
        events = [
            e for e in fake_hare.stored.values() if e["body"]["surface"] == "channel:whatsapp"
        ]
        assert len(events) == 1
        assert events[0]["body"]["text"] == "Ran 10 km today, legs heavy 🦵"
        assert events[0]["body"]["user_id"] == str(user_id)
        key = events[0]["body"]["idempotency_key"]
        assert fake_hare.accepted(key) == [201]  # exactly once


async def test_link_by_outbound_code_with_limited_attempts_then_messages_reach_hare_once(
    app_client, auth_emulator, fake_fcm, fake_whatsapp, fake_hare
):
    async with app_client(families(fake_fcm.url, fake_whatsapp.url, fake_hare.url)) as client:
        headers, user_id = await register(client, auth_emulator)
        other, _ = await register(client, auth_emulator)
        for bad, status in (
            ("12345", 422),
            ("four one five", 422),
            ("+1 555", 422),
            ("+999 1234567", 400),
            ("+1 000 000 0000", 400),
        ):
            response = await client.post(
                "/whatsapp_associations", json={"phone_number": bad}, headers=headers
            )
            assert response.status_code == status, bad
            if status == 400:
                assert (await response.get_json())["code"] == "invalid_phone_number"
        assert await LinkCode.all().count() == 0 and await OutboxMessage.all().count() == 0

        response = await client.post(
            "/whatsapp_associations", json={"phone_number": "+1 (415) 555-2671"}, headers=headers
        )
        assert response.status_code == 202, await response.get_data()
        started = await response.get_json()
        assert started["phone_number"] == "+14155552671"
        await drain(dispatcher_of(client))
        [text] = fake_whatsapp.texts_to(NUMBER)
        code = text.removeprefix("Your link code is ").rstrip(".")
        confirm = f"/whatsapp_associations/{started['id']}/confirm"

        # Another user cannot confirm (or learn about) this code.
        response = await client.post(confirm, json={"code": code}, headers=other)
        assert response.status_code == 404
        wrong = "AAAA-AAAA" if code != "AAAA-AAAA" else "BBBB-BBBB"
        response = await client.post(confirm, json={"code": wrong}, headers=headers)
        assert response.status_code == 403
        assert (await response.get_json())["code"] == "wrong_code"
        response = await client.post(confirm, json={"code": code}, headers=headers)
        assert response.status_code == 201, await response.get_data()
        link = await response.get_json()
        assert (link["channel"], link["identity"], link["status"]) == ("whatsapp", NUMBER, "active")
        response = await client.post(confirm, json={"code": code}, headers=headers)
        assert (response.status_code, (await response.get_json())["code"]) == (409, "code_used")

        # The number is linked: its message, delivered three times, reaches hare once.
        body = whatsapp.envelope([whatsapp.text_message(NUMBER, "Easy 8 km, felt good")])
        for _ in range(3):
            assert (await deliver(client, body)).status_code == 200
        await drain(dispatcher_of(client))
        [event] = [
            e for e in fake_hare.stored.values() if e["body"]["surface"] == "channel:whatsapp"
        ]
        assert event["body"]["text"] == "Easy 8 km, felt good"
        assert event["body"]["user_id"] == str(user_id)
        assert fake_hare.accepted(event["body"]["idempotency_key"]) == [201]
        assert fake_whatsapp.texts_to(NUMBER) == [text]  # no "how to link" reply to a linked number
        response = await client.post(
            "/whatsapp_associations", json={"phone_number": "+14155552671"}, headers=headers
        )
        assert response.status_code == 409

        # A second code for another number dies after five wrong attempts.
        response = await client.post(
            "/whatsapp_associations", json={"phone_number": "+14155550100"}, headers=headers
        )
        second = f"/whatsapp_associations/{(await response.get_json())['id']}/confirm"
        for _ in range(5):
            assert (
                await client.post(second, json={"code": wrong}, headers=headers)
            ).status_code == 403
        response = await client.post(second, json={"code": wrong}, headers=headers)
        assert (response.status_code, (await response.get_json())["code"]) == (
            409,
            "too_many_attempts",
        )
        assert await ChannelIdentity.filter(user_id=user_id).count() == 1

        # Expired codes are refused.
        await LinkCode.filter(id=started["id"] + 1).update(
            attempts=0, expires_at=utcnow() - timedelta(seconds=1)
        )
        response = await client.post(second, json={"code": wrong}, headers=headers)
        assert (response.status_code, (await response.get_json())["code"]) == (410, "code_expired")


# --- (6) cross-user: links and references --------------------------------------------------


async def test_no_route_reveals_or_changes_another_users_links_or_references(
    app_client, auth_emulator, fake_fcm, fake_whatsapp
):
    async with app_client(families(fake_fcm.url, fake_whatsapp.url)) as client:
        # Every user route of the family that names an object is one of these (a route
        # added later without a cross-user case fails here).
        named = set()
        for rule in client.app.url_map.iter_rules():
            owner_family = runtime_of(client).blueprint_owners.get(rule.endpoint.rpartition(".")[0])
            declared = declared_endpoint(client.app.view_functions[rule.endpoint])
            if owner_family == "channels" and "<" in rule.rule and declared.auth == "user":
                named |= {(m, rule.rule) for m in rule.methods - {"HEAD", "OPTIONS"}}
        assert named == {
            ("DELETE", "/channel_associations/<int:link_id>"),
            ("GET", "/channels/message-references/<reference_id>"),
            ("POST", "/channels/message-references/<reference_id>/confirm"),
            ("POST", "/whatsapp_associations/<int:code_id>/confirm"),  # the outbound test
        }
        owner, owner_id = await register(client, auth_emulator)
        intruder, _ = await register(client, auth_emulator)
        response = await client.post(
            "/channel_associations", json={"channel": "whatsapp"}, headers=owner
        )
        code = (await response.get_json())["code"]
        await deliver(client, whatsapp.envelope([whatsapp.text_message(NUMBER, code)]))
        await drain(dispatcher_of(client))
        [link] = (await (await client.get("/channel_associations", headers=owner)).get_json())[
            "links"
        ]
        async with client.app.app_context():
            user = await ChannelIdentity.get(id=link["id"]).prefetch_related("user")
            result = await pager.ask(
                runtime_of(client).platform, user.user, "Race on Sunday?", "goal:7"
            )
        reference = result["reference_id"]
        assert result["queued"] == 1

        assert (await client.get("/channel_associations", headers=intruder)).status_code == 200
        assert (await (await client.get("/channel_associations", headers=intruder)).get_json()) == {
            "links": []
        }
        for method, path, body in (
            ("DELETE", f"/channel_associations/{link['id']}", None),
            ("GET", f"/channels/message-references/{reference}", None),
            ("POST", f"/channels/message-references/{reference}/confirm", {"answer": "declined"}),
            ("DELETE", f"/channel_associations/{10**20}", None),  # past 64 bits: nothing
            ("POST", f"/whatsapp_associations/{10**20}/confirm", {"code": "AAAA-AAAA"}),
        ):
            response = await client.open(path, method=method, json=body, headers=intruder)
            assert response.status_code == 404, (method, path)
        assert await ChannelIdentity.filter(user_id=owner_id).count() == 1
        assert (await MessageReference.get(id=reference)).answer is None
        assert all(a["reference_id"] != reference for a in pager.ANSWERS)

        # The owner sees and answers it; the sending family hears the answer once.
        response = await client.get(f"/channels/message-references/{reference}", headers=owner)
        assert response.status_code == 200
        seen = await response.get_json()
        assert (seen["sender"], seen["subject"], seen["text"]) == (
            "pager",
            "goal:7",
            "Race on Sunday?",
        )
        pager.STATE["fail_next"] = True
        confirm = f"/channels/message-references/{reference}/confirm"
        response = await client.post(confirm, json={"answer": "confirmed"}, headers=owner)
        assert response.status_code == 502  # the sender failed: nothing recorded
        assert (await MessageReference.get(id=reference)).answer is None
        response = await client.post(confirm, json={"answer": "confirmed"}, headers=owner)
        assert response.status_code == 200, await response.get_data()
        assert (await response.get_json())["answer"] == "confirmed"
        heard = [a for a in pager.ANSWERS if a["reference_id"] == reference]
        assert heard == [
            {
                "family": "pager",
                "user_id": owner_id,
                "reference_id": reference,
                "subject": "goal:7",
                "answer": "confirmed",
            }
        ]
        response = await client.post(confirm, json={"answer": "declined"}, headers=owner)
        assert (response.status_code, (await response.get_json())["code"]) == (
            409,
            "already_answered",
        )

        async with client.app.app_context():
            late = await pager.ask(
                runtime_of(client).platform, user.user, "Still?", "goal:8", ttl=60
            )
        await MessageReference.filter(id=late["reference_id"]).update(
            expires_at=utcnow() - timedelta(seconds=1)
        )
        response = await client.post(
            f"/channels/message-references/{late['reference_id']}/confirm",
            json={"answer": "confirmed"},
            headers=owner,
        )
        assert (response.status_code, (await response.get_json())["code"]) == (
            410,
            "reference_expired",
        )

        # Removing the link is the owner's alone, and takes its messages with it.
        response = await client.delete(f"/channel_associations/{link['id']}", headers=owner)
        assert response.status_code == 204
        assert await ChannelIdentity.filter(id=link["id"]).count() == 0
        assert await OutboundMessage.filter(identity_id=link["id"]).count() == 0
