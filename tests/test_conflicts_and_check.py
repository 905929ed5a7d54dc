"""Conflicts fail start-up naming both plugins; bad configuration fails ``imperfect check``
naming the plugin and the key; ``on_failure`` decides whether a failing family is left
out (and reported) or stops start-up.
"""

from __future__ import annotations

from typing import Any

import pytest
from quart.testing.app import LifespanError

from core import create_app
from core.config import resolve_secrets
from core.errors import ConfigError, ConflictError, PluginLoadError

ROOT = {"module": "plugins.root"}
LEDGER = {"module": "tests.plugins.ledger"}


def clash(kind: str) -> dict[str, Any]:
    return {
        "clash_a": {"module": "tests.plugins.clash_a", "settings": {"kind": kind}},
        "clash_b": {"module": "tests.plugins.clash_b", "settings": {"kind": kind}},
    }


# --- conflicts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("route", "GET /clash/route is served by both"),
        ("converter", "GET /x/<b> is served by both"),
        ("operation_id", "operationId 'shared_operation' is used by both"),
        ("schema", "component schema 'Item' is defined differently by"),
        ("security_scheme", "component securitySchemes 'ClashKey' is defined differently by"),
        ("table", "table 'clash_shared' is defined by both"),
        ("outbox", "outbox kind 'clash.deliver' is handled by both"),
    ],
)
def test_conflict_fails_start_up_naming_both_plugins(core_settings, kind, what):
    with pytest.raises(ConflictError) as raised:
        create_app(core_settings({"root": ROOT, **clash(kind)}))
    message = str(raised.value)
    assert what in message
    assert "plugin 'clash_a'" in message and "plugin 'clash_b'" in message


def test_plugin_route_clashing_with_a_core_route_fails(core_settings):
    plugins = {"clash_a": {"module": "tests.plugins.clash_a", "settings": {"kind": "core_route"}}}
    with pytest.raises(ConflictError) as raised:
        create_app(core_settings(plugins))
    assert str(raised.value) == "GET /healthz is served by both plugin 'core' and plugin 'clash_a'"


def test_plugin_table_clashing_with_a_core_table_fails(core_settings):
    plugins = {"clash_a": {"module": "tests.plugins.clash_a", "settings": {"kind": "core_table"}}}
    with pytest.raises(ConflictError) as raised:
        create_app(core_settings(plugins))
    assert str(raised.value) == "table 'core_outbox' is defined by both core and plugin 'clash_a'"


def test_core_is_not_a_family_name(core_settings):
    with pytest.raises(ConfigError) as raised:
        create_app(core_settings({"core": ROOT}))
    assert str(raised.value) == "plugin 'core': the name 'core' is reserved for the platform"


async def test_same_component_with_same_content_is_shared(app_client):
    async with app_client({"root": ROOT, **clash("same_schema")}) as client:
        spec = await (await client.get("/openapi.json")).get_json()
    assert {"/clash-a/item", "/clash-b/item"} <= set(spec["paths"])
    assert spec["components"]["schemas"]["Item"]["properties"] == {
        "x": {"title": "X", "type": "integer"}
    }


def test_same_cli_command_from_two_plugins_fails_naming_both(imperfect):
    result = imperfect("clash-hello", plugins=clash("command"))
    assert result.returncode == 1
    assert "command 'clash-hello' is defined by both plugin 'clash_a' and plugin 'clash_b'" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert "hello" not in result.stdout


# --- imperfect check ---------------------------------------------------------------------

