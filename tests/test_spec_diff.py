"""``core.specdiff`` (two documents in, changes out) and ``imperfect openapi --diff``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from core.specdiff import Change, diff_specs, has_breaking, render
from core.testing import write_plugins_file
from tests.support import ROOT

CHECKED_IN = ROOT / "docs" / "openapi.json"
ERROR = {"description": "Not Found", "content": {"application/json": {"schema": {}}}}


def document(**paths: Any) -> dict[str, Any]:
    """A small document: ``GET /users`` (a query parameter, a list of ``User``) and
    ``POST /users`` (a ``UserIn`` body) unless ``paths`` replaces them."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": paths
        or {
            "/users": {
                "get": {
                    "operationId": "list_users",
                    "security": [{"FirebaseBearer": []}],
                    "parameters": [
                        {
                            "name": "sport",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["running", "cycling"]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/User"},
                                    }
                                }
                            },
                        },
                        "404": ERROR,
                    },
                },
                "post": {
                    "operationId": "create_user",
                    "security": [{"FirebaseBearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/UserIn"}}
                        },
                    },
                    "responses": {"201": {"description": "created"}},
                },
            },
            "/users/{user_id}": {
                "get": {
                    "operationId": "read_user",
                    "security": [{"FirebaseBearer": []}],
                    "parameters": [
                        {"name": "user_id", "in": "path", "required": True, "schema": {}}
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
        "components": {
            "schemas": {
                "User": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "units": {"$ref": "#/components/schemas/Units"},
                        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                    "required": ["id", "units", "nickname"],
                },
                "UserIn": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "units": {"$ref": "#/components/schemas/Units"},
                        "nickname": {"type": "string", "maxLength": 50},
                    },
                },
                "Units": {"type": "string", "enum": ["metric", "imperial"]},
            }
        },
    }


def changed(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c.action, c.where, c.detail, c.severity) for c in diff_specs(old, new)]


def test_identical_documents_have_no_changes():
    assert diff_specs(document(), document()) == []
    checked_in = json.loads(CHECKED_IN.read_text())
    assert diff_specs(checked_in, copy.deepcopy(checked_in)) == []


def test_a_removed_operation_is_breaking_and_an_added_one_is_not():
    old, new = document(), document()
    del new["paths"]["/users"]["post"]
    assert changed(old, new) == [("removed", "POST /users", "", "breaking")]
    assert changed(new, old) == [("added", "POST /users", "", "info")]


def test_an_added_optional_parameter_is_not_breaking():
    old, new = document(), document()
    new["paths"]["/users"]["get"]["parameters"].append(
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}}
    )
    changes = diff_specs(old, new)
    assert [(c.action, c.where, c.detail, c.severity) for c in changes] == [
        ("added", "GET /users query limit", "optional", "info")
    ]
    assert not has_breaking(changes)


def test_an_added_required_parameter_is_breaking():
    old, new = document(), document()
    new["paths"]["/users"]["get"]["parameters"].append(
        {"name": "team", "in": "query", "required": True, "schema": {"type": "string"}}
    )
    assert changed(old, new) == [("added", "GET /users query team", "required", "breaking")]
    made_required = document()
    made_required["paths"]["/users"]["get"]["parameters"][0]["required"] = True
    assert changed(old, made_required) == [
        ("changed", "GET /users query sport", "now required", "breaking")
    ]


def test_a_narrowed_enum_is_breaking_where_clients_send_it():
    old, new = document(), document()
    new["paths"]["/users"]["get"]["parameters"][0]["schema"]["enum"] = ["running"]
    assert changed(old, new) == [
        (
            "changed",
            "GET /users query sport",
            'enum narrowed: "cycling" no longer accepted',
            "breaking",
        )
    ]
    # Units is sent (UserIn) and returned (User): narrowed is breaking for what is sent
    narrowed = document()
    narrowed["components"]["schemas"]["Units"]["enum"] = ["metric"]
    narrowing = ("changed", "component Units", 'enum narrowed: "imperial" no longer accepted')
    assert (*narrowing, "breaking") in changed(old, narrowed)


