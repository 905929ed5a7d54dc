"""An installed package's family, found by its ``imperfect.plugins`` entry point.

``imperfect-example`` (tests/example_plugin, installed editable) contributes a
route, a model with a migration, settings with a secret, a spec fragment, a
CLI command and an implementation of the ``noticeboard`` family's hook.
"""

from __future__ import annotations

import json
from typing import Any

from imperfect_example.models import Note

SECRET = "sk-example-5f1d2c-never-print-me"
SOURCE = "entry point imperfect.plugins:example"


def plugins(*, noticeboard: bool = True) -> dict[str, Any]:
    return {
        "root": {"module": "plugins.root"},
        "noticeboard": {"module": "tests.plugins.noticeboard", "enabled": noticeboard},
        "example": {
            "entry_point": "example",
            "settings": {"greeting": "Howdy", "api_key": {"env": "EXAMPLE_API_KEY"}},
        },
    }


async def test_entry_point_family_serves_route_table_spec_and_metadata(
    app_client, table_names, monkeypatch
):
    monkeypatch.setenv("EXAMPLE_API_KEY", SECRET)
    async with app_client(plugins()) as client:
        notes = await client.get("/example/notes")
        assert notes.status_code == 401  # served by the family, which wants a token
        assert (await notes.get_json())["code"] == "missing_token"
        assert "example_note" in await table_names()

        root = await client.get("/")
        root_text = (await root.get_data()).decode()
        spec_text = (await (await client.get("/openapi.json")).get_data()).decode()
    families = {family["name"]: family for family in json.loads(root_text)["families"]}
    assert families["example"] == {
        "name": "example",
        "version": "0.3.0",
        "description": "Notes, from an installed package.",
        "source": SOURCE,
    }
    spec = json.loads(spec_text)
    assert set(spec["paths"]["/example/notes"]) == {"get", "post"}
    for operation in spec["paths"]["/example/notes"].values():
        assert operation["tags"] == ["example"]
    assert "example" in [tag["name"] for tag in spec["tags"]]
    assert spec["components"]["securitySchemes"]["ExampleApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Example-Key",
    }
    assert SECRET not in root_text
    assert SECRET not in spec_text


async def test_family_implements_the_noticeboard_hook(app_client, monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", SECRET)
    async with app_client(plugins()) as client:
        board = await (await client.get("/notices")).get_json()
        assert board == {"notices": ["Howdy: 0 note(s) stored"]}
        await Note.create(owner_uid="uid-1", text="tempo run")
        board = await (await client.get("/notices")).get_json()
        assert board == {"notices": ["Howdy: 1 note(s) stored"]}


async def test_family_loads_without_the_noticeboard_its_hook_belongs_to(app_client, monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", SECRET)
    async with app_client(plugins(noticeboard=False)) as client:
        assert (await client.get("/notices")).status_code == 404
        assert (await client.get("/example/notes")).status_code == 401
        root = await (await client.get("/")).get_json()
    assert [family["name"] for family in root["families"]] == ["root", "example"]
    assert root["left_out"] == [
        {"name": "noticeboard", "status": "disabled", "reason": "disabled by plugins.toml"}
    ]


def _env() -> dict[str, str]:
    return {"EXAMPLE_API_KEY": SECRET}


def test_cli_command_from_the_family_prints_the_configured_greeting(imperfect):
    result = imperfect("example-greet", "Ann", plugins=plugins(), env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Howdy, Ann!\n"


def test_imperfect_plugins_json_describes_the_family(imperfect):
    result = imperfect("plugins", "--json", plugins=plugins(), env=_env())
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    rows["example"]["routes"].sort()
    assert rows["example"] == {
        "name": "example",
        "version": "0.3.0",
        "source": SOURCE,
        "status": "enabled",
        "routes": ["GET /example/notes", "POST /example/notes"],
        "tables": ["example_note"],
    }
    assert SECRET not in result.stdout + result.stderr


def test_imperfect_plugins_lists_the_family_without_its_secret(imperfect):
    result = imperfect("plugins", plugins=plugins(), env=_env())
    assert result.returncode == 0, result.stderr
    assert f"example 0.3.0 [enabled] {SOURCE}" in result.stdout
    assert "    route: GET /example/notes" in result.stdout
    assert "    table: example_note" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_imperfect_check_validates_the_family_without_printing_its_secret(imperfect):
    result = imperfect("check", plugins=plugins(), env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 3 families enabled (root, noticeboard, example)")
    assert SECRET not in result.stdout + result.stderr
