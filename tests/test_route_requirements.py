"""Per-route requirements: one family defines one, another family's route declares it.

``gatekeeper`` defines ``stamped`` (an ``X-Stamp`` header); ``vault`` serves ``GET /vault``
with ``requires=("stamped",)``. Core runs the check in its own pipeline, after the token
and before the handler, and documents it in the spec.
"""

from __future__ import annotations

import hashlib

import pytest

from core import ConfigError, ConflictError, Identity, User, create_app
from core.emulator import AuthEmulator
from tests.plugins import gatekeeper, vault
from tests.support import bearer, new_account, runtime_of

GATEKEEPER = {"module": "tests.plugins.gatekeeper", "settings": {"stamp": "s3cret"}}
VAULT = {"module": "tests.plugins.vault", "requires": ["gatekeeper"]}
PLUGINS = {"gatekeeper": GATEKEEPER, "vault": VAULT}


async def test_a_request_without_the_requirement_never_reaches_the_handler(
    app_client, auth_emulator: AuthEmulator
):
    headers = bearer(new_account(auth_emulator))
    async with app_client(PLUGINS) as client:
        platform = runtime_of(client).platform
        seen = gatekeeper.FAMILY.of(platform).stash[gatekeeper.SEEN]
        opened = vault.FAMILY.of(platform).stash[vault.OPENED]

        refused = await client.get("/vault", headers=headers)
        assert refused.status_code == 403
        assert (await refused.get_json())["code"] == "stamp_required"
        wrong = await client.get("/vault", headers={**headers, "X-Stamp": "forged"})
        assert wrong.status_code == 403
        assert (seen.checked, seen.refused, opened.times) == (2, 2, 0)

        stamped = await client.get("/vault", headers={**headers, "X-Stamp": "s3cret"})
        assert stamped.status_code == 200
        assert (await stamped.get_json())["opened"] == 1
        assert (seen.checked, seen.refused, opened.times) == (3, 2, 1)


async def test_the_token_is_checked_before_the_requirement(app_client):
    async with app_client(PLUGINS) as client:
        seen = gatekeeper.FAMILY.of(runtime_of(client).platform).stash[gatekeeper.SEEN]
        response = await client.get("/vault", headers={"X-Stamp": "s3cret"})
        assert response.status_code == 401
        assert seen.checked == 0


async def test_the_spec_documents_the_requirement(app_client):
    async with app_client(PLUGINS) as client:
        spec = await (await client.get("/openapi.json")).get_json()
    operation = spec["paths"]["/vault"]["get"]
    assert operation["security"] == [{"FirebaseBearer": [], "stamped": []}]
    assert "403" in operation["responses"] and "401" in operation["responses"]
    assert "stamped" in operation["description"]
    scheme = spec["components"]["securitySchemes"]["stamped"]
    assert scheme["type"] == "apiKey" and scheme["in"] == "header" and scheme["name"] == "X-Stamp"


def test_a_route_requiring_an_undefined_requirement_stops_start_up(core_settings):
    with pytest.raises(ConfigError, match="plugin 'vault': /vault requires 'stamped'"):
        create_app(core_settings({"vault": {"module": "tests.plugins.vault"}}))


def test_two_families_defining_one_requirement_conflict(core_settings):
    plugins = {
        "gatekeeper": {**GATEKEEPER, "on_failure": "skip"},
        "copy": {"module": "tests.plugins.gatekeeper_copy", "on_failure": "skip"},
    }
    with pytest.raises(ConflictError, match="'stamped' is contributed by both plugin"):
        create_app(core_settings(plugins))


async def test_any_family_may_resolve_the_user(app_client, auth_emulator: AuthEmulator):
    """``resolve_user`` belongs to no family in particular: here ``roster`` answers it."""
    first, second = new_account(auth_emulator), new_account(auth_emulator)
    async with app_client({"roster": {"module": "tests.plugins.roster"}}) as client:
        one = await (await client.get("/roster/me", headers=bearer(first))).get_json()
        two = await (await client.get("/roster/me", headers=bearer(second))).get_json()
        again = await (await client.get("/roster/me", headers=bearer(first))).get_json()
        async with client.app.app_context():
            found = await runtime_of(client).find_user(Identity(uid=second.uid, claims={}))
    assert (one["id"], two["id"], again) == (1, 2, one)
    assert one["firebase_uid"] == first.uid and one["email"] == first.email
    assert isinstance(found, User) and found.id == 2


async def test_a_raw_body_route_gets_exactly_the_bytes_sent(app_client):
    sent = b'{ "z": 1,\n  "a" : "\\u00e9" }  '
    async with app_client(
        {"echo": {"module": "tests.plugins.echo"}}, max_body_bytes=2048
    ) as client:
        answer = await client.post(
            "/echo/raw", data=sent, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 200
        assert await answer.get_json() == {
            "size": len(sent),
            "sha256": hashlib.sha256(sent).hexdigest(),
        }
        too_big = await client.post(
            "/echo/raw", data=b"x" * 4096, headers={"Content-Type": "application/json"}
        )
        assert too_big.status_code == 413
        assert (await too_big.get_json())["code"] == "payload_too_large"
        spec = await (await client.get("/openapi.json")).get_json()
    assert "application/json" in spec["paths"]["/echo/raw"]["post"]["requestBody"]["content"]