def test_a_widened_response_enum_is_a_warning_not_a_break():
    old, new = document(), document()
    del old["paths"]["/users"]["post"]  # Units is now only returned
    del new["paths"]["/users"]["post"]
    new["components"]["schemas"]["Units"]["enum"].append("nautical")
    [change] = diff_specs(old, new)
    assert (change.where, change.severity) == ("component Units", "warning")
    assert "may be returned" in change.detail


def test_removed_response_fields_and_properties_are_breaking():
    old, new = document(), document()
    del new["components"]["schemas"]["User"]["properties"]["nickname"]
    new["components"]["schemas"]["User"]["required"] = ["id"]
    assert changed(old, new) == [
        ("removed", "component User.nickname", "response field removed", "breaking"),
        ("changed", "component User.units", "no longer always present", "breaking"),
    ]


def test_a_response_field_that_may_now_be_null_is_breaking():
    old, new = document(), document()
    units = {"anyOf": [{"$ref": "#/components/schemas/Units"}, {"type": "null"}]}
    new["components"]["schemas"]["User"]["properties"]["units"] = units
    assert changed(old, new) == [("changed", "component User.units", "may now be null", "breaking")]


def test_request_fields_new_required_or_removed_from_a_closed_model_are_breaking():
    old, new = document(), document()
    user_in = new["components"]["schemas"]["UserIn"]
    user_in["properties"]["team"] = {"type": "string"}
    user_in["required"] = ["team"]
    del user_in["properties"]["nickname"]
    assert changed(old, new) == [
        (
            "removed",
            "component UserIn.nickname",
            "request field removed: sending it is refused",
            "breaking",
        ),
        ("added", "component UserIn.team", "new required field", "breaking"),
    ]


def test_tighter_request_bounds_are_breaking_and_looser_ones_are_not():
    old, new = document(), document()
    new["components"]["schemas"]["UserIn"]["properties"]["nickname"]["maxLength"] = 20
    assert changed(old, new) == [
        ("changed", "component UserIn.nickname", "maxLength 50 -> 20", "breaking")
    ]
    assert changed(new, old) == [
        ("changed", "component UserIn.nickname", "maxLength 20 -> 50", "info")
    ]


def test_an_enum_becoming_a_pattern_its_values_fit_is_not_breaking():
    """Like the time zone: an enum of names becomes a string with a pattern and a length."""
    old, new = document(), document()
    new["components"]["schemas"]["Units"] = {
        "type": "string",
        "pattern": "^[a-z]+$",
        "maxLength": 8,
    }
    changes = diff_specs(old, new)
    assert not has_breaking(changes), changes
    assert {c.detail for c in changes} >= {"no longer an enum", "pattern None -> ^[a-z]+$"}


def test_an_inline_enum_moved_into_a_component_is_no_change():
    old, new = document(), document()
    new["components"]["schemas"]["Sport"] = {"type": "string", "enum": ["running", "cycling"]}
    sport = new["paths"]["/users"]["get"]["parameters"][0]
    sport["schema"] = {"$ref": "#/components/schemas/Sport"}
    assert changed(old, new) == [("added", "component Sport", "", "info")]


def test_a_renamed_path_parameter_is_the_same_operation():
    old, new = document(), document()
    item = new["paths"].pop("/users/{user_id}")
    item["get"]["parameters"][0]["name"] = "id"
    new["paths"]["/users/{id}"] = item
    assert changed(old, new) == []


def test_requiring_a_token_on_a_public_operation_is_breaking():
    old, new = document(), document()
    old["paths"]["/users/{user_id}"]["get"]["security"] = []
    assert changed(old, new) == [
        ("changed", "GET /users/{user_id}", "security none -> FirebaseBearer", "breaking")
    ]
    assert changed(new, old)[0][3] == "info"


def test_a_removed_success_status_is_breaking_and_error_statuses_are_informative():
    old, new = document(), document()
    responses = new["paths"]["/users"]["get"]["responses"]
    responses["201"] = responses.pop("200")
    del responses["404"]
    responses["503"] = ERROR
    assert changed(old, new) == [
        ("removed", "GET /users 200", "a success status clients expect", "breaking"),
        ("removed", "GET /users 404", "", "info"),
        ("added", "GET /users 201", "", "info"),
        ("added", "GET /users 503", "", "info"),
    ]