EXAMPLE = {"entry_point": "example", "settings": {"api_key": "k"}}


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        pytest.param(
            {"root": {**ROOT, "requires": ["nope"]}},
            "plugin 'root': requires 'nope', which is not listed in plugins.toml",
            id="missing-required",
        ),
        pytest.param(
            {"root": {**ROOT, "requires": ["example"]}, "example": {**EXAMPLE, "enabled": False}},
            "plugin 'root': requires 'example', which is disabled (disabled by plugins.toml)",
            id="required-disabled",
        ),
        pytest.param(
            {
                "root": {**ROOT, "requires": ["noticeboard"]},
                "noticeboard": {"module": "tests.plugins.noticeboard", "requires": ["root"]},
            },
            "dependency cycle root -> noticeboard -> root",
            id="cycle",
        ),
        pytest.param(
            {"root": {**ROOT, "settings": {"colour": "red"}}},
            "plugin 'root': setting 'colour': Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            {
                "example": {
                    "entry_point": "example",
                    "settings": {"api_key": "k", "max_notes": "many"},
                }
            },
            "plugin 'example': setting 'max_notes': Input should be a valid integer",
            id="wrong-type",
        ),
        pytest.param(
            {"example": {"entry_point": "example", "settings": {"api_key": {"env": "UNSET_VAR"}}}},
            "plugin 'example': setting 'api_key' reads environment variable UNSET_VAR, "
            "which is not set",
            id="missing-secret",
        ),
    ],
)
def test_check_fails_naming_plugin_and_key(imperfect, monkeypatch, plugins, expected):
    monkeypatch.delenv("UNSET_VAR", raising=False)
    result = imperfect("check", plugins=plugins)
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert "ok:" not in result.stdout


def test_env_setting_with_a_default_loads_without_the_variable(monkeypatch):
    monkeypatch.delenv("UNSET_VAR", raising=False)
    monkeypatch.setenv("SET_VAR", "from-env")
    raw = {
        "a": {"env": "UNSET_VAR", "default": ""},
        "b": {"env": "SET_VAR", "default": "fallback"},
        "nested": {"c": {"env": "UNSET_VAR", "default": 3}},
    }
    assert resolve_secrets(raw) == {"a": "", "b": "from-env", "nested": {"c": 3}}
    with pytest.raises(ConfigError, match="reads environment variable UNSET_VAR"):
        resolve_secrets({"a": {"env": "UNSET_VAR"}})


# --- on_failure ----------------------------------------------------------------------------

FAILURES: dict[str, dict[str, Any]] = {
    "import": {"module": "tests.plugins.broken_import"},
    "settings": {"entry_point": "example", "settings": {"api_key": "k", "max_notes": "many"}},
    "blueprints": {"module": "tests.plugins.fragile", "settings": {"fail_in": "blueprints"}},
}
CAUSES = {
    "import": "cannot import module tests.plugins.broken_import: ModuleNotFoundError("
    "\"No module named 'imperfect_no_such_dependency'\")",
    "settings": "setting 'max_notes': Input should be a valid integer",
    "blueprints": "hook blueprints failed: RuntimeError('blueprints exploded')",
}
NAMES = {"import": "broken", "settings": "example", "blueprints": "fragile"}


def skipping(**extra: Any) -> dict[str, Any]:
    """Every failing family under ``skip``, and the families that must keep serving."""
    plugins: dict[str, Any] = {"root": ROOT, "ledger": LEDGER}
    for failure, table in FAILURES.items():
        plugins[NAMES[failure]] = {**table, "on_failure": "skip"}
    plugins.update(extra)
    return plugins


async def test_skip_leaves_failing_families_out_and_reports_them(app_client, table_names):
    async with app_client(skipping()) as client:
        root = await (await client.get("/")).get_json()
        spec = await (await client.get("/openapi.json")).get_json()
        statuses = {
            path: (await client.get(path)).status_code
            for path in ("/example/notes", "/fragile/ping", "/ledger/entries")
        }
        tables = await table_names()
    assert [family["name"] for family in root["families"]] == ["root", "ledger"]
    left_out = {left["name"]: left for left in root["left_out"]}
    for failure, name in NAMES.items():
        assert left_out[name]["status"] == "skipped"
        assert CAUSES[failure] in left_out[name]["reason"]
    assert statuses == {"/example/notes": 404, "/fragile/ping": 404, "/ledger/entries": 200}
    assert set(spec["paths"]) == {"/", "/healthz", "/readyz", "/ledger/entries"}
    assert {tag["name"] for tag in spec["tags"]} == {"core", "root", "ledger"}
    assert "example_note" not in tables and "ledger_entry" in tables


