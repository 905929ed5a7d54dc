"""Turning families on and off (plugins.toml, IMPERFECT_DISABLE, IMPERFECT_ENABLE).

A disabled family is absent from the routes, the database and the spec, and
``GET /`` says why; enabling it again brings all of it back. ``ledger`` stays on
throughout as the control: a family with a table that must keep serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from core import create_app
from core.errors import ConfigError


def plugins(*, root: bool = True, example: bool = True) -> dict[str, Any]:
    return {
        "root": {"module": "plugins.root", "enabled": root},
        "ledger": {"module": "tests.plugins.ledger"},
        "example": {"entry_point": "example", "enabled": example, "settings": {"api_key": "k"}},
    }


@dataclass
class Observed:
    """What a client and the database see of ``root`` and ``example``."""

    root_status: int
    example_status: int
    ledger_status: int
    paths: set[str]
    tags: set[str]
    tables: set[str]


async def observe(client: Any, table_names: Any) -> Observed:
    spec = await (await client.get("/openapi.json")).get_json()
    return Observed(
        root_status=(await client.get("/")).status_code,
        example_status=(await client.get("/example/notes")).status_code,
        ledger_status=(await client.get("/ledger/entries")).status_code,
        paths=set(spec["paths"]),
        tags={tag["name"] for tag in spec.get("tags", [])},
        tables=await table_names(),
    )


def assert_off(seen: Observed) -> None:
    assert seen.root_status == 404
    assert seen.example_status == 404
    assert "/" not in seen.paths and "/example/notes" not in seen.paths
    assert not {"root", "example"} & seen.tags
    assert "example_note" not in seen.tables
    # the family that stayed on still serves, from its own table
    assert seen.ledger_status == 200
    assert "/ledger/entries" in seen.paths
    assert "ledger_entry" in seen.tables


def assert_on(seen: Observed) -> None:
    assert seen.root_status == 200
    assert seen.example_status == 401  # served, and asking for a token
    assert {"/", "/example/notes", "/ledger/entries"} <= seen.paths
    assert {"root", "example", "ledger"} <= seen.tags
    assert {"example_note", "ledger_entry"} <= seen.tables


async def test_disabled_in_plugins_toml_then_enabled_again(app_client, table_names):
    async with app_client(plugins(root=False, example=False)) as client:
        assert_off(await observe(client, table_names))
        missing = await client.get("/example/notes")
        assert (await missing.get_json())["code"] == "not_found"
    async with app_client(plugins(root=True, example=True)) as client:
        assert_on(await observe(client, table_names))


async def test_disabled_by_env_then_enabled_again(app_client, table_names, monkeypatch):
    monkeypatch.setenv("IMPERFECT_DISABLE", "root, example")
    async with app_client(plugins()) as client:
        assert_off(await observe(client, table_names))
    monkeypatch.delenv("IMPERFECT_DISABLE")
    async with app_client(plugins()) as client:
        assert_on(await observe(client, table_names))


async def test_disable_setting_wins_over_enabled_true(app_client, table_names):
    async with app_client(plugins(), disable="root,example") as client:
        assert_off(await observe(client, table_names))


async def test_env_enable_overrides_enabled_false_in_file(app_client, table_names, monkeypatch):
    monkeypatch.setenv("IMPERFECT_ENABLE", "example")
    async with app_client(plugins(example=False)) as client:
        assert_on(await observe(client, table_names))
        root = await (await client.get("/")).get_json()
        assert "example" in [family["name"] for family in root["families"]]
        assert "example" not in [left["name"] for left in root["left_out"]]


@pytest.mark.parametrize(
    ("how", "reason"),
    [("file", "disabled by plugins.toml"), ("env", "disabled by IMPERFECT_DISABLE")],
)
async def test_root_lists_disabled_families_with_reason(app_client, monkeypatch, how, reason):
    if how == "env":
        monkeypatch.setenv("IMPERFECT_DISABLE", "example")
    async with app_client(plugins(example=how != "file")) as client:
        response = await client.get("/")
        assert response.status_code == 200
        body = await response.get_json()
    assert [family["name"] for family in body["families"]] == ["root", "ledger"]
    assert body["left_out"] == [{"name": "example", "status": "disabled", "reason": reason}]


async def test_disabling_an_unknown_family_is_an_error(core_settings):
    with pytest.raises(ConfigError, match="unknown plugin 'exmaple'"):
        create_app(core_settings(plugins(), disable="exmaple"))
