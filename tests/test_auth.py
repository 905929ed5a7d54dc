"""Authentication against the real Firebase Auth Emulator, through the HTTP app."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from core import create_app
from core.emulator import AuthEmulator
from core.errors import ConfigError
from tests.support.ports import free_port

PLUGINS = {"example": {"entry_point": "example", "settings": {"api_key": "k"}}}


def _email() -> str:
    return f"runner-{uuid.uuid4().hex[:10]}@example.com"


def _forge(claims: dict) -> str:
    """An unsigned token shaped like the emulator's, with the given claims."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_valid_token_reaches_handler_as_caller(app_client, auth_emulator: AuthEmulator):
    account = auth_emulator.sign_up(_email(), "secret-pass-1")
    async with app_client(PLUGINS) as client:
        headers = {"Authorization": f"Bearer {account.id_token}"}
        created = await client.post("/example/notes", json={"text": "tempo run"}, headers=headers)
        assert created.status_code == 201
        note = await created.get_json()
        assert note["owner_uid"] == account.uid
        listed = await (await client.get("/example/notes", headers=headers)).get_json()
        assert [n["text"] for n in listed] == ["tempo run"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_token"),
        ("Basic dXNlcjpwdw==", "invalid_authorization"),
        ("Bearer not-a-jwt", "invalid_token"),
        ("Bearer ", "invalid_authorization"),
    ],
)
async def test_missing_or_malformed_token_is_401(app_client, auth_emulator, header, code):
    async with app_client(PLUGINS) as client:
        headers = {"Authorization": header} if header else {}
        response = await client.get("/example/notes", headers=headers)
        assert response.status_code == 401
        body = await response.get_json()
        assert body["code"] == code and body["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_token_for_another_project_is_401(app_client, auth_emulator: AuthEmulator):
    account = auth_emulator.sign_up(_email(), "secret-pass-1")
    now = int(time.time())
    other = "demo-someone-else"
    token = _forge(
        {
            "iss": f"https://securetoken.google.com/{other}",
            "aud": other,
            "sub": account.uid,
            "user_id": account.uid,
            "auth_time": now,
            "iat": now,
            "exp": now + 3600,
        }
    )
    async with app_client(PLUGINS) as client:
        response = await client.get("/example/notes", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        body = await response.get_json()
        assert body["code"] == "invalid_token"
        assert "another Firebase project" in body["detail"]


async def test_token_of_deleted_user_is_401(app_client, auth_emulator: AuthEmulator):
    account = auth_emulator.sign_up(_email(), "secret-pass-1")
    auth_emulator.delete(account.uid)
    assert auth_emulator.lookup(account.uid) is None
    async with app_client(PLUGINS) as client:
        response = await client.get(
            "/example/notes", headers={"Authorization": f"Bearer {account.id_token}"}
        )
        assert response.status_code == 401
        assert (await response.get_json())["code"] == "user_not_found"


async def test_revoked_token_is_401(app_client, auth_emulator: AuthEmulator, monkeypatch):
    """With no revocation window, every request reads the user's state (tests/test_auth_path.py
    covers the window itself)."""
    monkeypatch.setenv("IMPERFECT_REVOCATION_WINDOW", "0")
    account = auth_emulator.sign_up(_email(), "secret-pass-1")
    headers = {"Authorization": f"Bearer {account.id_token}"}
    async with app_client(PLUGINS) as client:
        assert (await client.get("/example/notes", headers=headers)).status_code == 200
        time.sleep(1.1)  # revocation has one-second granularity
        auth_emulator.revoke(account.uid)
        response = await client.get("/example/notes", headers=headers)
        assert response.status_code == 401
        assert (await response.get_json())["code"] == "token_revoked"
        fresh = auth_emulator.sign_in(account.email, "secret-pass-1")
        response = await client.get(
            "/example/notes", headers={"Authorization": f"Bearer {fresh.id_token}"}
        )
        assert response.status_code == 200


async def test_unverifiable_token_without_firebase_reach_is_503_not_500(app_client, monkeypatch):
    """Outside the emulator, a token whose keys cannot be fetched is our outage: 503."""
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    # Google's certificates from a port nobody listens on
    monkeypatch.setenv("IMPERFECT_FIREBASE_CERTS_URL", f"http://127.0.0.1:{free_port()}/certs")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    now = int(time.time())
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k1","typ":"JWT"}').rstrip(b"=")
    claims = {
        "iss": "https://securetoken.google.com/demo-imperfect",
        "aud": "demo-imperfect",
        "sub": "someone",
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
    }
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    token = f"{header.decode()}.{payload.decode()}.c2lnbmF0dXJl"
    async with app_client(PLUGINS) as client:
        response = await client.get("/example/notes", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503
        assert (await response.get_json())["code"] == "auth_unavailable"


@pytest.mark.parametrize("environment", ["production", "Production", "prod", "staging", ""])
async def test_emulator_host_is_refused_outside_development_and_test(
    core_settings, auth_emulator, environment
):
    """Refused when the settings are built (tests/test_security.py covers the CLI too)."""
    with pytest.raises(ConfigError, match="FIREBASE_AUTH_EMULATOR_HOST is set while IMPERFECT_ENV"):
        core_settings(PLUGINS, environment=environment)


async def test_emulator_host_set_after_start_up_checks_is_refused_at_start(
    core_settings, auth_emulator, monkeypatch
):
    """firebase-admin reads the variable itself: the Firebase app checks it once more."""
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST")
    app = create_app(core_settings(PLUGINS, environment="production"))
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", auth_emulator.base.removeprefix("http://"))
    with pytest.raises(Exception, match="FIREBASE_AUTH_EMULATOR_HOST is set while IMPERFECT_ENV"):
        async with app.test_app():
            pass


async def test_admin_routes_need_the_admin_custom_claim(app_client, auth_emulator: AuthEmulator):
    plugins = {"ledger": {"module": "tests.plugins.ledger"}}
    account = auth_emulator.sign_up(_email(), "secret-pass-1")
    async with app_client(plugins) as client:
        refused = await client.delete(
            "/ledger/entries", headers={"Authorization": f"Bearer {account.id_token}"}
        )
        assert refused.status_code == 403
        assert (await refused.get_json())["code"] == "admin_required"

        auth_emulator.set_claims(account.uid, {"admin": True})
        admin = auth_emulator.sign_in(account.email, "secret-pass-1")  # a token with the claim
        allowed = await client.delete(
            "/ledger/entries", headers={"Authorization": f"Bearer {admin.id_token}"}
        )
        assert allowed.status_code == 204

        spec = await (await client.get("/openapi.json")).get_json()
        responses = spec["paths"]["/ledger/entries"]["delete"]["responses"]
        assert {"204", "401", "403"} <= set(responses)
