"""Account deletion and export: what the user connected is revoked at alice, their rows gone."""

from __future__ import annotations

import pytest

from core import ApiError, current_platform
from core.emulator import AuthEmulator
from plugins.health_providers.models import Connection, OAuthState
from plugins.users.models import User
from tests.fakes.alice import FakeAlice
from tests.health_support import alice_connected, connect, families, member

BUILT_IN = {"garmin", "oura", "whoop", "strava", "polar", "fitbit", "withings"}
EXTRA = {"extra_provider": {"module": "tests.plugins.extra_provider"}}


def revoked_paths(alice: FakeAlice) -> list[str]:
    return [call.path for call in alice.api_calls("DELETE")]


async def test_account_export_then_deletion(
    app_client, auth_emulator: AuthEmulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        platform = current_platform(client.app)
        ann = await member(client, auth_emulator)
        bob = await member(client, auth_emulator)
        await connect(client, ann, "garmin")
        await connect(client, ann, "strava")
        await client.post("/health-providers/oura/connect", headers=ann.headers)  # pending
        await connect(client, bob, "garmin")
        user = await User.get(id=ann.id)

        [(_, exported)] = [
            (p.name, data)
            for p, data in await platform.call_each("account_export", user=user)
            if p.name == "health_providers"
        ]
        assert [(c["provider"], c["status"]) for c in exported["connections"]] == [
            ("garmin", "connected"),
            ("strava", "connected"),
        ]
        assert all(c["connected_at"] for c in exported["connections"])

        await platform.call_each("account_deleted", reverse=True, user=user)
        # exactly what Ann has here: two connections and a pending authorization (for which
        # alice answers 404 not_connected: nothing to revoke, which counts as revoked)
        assert sorted(revoked_paths(fake_alice)) == [
            f"/v1/users/{ann.id}/connections/{name}" for name in ("garmin", "oura", "strava")
        ]
        assert not alice_connected(fake_alice, ann, "garmin")
        assert not alice_connected(fake_alice, ann, "strava")
        assert await Connection.filter(user_id=ann.id).count() == 0
        assert await OAuthState.filter(user_id=ann.id).count() == 0
        # Bob is untouched, and running the hook again is harmless (nothing left to revoke)
        assert alice_connected(fake_alice, bob, "garmin")
        assert await Connection.filter(user_id=bob.id).count() == 1
        fake_alice.calls.clear()
        await platform.call_each("account_deleted", reverse=True, user=user)
        assert revoked_paths(fake_alice) == []


async def test_deletion_does_not_ask_alice_about_providers_the_user_never_connected(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    """alice refuses (400) a provider it does not know; only the user's own ones are asked."""
    async with app_client(families(fake_alice.url, **EXTRA)) as client:
        ann = await member(client, auth_emulator)
        await connect(client, ann, "garmin")
        fake_alice.supported = set(BUILT_IN)  # no decathlon, which extra_provider registers
        fake_alice.calls.clear()

        deleted = await client.delete("/account", headers=ann.headers)
        assert deleted.status_code == 204, await deleted.get_data()
        assert revoked_paths(fake_alice) == [f"/v1/users/{ann.id}/connections/garmin"]
        assert not alice_connected(fake_alice, ann, "garmin")
        assert await Connection.filter(user_id=ann.id).count() == 0


async def test_alice_refusing_a_connected_provider_stops_the_deletion(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url, **EXTRA)) as client:
        platform = current_platform(client.app)
        ann = await member(client, auth_emulator)
        await connect(client, ann, "decathlon")
        fake_alice.supported = set(BUILT_IN)  # alice no longer knows decathlon
        user = await User.get(id=ann.id)
        with pytest.raises(ApiError) as raised:
            await platform.call_each("account_deleted", reverse=True, user=user)
        assert (raised.value.status, raised.value.code) == (502, "upstream_rejected")
        assert "revoke the decathlon connection" in raised.value.detail
        assert "unsupported_provider" in raised.value.detail
        # the connection stays, so a retry asks alice again
        assert await Connection.filter(user_id=ann.id).count() == 1


async def test_account_deletion_stops_when_alice_is_down(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        platform = current_platform(client.app)
        ann = await member(client, auth_emulator)
        await connect(client, ann, "garmin")
        fake_alice.fail_with = 503
        user = await User.get(id=ann.id)
        with pytest.raises(ApiError) as raised:  # the family running deletion reports it
            await platform.call_each("account_deleted", reverse=True, user=user)
        assert (raised.value.status, raised.value.detail) == (
            502,
            "alice failed to answer (HTTP 503).",
        )
        # nothing local was deleted while alice still holds the tokens
        assert await Connection.filter(user_id=ann.id).count() == 1
