"""The attestation family through the real HTTP app.

App Attest attestations and assertions are built offline here: a test root CA, an
intermediate and a credential certificate carrying the nonce extension (``cryptography``),
authenticator data and CBOR built by hand, exactly as Apple's documents lay them out. Play
Integrity goes through a fake ``decodeIntegrityToken`` on a real socket.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from werkzeug.routing import IntegerConverter

from core import ConfigError, create_app
from core.endpoints import declared_endpoint
from plugins.attestation import appattest
from plugins.attestation.models import Challenge, Device, ProbeNonce
from plugins.attestation.probes import signed_text
from plugins.attestation.service import client_data
from plugins.users.models import Device as PushDevice
from tests.fakes.play_integrity import FakePlayIntegrity
from tests.support import ROOT, fcm_token, runtime_of
from tests.support.app_attest import (
    APP_ID,
    PACKAGE,
    FakeAppleCA,
    attestation_settings,
    public_pem,
)

DEV_AAGUID = b"appattestdevelop"
PROD_AAGUID = b"appattest" + b"\x00" * 7


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- an App Attest CA and device, offline ------------------------------------------------


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass
class AppKey:
    """An App Attest key on a simulated device."""

    private: ec.EllipticCurvePrivateKey
    key_id: bytes
    app_id: str = APP_ID

    @classmethod
    def new(cls, app_id: str = APP_ID) -> AppKey:
        private = ec.generate_private_key(ec.SECP256R1())
        return cls(private, hashlib.sha256(_point(private)).digest(), app_id)

    def attest(
        self,
        ca: FakeAppleCA,
        challenge: bytes,
        *,
        app_id: str | None = None,
        counter: int = 0,
        aaguid: bytes = DEV_AAGUID,
        credential_id: bytes | None = None,
        nonce_challenge: bytes | None = None,
        fmt: str = "apple-appattest",
        chain: list[bytes] | None = None,
    ) -> str:
        """The attestation object ``attestKey`` returns, base64 (Apple's encoding)."""
        numbers = self.private.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        cred_id = self.key_id if credential_id is None else credential_id
        auth_data = (
            hashlib.sha256((app_id or self.app_id).encode()).digest()
            + bytes([0x41])
            + counter.to_bytes(4, "big")
            + aaguid
            + len(cred_id).to_bytes(2, "big")
            + cred_id
            + cose
        )
        signed_for = challenge if nonce_challenge is None else nonce_challenge
        nonce = hashlib.sha256(auth_data + hashlib.sha256(signed_for).digest()).digest()
        leaf = ca.credential(self.private.public_key(), nonce)
        x5c = chain or [
            leaf.public_bytes(serialization.Encoding.DER),
            ca.intermediate.public_bytes(serialization.Encoding.DER),
        ]
        statement = {"x5c": x5c, "receipt": b"test receipt"}
        return base64.b64encode(
            cbor2.dumps({"fmt": fmt, "attStmt": statement, "authData": auth_data})
        ).decode()

    def assertion(self, client_data_hash: bytes, counter: int, app_id: str | None = None) -> str:
        """What ``generateAssertion`` returns for ``client_data_hash``, base64url."""
        auth_data = (
            hashlib.sha256((app_id or self.app_id).encode()).digest()
            + bytes([0x01])
            + counter.to_bytes(4, "big")
        )
        nonce = hashlib.sha256(auth_data + client_data_hash).digest()
        signature = self.private.sign(nonce, ec.ECDSA(hashes.SHA256()))
        return b64url(cbor2.dumps({"signature": signature, "authenticatorData": auth_data}))


# --- the app --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> FakeAppleCA:
    return FakeAppleCA()


@pytest.fixture
def fake_play() -> Iterator[FakePlayIntegrity]:
    fake = FakePlayIntegrity().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def probe_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def plugins(settings: dict[str, Any], **users: Any) -> dict[str, Any]:
    return {
        "root": {"module": "plugins.root"},
        "users": {"module": "plugins.users", "settings": users},
        "attestation": {"module": "plugins.attestation", "settings": settings},
    }


@pytest.fixture
def attest_app(app_client, ca, fake_play, probe_key):
    def build(**extra: Any):
        return app_client(plugins(attestation_settings(ca, fake_play, probe_key, **extra)))

    return build


async def runner(client, auth_emulator) -> dict[str, str]:
    """A fresh emulator account, registered with POST /users; its Authorization header."""
    account = auth_emulator.sign_up(f"runner-{uuid.uuid4().hex[:8]}@example.com", "pass-1234")
    headers = {"Authorization": f"Bearer {account.id_token}"}
    assert (await client.post("/users", headers=headers)).status_code == 201
    return headers


async def challenge(client, headers, purpose: str = "attestation") -> str:
    response = await client.post("/attest/challenge", json={"purpose": purpose}, headers=headers)
    assert response.status_code == 201, await response.get_json()
    body = await response.get_json()
    assert body["purpose"] == purpose and len(unb64url(body["challenge"])) == 32
    return body["challenge"]


async def verify_ios(client, headers, ca: FakeAppleCA, key: AppKey | None = None, **attest: Any):
    key = key or AppKey.new()
    value = await challenge(client, headers)
    body = {
        "platform": "ios",
        "challenge": value,
        "key_id": base64.b64encode(key.key_id).decode(),
        "attestation": key.attest(ca, unb64url(value), **attest),
    }
    return key, await client.post("/attest/verify", json=body, headers=headers)


async def attested_ios(client, headers, ca) -> tuple[AppKey, int]:
    key, response = await verify_ios(client, headers, ca)
    assert response.status_code == 201, await response.get_json()
    return key, (await response.get_json())["device_id"]


def proof(
    key: AppKey,
    device_id: int,
    value: str,
    method: str,
    path: str,
    counter: int,
    body: bytes = b"",
    **kw: Any,
) -> dict[str, str]:
    digest = hashlib.sha256(client_data(method, path, value, body)).digest()
    return {
        "X-Attest-Device": str(device_id),
        "X-Attest-Challenge": value,
        "X-Attest-Assertion": key.assertion(digest, counter, **kw),
    }


async def code_of(response) -> str:
    return (await response.get_json())["code"]


# --- App Attest -----------------------------------------------------------------------


async def test_an_attestation_and_assertions_built_offline_pass(attest_app, auth_emulator, ca):
    async with attest_app() as client:
        headers = await runner(client, auth_emulator)
        key, response = await verify_ios(client, headers, ca)
        assert response.status_code == 201, await response.get_json()
        device = await response.get_json()
        assert device["platform"] == "ios" and device["app_id"] == APP_ID
        assert device["environment"] == "development" and device["counter"] == 0
        stored = await Device.get(id=device["device_id"])
        assert stored.key_id == base64.b64encode(key.key_id).decode()
        assert bytes(stored.receipt or b"") == b"test receipt"

        _, other = await attested_ios(client, headers, ca)
        path = f"/attest/devices/{other}"
        value = await challenge(client, headers, "assertion")
        guarded = proof(key, device["device_id"], value, "DELETE", path, counter=1)
        deleted = await client.delete(path, headers={**headers, **guarded})
        assert deleted.status_code == 204, await deleted.get_json()
        listed = await (await client.get("/attest/devices", headers=headers)).get_json()
        assert [d["device_id"] for d in listed] == [device["device_id"]]
        assert listed[0]["counter"] == 1 and listed[0]["last_used_at"]


async def test_each_tampered_attestation_field_fails_with_its_own_reason(
    attest_app, auth_emulator, ca
):
    other_ca = FakeAppleCA("Another Root")
    stranger = AppKey.new()
    async with attest_app() as client:
        headers = await runner(client, auth_emulator)

        async def refused(key: AppKey | None = None, **attest: Any) -> tuple[int, str]:
            _, response = await verify_ios(client, headers, ca, key, **attest)
            return response.status_code, await code_of(response)

        key = AppKey.new()
        leaf_by_other = other_ca.credential(key.private.public_key(), b"\x00" * 32)
        cases = {
            "chain": await refused(
                chain=[
                    leaf_by_other.public_bytes(serialization.Encoding.DER),
                    other_ca.intermediate.public_bytes(serialization.Encoding.DER),
                ]
            ),
            "chain_without_intermediate": await refused(
                chain=[leaf_by_other.public_bytes(serialization.Encoding.DER)]
            ),
            "nonce": await refused(nonce_challenge=b"another challenge"),
            "key_id": await refused(AppKey(key.private, stranger.key_id)),
            "rp_id": await refused(app_id="TEAMID1234.com.example.other"),
            "counter": await refused(counter=1),
            "environment": await refused(aaguid=PROD_AAGUID),
            "credential_id": await refused(credential_id=b"\x01" * 32),
            "format": await refused(fmt="packed"),
        }
        assert cases == {
            "chain": (403, "attestation_chain_invalid"),
            "chain_without_intermediate": (403, "attestation_chain_invalid"),
            "nonce": (403, "attestation_nonce_mismatch"),
            "key_id": (403, "attestation_key_id_mismatch"),
            "rp_id": (403, "attestation_rp_id_mismatch"),
            "counter": (403, "attestation_counter_not_zero"),
            "environment": (403, "attestation_environment_mismatch"),
            "credential_id": (403, "attestation_credential_id_mismatch"),
            "format": (403, "attestation_format"),
        }
        garbage = await client.post(
            "/attest/verify",
            json={
                "platform": "ios",
                "challenge": await challenge(client, headers),
                "key_id": base64.b64encode(key.key_id).decode(),
                "attestation": base64.b64encode(b"not cbor at all").decode(),
            },
            headers=headers,
        )
        assert (garbage.status_code, await code_of(garbage)) == (403, "attestation_malformed")
        assert await Device.all().count() == 0  # nothing refused was stored


async def test_the_production_environment_takes_only_production_keys(
    app_client, auth_emulator, ca, probe_key
):
    settings = attestation_settings(ca, None, probe_key, apple_environment="production")
    async with app_client(plugins(settings)) as client:
        headers = await runner(client, auth_emulator)
        _, develop = await verify_ios(client, headers, ca)
        assert await code_of(develop) == "attestation_environment_mismatch"
        _, production = await verify_ios(client, headers, ca, aaguid=PROD_AAGUID)
        assert production.status_code == 201
        assert (await production.get_json())["environment"] == "production"


async def test_the_shipped_root_is_apples_and_refuses_a_test_chain(
    app_client, auth_emulator, ca, probe_key
):
    root = appattest.load_root(appattest.apple_root_pem())
    fingerprint = root.fingerprint(hashes.SHA256()).hex()
    assert fingerprint == "1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932"
    settings = attestation_settings(ca, None, probe_key)
    del settings["apple_root_ca"]  # the default: Apple's root
    async with app_client(plugins(settings)) as client:
        headers = await runner(client, auth_emulator)
        _, response = await verify_ios(client, headers, ca)
        assert await code_of(response) == "attestation_chain_invalid"


async def test_challenges_are_one_time_bound_to_the_caller_and_their_purpose(
    attest_app, auth_emulator, ca
):
    async with attest_app() as client:
        alice, bob = await runner(client, auth_emulator), await runner(client, auth_emulator)
        key = AppKey.new()
        value = await challenge(client, alice)

        async def submit(as_: dict[str, str], value: str, key: AppKey) -> tuple[int, str]:
            body = {
                "platform": "ios",
                "challenge": value,
                "key_id": base64.b64encode(key.key_id).decode(),
                "attestation": key.attest(ca, unb64url(value)),
            }
            response = await client.post("/attest/verify", json=body, headers=as_)
            return response.status_code, (await response.get_json()).get("code", "")

        assert await submit(bob, value, key) == (403, "challenge_unknown")  # not bob's
        assert (await submit(alice, value, key))[0] == 201
        assert await submit(alice, value, AppKey.new()) == (403, "challenge_used")

        assertion_only = await challenge(client, alice, "assertion")
        assert await submit(alice, assertion_only, AppKey.new()) == (
            403,
            "challenge_wrong_purpose",
        )

        expired = await challenge(client, alice)
        await Challenge.filter(challenge=expired).update(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        assert await submit(alice, expired, AppKey.new()) == (403, "challenge_expired")
        unknown = b64url(b"\x07" * 32)
        assert await submit(alice, unknown, AppKey.new()) == (403, "challenge_unknown")


async def test_the_guard_refuses_unattested_replayed_and_stale_calls(attest_app, auth_emulator, ca):
    async with attest_app() as client:
        alice, bob = await runner(client, auth_emulator), await runner(client, auth_emulator)
        key, device = await attested_ios(client, alice, ca)
        _, target = await attested_ios(client, alice, ca)
        bob_key, bob_device = await attested_ios(client, bob, ca)
        path = f"/attest/devices/{target}"

        async def call(extra: dict[str, str], as_: dict[str, str] = alice) -> tuple[int, str]:
            response = await client.delete(path, headers={**as_, **extra})
            body = await response.get_json() if response.status_code != 204 else {}
            return response.status_code, body.get("code", "")

        unattested = await call({})
        assert unattested == (403, "attestation_required")
        value = await challenge(client, alice, "assertion")
        assert await call(proof(bob_key, bob_device, value, "DELETE", path, 1)) == (
            403,
            "device_not_attested",  # bob's device is not alice's
        )
        value = await challenge(client, alice, "assertion")
        other_route = proof(key, device, value, "DELETE", "/attest/devices/999", 1)
        assert await call(other_route) == (403, "assertion_signature_invalid")
        value = await challenge(client, alice, "assertion")
        wrong_app = proof(key, device, value, "DELETE", path, 1, app_id="TEAMID1234.other")
        assert await call(wrong_app) == (403, "assertion_rp_id_mismatch")

        stale = await challenge(client, alice, "assertion")
        await Challenge.filter(challenge=stale).update(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        assert await call(proof(key, device, stale, "DELETE", path, 1)) == (
            403,
            "challenge_expired",
        )

        value = await challenge(client, alice, "assertion")
        fresh = proof(key, device, value, "DELETE", path, 5)
        good = await client.delete(path, headers={**alice, **fresh, "X-Test": "1"})
        assert good.status_code == 204
        # the same assertion again: its challenge is spent
        assert await call(fresh) == (403, "challenge_used")
        # a new challenge but a counter that did not move: a replayed (or cloned) key
        value = await challenge(client, alice, "assertion")
        assert await call(proof(key, device, value, "DELETE", path, 5)) == (
            403,
            "assertion_counter_not_increasing",
        )
        assert (await Device.get(id=device)).counter == 5
        assert await Device.filter(id=target).count() == 0


async def test_a_concurrent_replay_of_one_assertion_succeeds_at_most_once(
    attest_app, auth_emulator, ca
):
    async with attest_app() as client:
        alice = await runner(client, auth_emulator)
        key, device = await attested_ios(client, alice, ca)
        targets = [(await attested_ios(client, alice, ca))[1] for _ in range(2)]

        # one assertion sent eight times at once
        path = f"/attest/devices/{targets[0]}"
        value = await challenge(client, alice, "assertion")
        headers = {**alice, **proof(key, device, value, "DELETE", path, 1)}
        answers = await asyncio.gather(*(client.delete(path, headers=headers) for _ in range(8)))
        statuses = sorted(response.status_code for response in answers)
        assert statuses == [204] + [403] * 7

        # eight fresh challenges, each with an assertion of the same counter: one wins
        path = f"/attest/devices/{targets[1]}"
        values = [await challenge(client, alice, "assertion") for _ in range(8)]
        answers = await asyncio.gather(
            *(
                client.delete(path, headers={**alice, **proof(key, device, v, "DELETE", path, 2)})
                for v in values
            )
        )
        statuses = sorted(response.status_code for response in answers)
        assert statuses == [204] + [403] * 7
        codes = {await code_of(r) for r in answers if r.status_code == 403}
        assert codes == {"assertion_counter_not_increasing"}
        assert (await Device.get(id=device)).counter == 2


# --- Play Integrity -------------------------------------------------------------------


async def verify_android(client, headers, fake: FakePlayIntegrity, **token: Any):
    value = await challenge(client, headers)
    token.setdefault("nonce", value)
    body = {
        "platform": "android",
        "challenge": value,
        "integrity_token": fake.issue(PACKAGE, **token),
    }
    return await client.post("/attest/verify", json=body, headers=headers)


async def test_play_integrity_verdicts_package_nonce_and_freshness(
    attest_app, auth_emulator, fake_play, monkeypatch
):
    monkeypatch.setenv("IMPERFECT_RATE_LIMITS", "0")  # a dozen verifications in a minute
    async with attest_app(play_require_licensed=True) as client:
        headers = await runner(client, auth_emulator)
        passed = await verify_android(client, headers, fake_play)
        assert passed.status_code == 201, await passed.get_json()
        device = await passed.get_json()
        assert device["platform"] == "android" and device["app_id"] == PACKAGE
        assert fake_play.calls[-1][0] == PACKAGE

        async def refused(**token: Any) -> tuple[int, str]:
            response = await verify_android(client, headers, fake_play, **token)
            return response.status_code, await code_of(response)

        old = int((time.time() - 600) * 1000)
        assert await refused(app_verdict="UNRECOGNIZED_VERSION") == (
            403,
            "integrity_app_unrecognized",
        )
        assert await refused(app_verdict="UNEVALUATED") == (403, "integrity_app_unrecognized")
        assert await refused(device_verdicts=("MEETS_BASIC_INTEGRITY",)) == (
            403,
            "integrity_device_failed",
        )
        assert await refused(device_verdicts=()) == (403, "integrity_device_failed")
        assert await refused(licensing="UNLICENSED") == (403, "integrity_unlicensed")
        assert await refused(app_package="com.example.clone") == (
            403,
            "integrity_package_mismatch",
        )
        assert await refused(nonce=b64url(b"\x01" * 32)) == (403, "integrity_nonce_mismatch")
        assert await refused(timestamp_millis=old) == (403, "integrity_token_stale")
        ahead = int((time.time() + 600) * 1000)
        assert await refused(timestamp_millis=ahead) == (403, "integrity_token_stale")

        value = await challenge(client, headers)
        other_package = fake_play.issue("com.example.other", nonce=value)
        body = {"platform": "android", "challenge": value, "integrity_token": other_package}
        response = await client.post("/attest/verify", json=body, headers=headers)
        assert await code_of(response) == "integrity_package_mismatch"
        value = await challenge(client, headers)
        body = {"platform": "android", "challenge": value, "integrity_token": "never.issued"}
        response = await client.post("/attest/verify", json=body, headers=headers)
        assert (response.status_code, await code_of(response)) == (403, "integrity_token_invalid")
        assert await Device.filter(platform="android").count() == 1


async def test_the_decode_service_down_is_a_503_naming_it(attest_app, auth_emulator, fake_play):
    async with attest_app() as client:
        headers = await runner(client, auth_emulator)
        fake_play.status = 503
        failing = await verify_android(client, headers, fake_play)
        assert failing.status_code == 503 and failing.headers["Retry-After"]
        body = await failing.get_json()
        assert body["code"] == "play_integrity_unavailable"
        assert "Google Play Integrity" in body["detail"]
        fake_play.status = None
        fake_play.stop()
        gone = await verify_android(client, headers, fake_play)
        assert gone.status_code == 503
        assert (await gone.get_json())["code"] == "play_integrity_unavailable"


async def test_a_wrong_credential_for_google_is_a_503_not_the_devices_fault(
    app_client, auth_emulator, ca, fake_play, probe_key
):
    settings = attestation_settings(ca, fake_play, probe_key, play_integrity_bearer="wrong")
    async with app_client(plugins(settings)) as client:
        headers = await runner(client, auth_emulator)
        response = await verify_android(client, headers, fake_play)
        assert (response.status_code, await code_of(response)) == (
            503,
            "play_integrity_unavailable",
        )


async def test_the_guard_takes_a_fresh_integrity_token_bound_to_the_request(
    attest_app, auth_emulator, ca, fake_play
):
    async with attest_app() as client:
        alice = await runner(client, auth_emulator)
        device = (await (await verify_android(client, alice, fake_play)).get_json())["device_id"]
        _, target = await attested_ios(client, alice, ca)
        path = f"/attest/devices/{target}"

        def headers(value: str, request_hash: str, **token: Any) -> dict[str, str]:
            return {
                **alice,
                "X-Attest-Device": str(device),
                "X-Attest-Challenge": value,
                "X-Attest-Assertion": fake_play.issue(PACKAGE, request_hash=request_hash, **token),
            }

        def bound(value: str, target_path: str = path) -> str:
            return b64url(hashlib.sha256(client_data("DELETE", target_path, value, b"")).digest())

        value = await challenge(client, alice, "assertion")
        wrong = await client.delete(path, headers=headers(value, bound(value, "/elsewhere")))
        assert await code_of(wrong) == "integrity_nonce_mismatch"
        value = await challenge(client, alice, "assertion")
        weak = await client.delete(
            path, headers=headers(value, bound(value), device_verdicts=("MEETS_BASIC_INTEGRITY",))
        )
        assert await code_of(weak) == "integrity_device_failed"
        value = await challenge(client, alice, "assertion")
        good = headers(value, bound(value))
        assert (await client.delete(path, headers=good)).status_code == 204
        replay = await client.delete(path, headers=good)
        assert await code_of(replay) == "challenge_used"


# --- health probes --------------------------------------------------------------------


def probe_request(key: Any, *, probe_id: str = "monitor", age: int = 0, nonce: str = "") -> dict:
    nonce = nonce or b64url(uuid.uuid4().bytes)
    timestamp = int(time.time()) - age
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(signed_text(probe_id, timestamp, nonce))
    else:
        signature = key.sign(signed_text(probe_id, timestamp, nonce), ec.ECDSA(hashes.SHA256()))
    return {
        "probe_id": probe_id,
        "timestamp": timestamp,
        "nonce": nonce,
        "signature": b64url(signature),
    }


async def probe_token(client, key) -> str:
    response = await client.post("/auth/health-probe/token", json=probe_request(key))
    assert response.status_code == 201, await response.get_json()
    body = await response.get_json()
    assert body["token_type"] == "probe" and body["expires_in"] == 60
    return body["token"]


async def test_a_probe_proves_the_chain_and_replays_and_stale_requests_are_refused(
    attest_app, auth_emulator, probe_key
):
    async with attest_app() as client:
        token = await probe_token(client, probe_key)
        check = await client.get(
            "/auth/health-probe/check", headers={"Authorization": f"Bearer {token}"}
        )
        assert check.status_code == 200, await check.get_json()
        report = await check.get_json()
        assert report["ok"] and report["probe_id"] == "monitor"
        steps = report["steps"]
        assert set(steps) == {
            "probe_identity",
            "database",
            "token_verification",
            "migrations",
            "families",
        }
        assert all(step["ok"] for step in steps.values()), steps
        assert steps["token_verification"]["detail"].startswith("emulator at ")
        assert "attestation" in steps["families"]["detail"]

        # A family's failing check is reported; the chain still answers 200.
        async def down() -> None:
            raise RuntimeError("the monitor's test sibling is down")

        runtime_of(client).readiness.setdefault("attestation", {})["sibling"] = down
        fresh = await probe_token(client, probe_key)
        check = await client.get(
            "/auth/health-probe/check", headers={"Authorization": f"Bearer {fresh}"}
        )
        report = await check.get_json()
        assert check.status_code == 200 and report["ok"], report
        assert report["steps"]["families"] == {"ok": False, "detail": "degraded: attestation"}
        del runtime_of(client).readiness["attestation"]["sibling"]

        async def refused(body: dict) -> tuple[int, str]:
            response = await client.post("/auth/health-probe/token", json=body)
            return response.status_code, await code_of(response)

        once = probe_request(probe_key)
        assert (await client.post("/auth/health-probe/token", json=once)).status_code == 201
        assert await refused(once) == (401, "probe_request_replayed")
        assert await refused(probe_request(probe_key, age=120)) == (401, "probe_request_stale")
        assert await refused(probe_request(probe_key, age=-120)) == (401, "probe_request_stale")
        assert await refused(probe_request(probe_key, probe_id="unused")) == (401, "probe_unknown")
        impostor = ed25519.Ed25519PrivateKey.generate()
        assert await refused(probe_request(impostor)) == (401, "probe_signature_invalid")
        p256 = ec.generate_private_key(ec.SECP256R1())
        assert await refused(probe_request(p256)) == (401, "probe_signature_invalid")

        # expired nonces are pruned when the next token is issued
        await ProbeNonce.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        await probe_token(client, probe_key)
        assert await ProbeNonce.all().count() == 1

        no_token = await client.get("/auth/health-probe/check")
        assert (no_token.status_code, await code_of(no_token)) == (401, "probe_token_missing")
        user = await runner(client, auth_emulator)  # a Firebase token is no probe identity
        firebase = await client.get("/auth/health-probe/check", headers=user)
        assert (firebase.status_code, await code_of(firebase)) == (401, "probe_token_invalid")
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        bad = await client.get(
            "/auth/health-probe/check", headers={"Authorization": f"Bearer {forged}"}
        )
        assert (await code_of(bad)) == "probe_token_invalid"


async def test_a_p256_probe_key_works_too(app_client, ca, probe_key):
    p256 = ec.generate_private_key(ec.SECP256R1())
    settings = attestation_settings(ca, None, probe_key)
    settings["probe_keys"] = {"monitor": public_pem(p256)}
    async with app_client(plugins(settings)) as client:
        token = await probe_token(client, p256)
        check = await client.get(
            "/auth/health-probe/check", headers={"Authorization": f"Bearer {token}"}
        )
        assert check.status_code == 200 and (await check.get_json())["probe_id"] == "monitor"


def _sample(converter: Any) -> str:
    schema = getattr(converter, "openapi_schema", None)
    if isinstance(schema, dict) and schema.get("enum"):
        return str(schema["enum"][0])
    if isinstance(converter, IntegerConverter):
        return "1"
    return "sample"


async def test_a_probe_identity_reaches_no_signed_in_route_of_the_live_app(
    app_client, auth_emulator, ca, fake_play, probe_key
):
    """Every family of the checked-in plugins.toml, those off by default too, with probes
    configured."""
    everything = tomllib.loads((ROOT / "plugins.toml").read_text())["plugins"]
    for table in everything.values():
        table["enabled"] = True
    everything["attestation"]["settings"] = attestation_settings(ca, fake_play, probe_key)
    async with app_client(everything) as client:
        token = await probe_token(client, probe_key)
        bearer = {"Authorization": f"Bearer {token}"}
        walked = 0
        for rule in client.app.url_map.iter_rules():
            declared = declared_endpoint(client.app.view_functions[rule.endpoint])
            if declared is None or declared.auth == "public":
                continue
            path = re.sub(
                r"<(?:[^:<>]+:)?([^<>]+)>",
                lambda match, converters=rule._converters: _sample(converters[match.group(1)]),
                rule.rule,
            )
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                response = await client.open(path, method=method, headers=bearer, json={})
                assert response.status_code in (401, 403), (method, path, response.status_code)
                walked += 1
        assert walked >= 25
        assert {"/attest/devices", "/users/me", "/account"} <= {
            rule.rule for rule in client.app.url_map.iter_rules()
        }


# --- users routes a deployment guards ------------------------------------------------


GUARDED = {"require_attestation_for": ["account_deletion", "device_registration"]}


async def test_users_can_require_attestation_for_device_registration_and_deletion(
    app_client, auth_emulator, ca, probe_key
):
    settings = attestation_settings(ca, None, probe_key)
    async with app_client(plugins(settings, **GUARDED)) as client:
        alice = await runner(client, auth_emulator)
        key, device = await attested_ios(client, alice, ca)
        registration = json.dumps({"token": fcm_token(), "platform": "ios"}).encode()
        as_json = {**alice, "Content-Type": "application/json"}

        bare = await client.post("/notifications/devices", data=registration, headers=as_json)
        assert (bare.status_code, await code_of(bare)) == (403, "attestation_required")
        value = await challenge(client, alice, "assertion")
        other_body = proof(key, device, value, "POST", "/notifications/devices", 1, b"{}")
        bound_elsewhere = await client.post(
            "/notifications/devices", data=registration, headers={**as_json, **other_body}
        )
        assert await code_of(bound_elsewhere) == "assertion_signature_invalid"
        assert await PushDevice.all().count() == 0  # nothing refused was stored
        value = await challenge(client, alice, "assertion")
        signed = proof(key, device, value, "POST", "/notifications/devices", 2, registration)
        registered = await client.post(
            "/notifications/devices", data=registration, headers={**as_json, **signed}
        )
        assert registered.status_code == 201, await registered.get_json()

        refused = await client.delete("/account", headers=alice)
        assert (refused.status_code, await code_of(refused)) == (403, "attestation_required")
        assert (await client.get("/users/me", headers=alice)).status_code == 200
        value = await challenge(client, alice, "assertion")
        deleted = await client.delete(
            "/account", headers={**alice, **proof(key, device, value, "DELETE", "/account", 3)}
        )
        assert deleted.status_code in (202, 204), await deleted.get_json()
        assert await Device.all().count() == 0 and await PushDevice.all().count() == 0

        spec = await (await client.get("/openapi.json")).get_json()
    for path, method in (("/account", "delete"), ("/notifications/devices", "post")):
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"FirebaseBearer": [], "attested": []}], path
        assert "403" in operation["responses"]


async def test_users_routes_are_unguarded_by_default(attest_app, auth_emulator):
    async with attest_app() as client:
        alice = await runner(client, auth_emulator)
        body = {"token": fcm_token(), "platform": "android"}
        registered = await client.post("/notifications/devices", json=body, headers=alice)
        assert registered.status_code == 201
        spec = await (await client.get("/openapi.json")).get_json()
    assert spec["paths"]["/account"]["delete"]["security"] == [{"FirebaseBearer": []}]


def test_requiring_attestation_without_the_family_stops_start_up(core_settings):
    families = plugins({}, require_attestation_for=["account_deletion"])
    del families["attestation"]
    with pytest.raises(ConfigError, match="plugin 'users': /account requires 'attested'"):
        create_app(core_settings(families))
    families["users"]["settings"]["require_attestation_for"] = ["everything"]
    with pytest.raises(ConfigError, match="require_attestation_for"):
        create_app(core_settings(families))


# --- the account, the spec ------------------------------------------------------------


async def test_export_and_deletion_cover_devices_and_challenges(attest_app, auth_emulator, ca):
    async with attest_app() as client:
        alice = await runner(client, auth_emulator)
        key, device = await attested_ios(client, alice, ca)
        await challenge(client, alice, "assertion")
        export = await (await client.get("/account/export", headers=alice)).get_json()
        mine = export["families"]["attestation"]
        assert [d["device_id"] for d in mine["devices"]] == [device]
        assert mine["devices"][0]["key_id"] == base64.b64encode(key.key_id).decode()
        assert sorted(c["purpose"] for c in mine["challenges"]) == ["assertion", "attestation"]
        assert all(c["used_at"] for c in mine["challenges"] if c["purpose"] == "attestation")

        deleted = await client.delete("/account", headers=alice)
        assert deleted.status_code in (202, 204), await deleted.get_json()
        assert await Device.all().count() == 0
        assert await Challenge.all().count() == 0


async def test_the_spec_documents_the_guard(attest_app):
    async with attest_app() as client:
        spec = await (await client.get("/openapi.json")).get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["attested"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Attest-Assertion",
        "description": schemes["attested"]["description"],
    }
    assert "health_probe" not in schemes  # public for Firebase; the description says how
    delete = spec["paths"]["/attest/devices/{device_id}"]["delete"]
    assert delete["security"] == [{"FirebaseBearer": [], "attested": []}]
    assert {"401", "403", "404", "503"} <= set(delete["responses"])
    assert "X-Attest-Challenge" in delete["description"]
    check = spec["paths"]["/auth/health-probe/check"]["get"]
    assert check["security"] == []
    assert "POST /auth/health-probe/token" in check["description"]
    assert {"200", "401", "503"} <= set(check["responses"])
    verify = spec["paths"]["/attest/verify"]["post"]
    assert {"403", "409", "422", "503"} <= set(verify["responses"])
    assert "400" not in verify["responses"]  # what the schema cannot say is a refused proof
    schemas = spec["components"]["schemas"]
    ios, android = schemas["IosVerifyIn"], schemas["AndroidVerifyIn"]
    assert ios["additionalProperties"] is False and android["additionalProperties"] is False
    assert set(ios["required"]) == {"platform", "challenge", "key_id", "attestation"}
    assert set(android["required"]) == {"platform", "challenge", "integrity_token"}
    assert ios["properties"]["key_id"]["pattern"] == r"^[A-Za-z0-9+/_-]{43}=?$"
    assert "429" in spec["paths"]["/attest/challenge"]["post"]["responses"]
    assert "429" in spec["paths"]["/auth/health-probe/token"]["post"]["responses"]


async def test_a_verify_body_takes_exactly_its_platforms_fields(attest_app, auth_emulator, ca):
    """What the spec says, the route holds to: one shape per platform, no field of the
    other, a key id of 32 bytes, base64 that decodes; and a refused body spends nothing."""
    async with attest_app() as client:
        alice = await runner(client, auth_emulator)
        value = await challenge(client, alice)
        key = AppKey.new()
        ios = {
            "platform": "ios",
            "challenge": value,
            "key_id": base64.b64encode(key.key_id).decode(),
            "attestation": key.attest(ca, unb64url(value)),
        }
        refused = [
            {**ios, "integrity_token": "t.t"},
            {k: v for k, v in ios.items() if k != "attestation"},
            {**ios, "key_id": base64.b64encode(b"\x01" * 31).decode()},
            {**ios, "attestation": ios["attestation"] + "A"},  # 1 mod 4: not base64
            {"platform": "android", "challenge": value, "integrity_token": "t.t", "key_id": "x"},
            {"platform": "windows", "challenge": value},
            {**ios, "challenge": value + "A"},
        ]
        for body in refused:
            response = await client.post("/attest/verify", json=body, headers=alice)
            assert response.status_code == 422, (body, await response.get_json())
        assert await Challenge.filter(challenge=value, used_at__isnull=True).exists()
        accepted = await client.post("/attest/verify", json=ios, headers=alice)
        assert accepted.status_code == 201, await accepted.get_json()


async def test_unconfigured_platforms_answer_503(app_client, auth_emulator):
    async with app_client(plugins({})) as client:
        alice = await runner(client, auth_emulator)
        value = await challenge(client, alice)
        key = AppKey.new()
        body = {
            "platform": "ios",
            "challenge": value,
            "key_id": base64.b64encode(key.key_id).decode(),
            "attestation": base64.b64encode(b"x").decode(),
        }
        ios = await client.post("/attest/verify", json=body, headers=alice)
        assert (ios.status_code, await code_of(ios)) == (503, "app_attest_not_configured")
        android = {"platform": "android", "challenge": value, "integrity_token": "t.t"}
        response = await client.post("/attest/verify", json=android, headers=alice)
        assert (response.status_code, await code_of(response)) == (
            503,
            "play_integrity_not_configured",
        )
        probe = await client.post(
            "/auth/health-probe/token",
            json={"probe_id": "m", "timestamp": 1, "nonce": "a" * 16, "signature": "b" * 16},
        )
        assert (probe.status_code, await code_of(probe)) == (503, "probes_not_configured")