def test_render_groups_by_section_and_marks_breaking_changes():
    changes = [
        Change("operation", "removed", "POST /users", severity="breaking"),
        Change("parameter", "added", "GET /users query limit", "optional"),
    ]
    assert render(changes, "base.json", "current") == (
        "--- base.json\n"
        "+++ current\n"
        "Operations:\n"
        "  - POST /users  [breaking]\n"
        "Parameters:\n"
        "  + GET /users query limit: optional\n"
        "2 change(s): 1 breaking, 0 warning(s) for clients of the old document\n"
    )
    assert render([], "a", "b").endswith("no differences\n")


# --- imperfect openapi --diff ----------------------------------------------------------------


def test_diff_against_the_checked_in_file_is_empty(imperfect):
    result = imperfect("openapi", "--diff", "--fail-on", "breaking")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "--- docs/openapi.json",
        "+++ current configuration (plugins.toml)",
        "no differences",
    ]


def test_disabling_a_whole_family_removes_its_operations_and_breaks_its_clients(imperfect):
    spec = json.loads(CHECKED_IN.read_text())
    terra = sorted(
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if "terra" in operation["tags"]
    )
    assert terra, "the checked-in configuration serves terra"
    result = imperfect("openapi", "--diff", "--disable", "terra")
    assert result.returncode == 0, result.stderr
    assert "+++ current configuration (plugins.toml) with terra disabled" in result.stdout
    for operation in terra:
        assert f"  - {operation}  [breaking]" in result.stdout
    # terra also contributes providers to health_providers: their paths stop matching them
    narrowed = "  ~ component HealthProvider: enum narrowed: "
    assert narrowed in result.stdout and '"wahoo"' in result.stdout
    failing = imperfect("openapi", "--diff", "--disable", "terra", "--fail-on", "breaking")
    assert failing.returncode == 1
    assert failing.stdout == result.stdout
    assert failing.stderr.startswith(f"error: {len(terra) + 1} breaking change(s)")
    assert "Traceback" not in failing.stderr


def test_fail_on_breaking_exits_non_zero_exactly_when_something_breaks(imperfect, tmp_path):
    spec = json.loads(CHECKED_IN.read_text())
    # The file has an operation the code no longer serves: removing it breaks its clients.
    extra = copy.deepcopy(spec)
    extra["paths"]["/users/me"]["put"] = copy.deepcopy(spec["paths"]["/users/me"]["patch"])
    extra["paths"]["/users/me"]["put"]["operationId"] = "replace_me"
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    result = imperfect(
        "openapi", "--diff", "--against", str(tmp_path / "extra.json"), "--fail-on", "breaking"
    )
    assert result.returncode == 1
    assert "  - PUT /users/me  [breaking]" in result.stdout
    assert "error: 1 breaking change(s)" in result.stderr
    # The file lacks an operation the code serves: an addition breaks nobody.
    fewer = copy.deepcopy(spec)
    del fewer["paths"]["/users/me"]["patch"]
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    result = imperfect(
        "openapi", "--diff", "--against", str(tmp_path / "fewer.json"), "--fail-on", "breaking"
    )
    assert result.returncode == 0, result.stderr
    assert "  + PATCH /users/me" in result.stdout
    assert "0 breaking" in result.stdout


def test_diff_against_another_plugins_file(imperfect, tmp_path):
    smaller = write_plugins_file(tmp_path / "smaller.toml", {"root": {"module": "plugins.root"}})
    result = imperfect(
        "openapi", "--diff", "--against-plugins", str(smaller), "--fail-on", "breaking"
    )
    assert result.returncode == 0, result.stderr
    assert f"--- configuration of {smaller}" in result.stdout
    assert "  + PATCH /users/me" in result.stdout  # served here, not by the smaller one
    assert "[breaking]" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--against", "x.json"], "need --diff"),
        (["--fail-on", "breaking"], "need --diff"),
        (["--diff", "--check"], "cannot be combined"),
        (["--diff", "--disable", "terra", "--against", "docs/openapi.json"], "at most one"),
    ],
)
def test_diff_options_are_checked(imperfect, args, message):
    result = imperfect("openapi", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_diff_against_a_file_that_is_not_a_document(imperfect, tmp_path: Path):
    (tmp_path / "bad.json").write_text("{not json")
    result = imperfect("openapi", "--diff", "--against", str(tmp_path / "bad.json"))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'bad.json'} is not JSON")
