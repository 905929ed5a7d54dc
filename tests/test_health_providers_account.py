"""Account deletion and export: every provider disconnected at alice, the user's rows gone."""

from __future__ import annotations

import pytest

from core import ApiError
from core.app import runtime_of
from core.emulator import AuthEmulator
from plugins.health_providers.models import Connection, OAuthState
from plugins.users.models import User
from tests.fakes.alice import FakeAlice
from tests.health_support import alice_connected, connect, families, member


async def test_account_export_then_deletion(
    app_client, auth_emulator: AuthEmulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        platform = runtime_of(client.app).platform
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
        revoked = {c.path for c in fake_alice.api_calls("DELETE")}
        providers = platform.plugins["health_providers"].state.providers
        assert revoked == {f"/v1/users/{ann.id}/connections/{name}" for name in providers}
        assert not alice_connected(fake_alice, ann, "garmin")
        assert not alice_connected(fake_alice, ann, "strava")
        assert await Connection.filter(user_id=ann.id).count() == 0
        assert await OAuthState.filter(user_id=ann.id).count() == 0
        # Bob is untouched, and running the hook again is harmless
        assert alice_connected(fake_alice, bob, "garmin")
        assert await Connection.filter(user_id=bob.id).count() == 1
        await platform.call_each("account_deleted", reverse=True, user=user)


async def test_account_deletion_stops_when_alice_is_down(
    app_client, auth_emulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url)) as client:
        platform = runtime_of(client.app).platform
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