@pytest.mark.parametrize("failure", ["import", "blueprints"])
async def test_family_requiring_a_skipped_family_is_skipped_too(app_client, failure):
    dependent = {"module": "tests.plugins.noticeboard", "on_failure": "skip"}
    dependent["requires"] = [NAMES[failure]]
    async with app_client(skipping(noticeboard=dependent)) as client:
        assert (await client.get("/notices")).status_code == 404
        root = await (await client.get("/")).get_json()
        spec = await (await client.get("/openapi.json")).get_json()
    left_out = {left["name"]: left for left in root["left_out"]}
    assert left_out["noticeboard"]["status"] == "skipped"
    assert f"requires '{NAMES[failure]}'" in left_out["noticeboard"]["reason"]
    assert "/notices" not in spec["paths"]


def test_imperfect_plugins_reports_skipped_families(imperfect):
    result = imperfect("plugins", plugins=skipping())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ledger 1.0.0 [enabled] module tests.plugins.ledger" in lines
    for failure, name in NAMES.items():
        header = next(i for i, line in enumerate(lines) if line.startswith(f"{name} - [skipped]"))
        assert lines[header + 1].startswith("    why: ")
        assert CAUSES[failure] in lines[header + 1]


@pytest.mark.parametrize("failure", list(FAILURES))
def test_abort_stops_start_up_naming_plugin_and_cause(core_settings, failure):
    plugins = {"root": ROOT, NAMES[failure]: {**FAILURES[failure], "on_failure": "abort"}}
    with pytest.raises(PluginLoadError) as raised:
        create_app(core_settings(plugins))
    assert raised.value.plugin == NAMES[failure]
    assert str(raised.value).startswith(f"plugin '{NAMES[failure]}': ")
    assert CAUSES[failure] in str(raised.value)


def test_misspelt_hook_fails_loading(core_settings):
    with pytest.raises(ConfigError) as raised:
        create_app(core_settings({"root": ROOT, "misspelt": {"module": "tests.plugins.misspelt"}}))
    message = str(raised.value)
    assert "plugin 'misspelt' implements a hook no enabled plugin defines" in message
    assert "'blueprint'" in message


async def test_startup_failure_under_skip_answers_503_and_readyz_reports_it(app_client):
    fragile = {"module": "tests.plugins.fragile", "settings": {"fail_in": "startup"}}
    async with app_client({"ledger": LEDGER, "fragile": {**fragile, "on_failure": "skip"}}) as c:
        ping = await c.get("/fragile/ping")
        assert ping.status_code == 503
        assert await ping.get_json() == {
            "detail": "The 'fragile' family is unavailable.",
            "code": "plugin_unavailable",
        }
        assert (await c.get("/ledger/entries")).status_code == 200
        ready = await c.get("/readyz")
        assert ready.status_code == 200  # a family failing degrades; it never fails readiness
        report = await ready.get_json()
    assert report["ready"] is True and report["status"] == "degraded"
    assert report["database"]["ok"] is True
    assert report["plugins"]["fragile"]["ok"] is False
    assert "startup exploded" in report["plugins"]["fragile"]["checks"]["startup"]["error"]


async def test_readyz_shows_what_a_passing_check_says(app_client):
    async with app_client({"fragile": {"module": "tests.plugins.fragile"}}) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 200
        report = await ready.get_json()
    assert report["plugins"]["fragile"] == {
        "ok": True,
        "checks": {"failure_mode": {"ok": True, "error": None, "detail": "fails in nothing"}},
    }


async def test_startup_failure_under_abort_stops_the_app(app_client):
    fragile = {"module": "tests.plugins.fragile", "settings": {"fail_in": "startup"}}
    # Start-up fails inside the ASGI lifespan; the test harness reports it as LifespanError
    # (hypercorn reports it and exits).
    with pytest.raises(LifespanError) as raised:
        async with app_client({"ledger": LEDGER, "fragile": fragile}):
            pytest.fail("the app served although a family's start-up failed")
    assert str(raised.value).endswith(
        "plugin 'fragile': start-up failed: RuntimeError('startup exploded')"
    )
