"""The provider registry: other families add providers; enabling and disabling follows through
the catalogue, the routes and the spec's ``{provider}`` enum."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from core import create_app
from core.emulator import AuthEmulator
from core.errors import ConflictError, PluginLoadError
from tests.fakes.alice import FakeAlice
from tests.fakes.terra import FakeTerra
from tests.health_support import alice_connected, connect, families, member
from tests.support import ROOT

BUILT_IN = ["garmin", "oura", "whoop", "strava", "polar", "fitbit", "withings"]
TERRA = ["coros", "suunto", "wahoo", "apple_health", "samsung_health"]
EXTRA = {"extra_provider": {"module": "tests.plugins.extra_provider"}}
PROVIDER_PATHS = [
    ("/health-providers/{provider}", "get"),
    ("/health-providers/{provider}", "delete"),
    ("/health-providers/{provider}/connect", "post"),
    ("/health-providers/{provider}/callback", "get"),
    ("/health-providers/{provider}/complete", "post"),
    ("/onboarding/{provider}/insights", "get"),
]


def provider_enums(spec: dict[str, Any]) -> set[tuple[str, ...]]:
    """The ``{provider}`` enum of every operation that takes one (they must all agree)."""
    enums = set()
    for path, method in PROVIDER_PATHS:
        [parameter] = [p for p in spec["paths"][path][method]["parameters"] if p["in"] == "path"]
        schema = parameter["schema"]
        if "$ref" in schema:  # one named component for every route that takes a provider
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        assert parameter["name"] == "provider" and schema["type"] == "string"
        enums.add(tuple(schema["enum"]))
    return enums


async def test_a_provider_from_another_family_is_listed_connectable_and_in_the_spec(
    app_client, auth_emulator: AuthEmulator, fake_alice: FakeAlice
):
    async with app_client(families(fake_alice.url, terra={}, **EXTRA)) as client:
        spec = await (await client.get("/openapi.json")).get_json()
        validate(spec)
        assert provider_enums(spec) == {(*BUILT_IN, *TERRA, "decathlon")}

        ann = await member(client, auth_emulator)
        catalogue = await (await client.get("/health-providers", headers=ann.headers)).get_json()
        listed = {p["name"]: p for p in catalogue["providers"]}
        assert list(listed) == [*BUILT_IN, *TERRA, "decathlon"]
        assert listed["decathlon"] == {
            "name": "decathlon",
            "display_name": "Decathlon Coach",
            "kind": "app",
            "connect": "oauth",
            "connect_path": "/health-providers/decathlon/connect",
            "connection": {
                "provider": "decathlon",
                "status": "not_connected",
                "connected_at": None,
                "last_sync_at": None,
                "backfill_completed_at": None,
                "revoked_at": None,
            },
        }
        assert listed["apple_health"]["connect"] == "sdk"
        assert listed["apple_health"]["connect_path"] == "/session/sdk-token"
        assert listed["coros"]["connect_path"] == "/session"

        await connect(client, ann, "decathlon")
        assert alice_connected(fake_alice, ann, "decathlon")
        status = await client.get("/health-providers/decathlon", headers=ann.headers)
        assert (await status.get_json())["status"] == "connected"


async def test_disabling_terra_removes_its_providers_and_routes(
    app_client, auth_emulator, fake_alice
):
    plugins = families(fake_alice.url, terra={})
    plugins["terra"]["enabled"] = False
    async with app_client(plugins) as client:
        spec = await (await client.get("/openapi.json")).get_json()
        assert provider_enums(spec) == {tuple(BUILT_IN)}
        assert "/session" not in spec["paths"] and "/session/sdk-token" not in spec["paths"]
        ann = await member(client, auth_emulator)
        catalogue = await (await client.get("/health-providers", headers=ann.headers)).get_json()
        assert [p["name"] for p in catalogue["providers"]] == BUILT_IN
        assert (await client.post("/session", headers=ann.headers)).status_code == 404
        assert (await client.get("/health-providers/coros", headers=ann.headers)).status_code == 404


async def test_terra_serves_sessions_with_health_providers_disabled(
    app_client, auth_emulator, fake_terra: FakeTerra, fake_alice: FakeAlice
):
    plugins = {
        "users": {"module": "plugins.users"},
        "health_providers": {"module": "plugins.health_providers", "enabled": False},
        "terra": {
            "module": "plugins.terra",
            "settings": {
                "base_url": fake_terra.url,
                "dev_id": fake_terra.dev_id,
                "api_key": fake_terra.api_key,
                "alice_url": fake_alice.url,
            },
        },
    }
    async with app_client(plugins) as client:
        spec = await (await client.get("/openapi.json")).get_json()
        assert "/session" in spec["paths"]
        assert not [p for p in spec["paths"] if p.startswith(("/health-providers", "/onboarding"))]
        ann = await member(client, auth_emulator)
        session = await client.post("/session", headers=ann.headers)
        assert session.status_code == 201
        assert (await client.get("/health-providers", headers=ann.headers)).status_code == 404


ON_FAILURE = ["skip", "abort"]


@pytest.mark.parametrize("catalogue_on_failure", ON_FAILURE)
@pytest.mark.parametrize("author_on_failure", ON_FAILURE)
def test_a_duplicate_provider_stops_start_up_whatever_on_failure_says(
    core_settings, catalogue_on_failure, author_on_failure
):
    plugins = families("http://127.0.0.1:1")
    plugins["health_providers"]["on_failure"] = catalogue_on_failure
    plugins["extra_provider"] = {
        "module": "tests.plugins.extra_provider",
        "on_failure": author_on_failure,
        "settings": {"name": "garmin"},
    }
    with pytest.raises(ConflictError) as raised:
        create_app(core_settings(plugins))
    message = str(raised.value)
    assert message.startswith("health_providers 'garmin' is contributed by both plugin '")
    assert "plugin 'health_providers'" in message and "plugin 'extra_provider'" in message


@pytest.mark.parametrize("catalogue_on_failure", ON_FAILURE)
def test_an_invalid_provider_stops_start_up_naming_its_author(core_settings, catalogue_on_failure):
    plugins = families("http://127.0.0.1:1")
    plugins["health_providers"]["on_failure"] = catalogue_on_failure
    plugins["extra_provider"] = {
        "module": "tests.plugins.extra_provider",
        "settings": {"name": "Not A Name"},  # on_failure defaults to "abort"
    }
    with pytest.raises(PluginLoadError) as raised:
        create_app(core_settings(plugins))
    assert raised.value.plugin == "extra_provider"
    assert str(raised.value).startswith(
        "plugin 'extra_provider': invalid health_providers contribution"
    )
    assert "'Not A Name'" in str(raised.value) and "name: String should match" in str(raised.value)


@pytest.mark.parametrize("catalogue_on_failure", ON_FAILURE)
async def test_an_invalid_provider_under_skip_leaves_its_author_out_and_the_catalogue_serves(
    app_client, auth_emulator, fake_alice, catalogue_on_failure
):
    plugins = {"root": {"module": "plugins.root"}, **families(fake_alice.url, terra={})}
    plugins["health_providers"]["on_failure"] = catalogue_on_failure
    plugins["extra_provider"] = {
        "module": "tests.plugins.extra_provider",
        "on_failure": "skip",
        "settings": {"name": "Not A Name"},
    }
    async with app_client(plugins) as client:
        root = await (await client.get("/")).get_json()
        served = [f["name"] for f in root["families"]]
        assert "health_providers" in served and "terra" in served
        assert "extra_provider" not in served
        [left_out] = [f for f in root["left_out"] if f["name"] == "extra_provider"]
        assert left_out["status"] == "skipped"
        assert left_out["reason"].startswith("invalid health_providers contribution")
        assert "'Not A Name'" in left_out["reason"]

        spec = await (await client.get("/openapi.json")).get_json()
        assert provider_enums(spec) == {(*BUILT_IN, *TERRA)}
        ann = await member(client, auth_emulator)
        catalogue = await (await client.get("/health-providers", headers=ann.headers)).get_json()
        assert [p["name"] for p in catalogue["providers"]] == [*BUILT_IN, *TERRA]


def test_a_failing_provider_hook_is_blamed_on_its_author(core_settings):
    plugins = families("http://127.0.0.1:1")
    plugins["extra_provider"] = {
        "module": "tests.plugins.extra_provider",
        "settings": {"fail": True},
    }
    with pytest.raises(PluginLoadError) as raised:
        create_app(core_settings(plugins))
    assert raised.value.plugin == "extra_provider"
    assert "hook health_providers failed" in str(raised.value)


def test_checked_in_spec_lists_built_in_and_terra_providers():
    import json

    spec = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert provider_enums(spec) == {(*BUILT_IN, *TERRA)}
