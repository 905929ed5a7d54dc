"""The merged OpenAPI document, the docs page, and the shape of every error response."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from werkzeug.routing import BaseConverter

from core import create_app
from core.endpoints import declared_endpoint
from core.openapi import converter_components, openapi_path, path_parameters
from tests.support import ROOT, bearer, new_account

CHECKED_IN_SPEC = ROOT / "docs" / "openapi.json"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")

PLUGINS: dict[str, Any] = {
    "root": {"module": "plugins.root"},
    "ledger": {"module": "tests.plugins.ledger"},
    "echo": {"module": "tests.plugins.echo"},
    "noticeboard": {"module": "tests.plugins.noticeboard"},
    "example": {"entry_point": "example", "settings": {"api_key": "k"}},
}


def assert_error(body: dict[str, Any], code: str) -> None:
    """A non-validation error: exactly a human sentence and a machine code."""
    assert set(body) == {"detail", "code"}
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]


def assert_validation_error(body: dict[str, Any], location: str) -> list[tuple[Any, ...]]:
    """A 422 in FastAPI's shape; returns the ``loc`` of each item."""
    assert set(body) == {"detail"}
    assert body["detail"], "a 422 lists at least one problem"
    for item in body["detail"]:
        assert {"type", "loc", "msg", "input"} <= set(item)
        assert item["loc"][0] == location
        assert isinstance(item["msg"], str) and isinstance(item["type"], str)
    return [tuple(item["loc"]) for item in body["detail"]]


# --- the document --------------------------------------------------------------------------


async def test_served_spec_validates_and_has_an_etag(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.content_type == "application/json"
        document = await response.get_json()
        etag = response.headers["ETag"]

        cached = await client.get("/openapi.json", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert await cached.get_data() == b""
        assert cached.headers["ETag"] == etag

        other = await client.get("/openapi.json", headers={"If-None-Match": '"stale"'})
        assert other.status_code == 200
        assert await other.get_json() == document
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert {"/", "/echo", "/echo/search", "/notices", "/ledger/entries", "/example/notes"} <= set(
        document["paths"]
    )
    echo = document["paths"]["/echo"]["post"]
    assert echo["operationId"] == "echo_echo_post"
    assert echo["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }


def test_a_converter_can_describe_its_path_parameter():
    class Colour(BaseConverter):
        regex = "(?:red|green)"
        openapi_schema = {"type": "string", "enum": ["red", "green"]}

    parameters = path_parameters("/paint/<colour:shade>/<int:coats>", {"colour": Colour})
    assert [p["schema"] for p in parameters] == [
        {"type": "string", "enum": ["red", "green"], "title": "Shade"},
        {"type": "integer", "title": "Coats"},
    ]


def test_checked_in_spec_validates():
    validate(json.loads(CHECKED_IN_SPEC.read_text()))


def test_openapi_check_passes_on_the_checked_in_file(imperfect):
    result = imperfect("openapi", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{Path('docs/openapi.json')} is up to date\n"


def test_openapi_check_fails_on_a_stale_file(imperfect, tmp_path):
    stale = tmp_path / "openapi.json"
    document = json.loads(CHECKED_IN_SPEC.read_text())
    document["info"]["title"] = "something else"
    stale.write_text(json.dumps(document, indent=2) + "\n")
    result = imperfect("openapi", "--check", "-o", str(stale))
    assert result.returncode == 1
    assert f"error: {stale} is stale" in result.stderr
    assert '"title": "something else"' in result.stderr  # the diff shows what differs
    assert "Traceback" not in result.stderr


def test_a_converter_can_name_its_component():
    class Colour(BaseConverter):
        regex = "(?:red|green)"
        openapi_schema = {"type": "string", "enum": ["red", "green"]}
        openapi_component = "Colour"

    rule = "/paint/<colour:shade>/<colour:trim>"
    assert [p["schema"] for p in path_parameters(rule, {"colour": Colour})] == [
        {"$ref": "#/components/schemas/Colour"},
        {"$ref": "#/components/schemas/Colour"},
    ]
    assert converter_components(rule, {"colour": Colour}) == {
        "Colour": {"title": "Colour", "type": "string", "enum": ["red", "green"]}
    }


# --- the contract as client developers meet it (docs/clients.md) ----------------------------


def checked_in() -> dict[str, Any]:
    return json.loads(CHECKED_IN_SPEC.read_text())


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def request_components(spec: dict[str, Any]) -> set[str]:
    """Component schemas reachable from request bodies and parameters."""
    found: set[str] = set()
    pending = [
        json.dumps([op.get("requestBody"), op.get("parameters")]) for _, _, op in operations(spec)
    ]
    while pending:
        for name in re.findall(r'"#/components/schemas/([^"]+)"', pending.pop()):
            if name not in found:
                found.add(name)
                pending.append(json.dumps(spec["components"]["schemas"][name]))
    return found


def test_every_signed_in_operation_documents_401_and_503():
    spec = checked_in()
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    signed_in = [
        (method, path, op) for method, path, op in operations(spec) if op.get("security") != []
    ]
    assert len(signed_in) > 20
    for method, path, op in signed_in:
        assert {"FirebaseBearer": []}.items() <= op["security"][0].items(), (method, path)
        for status in ("401", "503"):
            content = op["responses"][status]["content"]["application/json"]
            assert content["schema"] == error, (method, path, status)


def test_public_operations_say_so_and_the_document_names_servers_and_license():
    spec = checked_in()
    public = {(m, p) for m, p, op in operations(spec) if op["security"] == []}
    assert {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/")} <= public
    assert all("security" in op for _, _, op in operations(spec))
    assert spec["servers"] == [{"url": "/", "description": spec["servers"][0]["description"]}]
    assert spec["info"]["license"]["name"]


def test_every_operation_documents_a_success_and_its_client_errors():
    """What redocly.yaml's two disabled rules would check, with their exceptions explicit."""
    for method, path, op in operations(checked_in()):
        statuses = set(op["responses"])
        successes = {s for s in statuses if s.startswith("2")}
        redirects = {s for s in statuses if s.startswith("3")}
        assert successes or redirects, (method, path)
        for status in redirects:
            location = op["responses"][status]["headers"]["Location"]
            assert location["required"] is True and location["schema"]["type"] == "string"
        takes_input = op.get("parameters") or op.get("requestBody") or op["security"] != []
        if takes_input:
            assert any(s.startswith("4") for s in statuses), (method, path)


def test_the_oauth_callback_documents_its_redirect():
    op = checked_in()["paths"]["/health-providers/{provider}/callback"]["get"]
    assert set(op["responses"]["302"]["headers"]) == {"Location"}


def test_rate_limited_operations_document_429_and_the_rate_limit_headers():
    spec = checked_in()
    limited = [(m, p, op) for m, p, op in operations(spec) if "429" in op["responses"]]
    assert limited
    for method, path, op in limited:
        headers = op["responses"]["429"].get("headers", {})
        if "RateLimit-Limit" not in headers:
            continue  # a 429 the handler itself raises, not a declared rate limit
        assert "Retry-After" in headers, (method, path)
        success = next(s for s in op["responses"] if s[0] in "23")
        assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
            op["responses"][success]["headers"]
        ), (method, path)
        for name in headers:
            assert name in spec["components"]["headers"]


NAMED_ENUMS = ("Sport", "Level", "Units", "DevicePlatform", "HealthProvider")


def test_enums_are_named_components_and_time_zones_are_strings():
    spec = checked_in()
    schemas = spec["components"]["schemas"]
    for name in NAMED_ENUMS:
        assert schemas[name]["type"] == "string" and schemas[name]["enum"], name
    provider = {"$ref": "#/components/schemas/HealthProvider"}
    parameters = [
        parameter
        for _, _, op in operations(spec)
        for parameter in op.get("parameters", [])
        if parameter["name"] == "provider"
    ]
    assert len(parameters) >= 5 and all(p["schema"] == provider for p in parameters)
    # no enum of one of those is repeated inline anywhere, but in two contracts versioned on
    # their own: the intake's answers (each questionnaire version declares its choices as
    # data, which may part from the profile's Level later, and a user mid-way keeps theirs)
    # and the public share manifest (a fixed contract of its own, docs/families/public_routes.md)
    own_contracts = {"IntakeAnswerIn", "ShareManifest"}
    inline = json.dumps(spec["paths"]) + json.dumps(
        {k: v for k, v in schemas.items() if k not in {*NAMED_ENUMS, *own_contracts}}
    )
    for name in NAMED_ENUMS:
        assert json.dumps(schemas[name]["enum"]) not in inline, name
    timezone = schemas["UserPatch"]["properties"]["timezone"]
    assert timezone["type"] == "string" and "enum" not in timezone
    assert timezone["maxLength"] == 64 and timezone["pattern"] and timezone["examples"]
    assert "IANA" in timezone["description"]


def test_request_schemas_have_no_null_defaults():
    spec = checked_in()
    for name in request_components(spec):
        assert '"default": null' not in json.dumps(spec["components"]["schemas"][name]), name


# Request models still to be given examples by their family (a new one may not join this set).
REQUEST_MODELS_WITHOUT_EXAMPLES: set[str] = set()


@pytest.fixture
def default_app(core_settings):
    """The app of the checked-in plugins.toml (what docs/openapi.json documents)."""
    plugins = tomllib.loads((ROOT / "plugins.toml").read_text())["plugins"]
    return create_app(core_settings(plugins))


def test_every_request_body_example_validates_against_the_server_model(default_app):
    spec = default_app.extensions["imperfect"].spec.document
    bodies = {}
    for rule in default_app.url_map.iter_rules():
        declared = declared_endpoint(default_app.view_functions[rule.endpoint])
        if declared is not None and declared.body is not None:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                bodies[method, openapi_path(rule.rule)] = declared.body
    assert len(bodies) >= 5
    without = set()
    for (method, path), model in bodies.items():
        body = spec["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]
        examples = resolve(spec, body["schema"]).get("examples")
        if not examples:
            without.add(model.__name__)
        for example in examples or []:
            model.model_validate_json(json.dumps(example))  # as the server parses a body
    assert without <= REQUEST_MODELS_WITHOUT_EXAMPLES, f"add examples to {without}"


async def test_the_prefilled_patch_users_me_example_changes_only_what_it_says(
    app_client, auth_emulator
):
    """What Swagger UI's "Try it out" sends for PATCH /users/me: its first example."""
    async with app_client({"users": {"module": "plugins.users"}}) as client:
        spec = await (await client.get("/openapi.json")).get_json()
        body = spec["paths"]["/users/me"]["patch"]["requestBody"]["content"]["application/json"]
        example = resolve(spec, body["schema"])["examples"][0]
        headers = bearer(new_account(auth_emulator))
        assert (await client.post("/users", headers=headers)).status_code == 201
        await client.patch("/users/me", headers=headers, json={"display_name": "Before"})
        before = await (await client.get("/users/me", headers=headers)).get_json()
        response = await client.patch("/users/me", headers=headers, json=example)
        assert response.status_code == 200, await response.get_data()
        after = await response.get_json()
    assert after == {**before, **example, "updated_at": after["updated_at"]}
    assert {key for key in after if after[key] != before[key]} <= {*example, "updated_at"}


# --- /docs ---------------------------------------------------------------------------------


async def test_docs_page_uses_only_local_assets(app_client):
    async with app_client(PLUGINS) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.content_type.startswith("text/html")
        html = (await page.get_data()).decode()
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
        assert "/docs/assets/swagger-ui-bundle.js" in urls
        assert not [url for url in urls if not url.startswith("/")]
        assert "http://" not in html and "https://" not in html
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(await asset.get_data()) > 1000, url
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert "javascript" in bundle.content_type
        assert b"SwaggerUIBundle" in await bundle.get_data()

        outside = await client.get("/docs/assets/..%2F..%2Fapp.py")
        assert outside.status_code == 404
        assert_error(await outside.get_json(), "not_found")


# --- errors --------------------------------------------------------------------------------


async def test_unknown_route_is_json_404_with_request_id(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.get("/no/such/route")
        assert response.status_code == 404
        assert response.content_type == "application/json"
        assert_error(await response.get_json(), "not_found")
        assert GENERATED_ID.match(response.headers["X-Request-ID"])


async def test_request_id_is_echoed_when_valid_and_replaced_when_not(app_client):
    async with app_client(PLUGINS) as client:
        mine = await client.get("/healthz", headers={"X-Request-ID": "req-42.abc:7"})
        assert mine.headers["X-Request-ID"] == "req-42.abc:7"
        error = await client.get("/nowhere", headers={"X-Request-ID": "req-43"})
        assert error.headers["X-Request-ID"] == "req-43"
        for bad in ("has spaces", "x" * 129, "<script>"):
            replaced = await client.get("/healthz", headers={"X-Request-ID": bad})
            assert GENERATED_ID.match(replaced.headers["X-Request-ID"]), bad
        first = (await client.get("/healthz")).headers["X-Request-ID"]
        second = (await client.get("/healthz")).headers["X-Request-ID"]
        assert first != second


async def test_wrong_method_is_405_with_allow(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.get("/echo")
        assert response.status_code == 405
        assert_error(await response.get_json(), "method_not_allowed")
        assert "POST" in [m.strip() for m in response.headers["Allow"].split(",")]
        assert "GET" not in [m.strip() for m in response.headers["Allow"].split(",")]
        assert "X-Request-ID" in response.headers


async def test_valid_body_is_accepted(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.post("/echo", json={"text": "hi", "count": 2})
        assert response.status_code == 200
        assert await response.get_json() == {"text": "hi", "count": 2}


@pytest.mark.parametrize("raw", [b'{"text": "hi",', b"\xff\x0f\xfe{", b'{"text": "\xc3"}'])
async def test_malformed_json_body_is_422(app_client, raw):
    async with app_client(PLUGINS) as client:
        response = await client.post(
            "/echo", data=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        body = await response.get_json()
        assert_validation_error(body, "body")
        assert body["detail"][0]["type"] in ("json_invalid", "string_unicode")
        assert "X-Request-ID" in response.headers


async def test_body_that_is_not_utf8_is_422_not_500(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.post(
            "/echo", data=b"\x9fT\xee", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        body = await response.get_json()
        assert_validation_error(body, "body")
        assert body["detail"][0]["input"] == "\ufffdT\ufffd"


async def test_invalid_body_fields_are_422_in_fastapi_shape(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.post("/echo", json={"text": "", "count": "many", "extra": 1})
        assert response.status_code == 422
        body = await response.get_json()
    locs = assert_validation_error(body, "body")
    assert sorted(locs) == [("body", "count"), ("body", "extra"), ("body", "text")]
    by_field = {item["loc"][1]: item for item in body["detail"]}
    assert by_field["count"]["type"] == "int_parsing"
    assert by_field["count"]["input"] == "many"
    assert by_field["extra"]["type"] == "extra_forbidden"
    assert by_field["text"]["type"] == "string_too_short"


async def test_missing_body_is_422(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.post("/echo", headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        body = await response.get_json()
    assert_validation_error(body, "body")
    assert body == {
        "detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    }


async def test_null_field_keeps_input_in_the_422(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.post("/echo", json={"text": None})
        assert response.status_code == 422
        body = await response.get_json()
    assert_validation_error(body, "body")
    assert body["detail"] == [
        {
            "type": "string_type",
            "loc": ["body", "text"],
            "msg": "Input should be a valid string",
            "input": None,
        }
    ]


async def test_wrong_content_type_is_415(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.post(
            "/echo", data=b"text=hi", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 415
        assert_error(await response.get_json(), "unsupported_media_type")
        assert "X-Request-ID" in response.headers


async def test_oversized_body_is_413(app_client):
    async with app_client(PLUGINS, max_body_bytes=2048) as client:
        small = await client.post("/echo", json={"text": "x" * 1000})
        assert small.status_code == 200
        response = await client.post("/echo", json={"text": "x" * 4096})
        assert response.status_code == 413
        assert_error(await response.get_json(), "payload_too_large")
        assert "X-Request-ID" in response.headers


async def test_handler_crash_is_generic_500(app_client):
    async with app_client(PLUGINS) as client:
        response = await client.get("/echo/crash")
        assert response.status_code == 500
        assert response.content_type == "application/json"
        text = (await response.get_data()).decode()
        assert "X-Request-ID" in response.headers
    assert "secret internals" not in text
    assert "Traceback" not in text and "RuntimeError" not in text
    assert json.loads(text) == {
        "detail": "The server failed to handle this request.",
        "code": "internal_error",
    }


@pytest.mark.parametrize(
    ("query", "locs"),
    [
        ("", [("query", "q")]),
        ("?q=runs&limit=0", [("query", "limit")]),
        ("?q=&limit=many", [("query", "limit"), ("query", "q")]),
    ],
)
async def test_invalid_query_is_422_located_in_query(app_client, query, locs):
    async with app_client(PLUGINS) as client:
        response = await client.get(f"/echo/search{query}")
        assert response.status_code == 422
        assert sorted(assert_validation_error(await response.get_json(), "query")) == locs
        ok = await client.get("/echo/search?q=runs&limit=5")
        assert await ok.get_json() == {"q": "runs", "limit": 5}


# --- dependency failures: 503 with Retry-After, never a 500; readiness ------------------------


def _dependency_errors() -> list[tuple[BaseException, str | None]]:
    import errno
    import sqlite3

    import asyncpg
    from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

    return [
        (asyncpg.TooManyConnectionsError("too many clients"), "too many connections"),
        (asyncpg.ConnectionDoesNotExistError("closed mid-operation"), "connection lost"),
        (
            asyncpg.CannotConnectNowError("the database system is starting up"),
            "starting up or shutting down",
        ),
        (asyncpg.InterfaceError("connection is closed"), "connection lost"),
        (DBConnectionError("Can't establish connection"), "unreachable"),
        (OperationalError(sqlite3.OperationalError("disk I/O error")), "disk I/O error"),
        (OperationalError(sqlite3.OperationalError("database or disk is full")), "disk full"),
        (
            OperationalError(sqlite3.OperationalError("attempt to write a readonly database")),
            "read-only",
        ),
        (
            OperationalError(sqlite3.OperationalError("database is locked")),
            "busy (locked by another writer)",
        ),
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        # bugs stay 500
        (OperationalError(sqlite3.OperationalError("no such column: nope")), None),
        (IntegrityError("UNIQUE constraint failed"), None),
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            None,
        ),
        (ValueError("bad"), None),
        (KeyError("x"), None),
        (OSError(errno.ENOENT, "No such file"), None),
    ]


@pytest.mark.parametrize(("error", "reason"), _dependency_errors(), ids=repr)
def test_dependency_failures_are_classified_and_bugs_are_not(error, reason):
    from core.errors import classify_dependency_failure

    failure = classify_dependency_failure(error)
    assert (failure.reason if failure else None) == reason


def test_public_failure_phrases_carry_no_host_port_or_path():
    from core.errors import ApiError, public_failure

    assert (
        public_failure(ApiError(502, "upstream_unavailable", "alice could not be reached."))
        == "unreachable"
    )
    assert (
        public_failure(ApiError(504, "upstream_timeout", "alice did not answer within 2s."))
        == "timed out"
    )
    assert (
        public_failure(ApiError(502, "upstream_unavailable", "hare failed to answer (HTTP 503)."))
        == "refused: HTTP 503"
    )
    assert public_failure(ConnectionRefusedError(111, "refused 10.0.0.7:5432")) == "unreachable"
    assert public_failure(KeyError("secret-internal-key")) == "failed: KeyError"
    said = public_failure(
        RuntimeError(
            "not subscribed (Error 111 connecting to redis.internal:6379 at 10.1.2.3, "
            "see /var/lib/app/x.log or https://user:pw@host.example/x); retrying"
        )
    )
    for leaked in ("redis.internal", "6379", "10.1.2.3", "/var/lib", "pw@", "host.example"):
        assert leaked not in said, said
    assert said.startswith("not subscribed") and said.endswith("retrying")


@pytest.mark.skipif(
    __import__("os").environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="SQLite's query_only makes the database refuse writes",
)
async def test_a_database_refusing_writes_answers_503_and_readyz_is_not_ready(
    app_client, auth_emulator, caplog
):
    from tortoise.connection import get_connection

    from core.errors import OUTAGES

    async with app_client({"users": {"module": "plugins.users"}}) as client:
        headers = bearer(new_account(auth_emulator))
        assert (await (await client.get("/readyz")).get_json())["status"] == "ready"
        connection = get_connection("default")
        await connection.execute_script("PRAGMA query_only = ON")
        try:
            for _ in range(3):
                refused = await client.post("/users", headers=headers)
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "5"
                body = await refused.get_json()
                assert body["code"] == "database_unavailable" and "read-only" in body["detail"]
            ready = await client.get("/readyz")
            report = await ready.get_json()
            assert ready.status_code == 503 and ready.headers["Retry-After"]
            assert report["status"] == "not_ready" and report["database"]["error"] == "read-only"
        finally:
            await connection.execute_script("PRAGMA query_only = OFF")
        OUTAGES.write_refused = None  # as if the refusal were older than the window
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.post("/users", headers=headers)).status_code == 201
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
    firsts = [
        r for r in caplog.records if r.getMessage().startswith("database unavailable (read-only)")
    ]
    assert len(firsts) == 1  # once per outage, with its cause
    assert "attempt to write a readonly database" in firsts[0].getMessage()


async def test_migrations_pending_after_start_up_make_readyz_not_ready(app_client):
    from tortoise.connection import get_connection

    async with app_client({"users": {"module": "plugins.users"}}) as client:
        await get_connection("default").execute_query(
            "DELETE FROM tortoise_migrations WHERE app = 'users'"
        )
        ready = await client.get("/readyz")
        report = await ready.get_json()
    assert ready.status_code == 503 and report["status"] == "not_ready"
    assert report["database"]["ok"] is True
    assert report["migrations"]["ok"] is False
    assert "users.0001_initial" in report["migrations"]["error"]


async def test_readyz_detail_mode_for_an_admin_token_or_the_local_flag(
    app_client, auth_emulator, monkeypatch
):
    host = auth_emulator.base.removeprefix("http://")
    async with app_client({"users": {"module": "plugins.users"}}) as client:
        public = await (await client.get("/readyz")).get_json()
        assert public["raw_errors"] is False and host not in str(public)
        account = new_account(auth_emulator)
        plain = await client.get("/readyz", headers=bearer(account))
        assert (await plain.get_json())["raw_errors"] is False
        bad = await client.get("/readyz", headers={"Authorization": "Bearer nonsense"})
        assert bad.status_code == 200 and (await bad.get_json())["raw_errors"] is False
        auth_emulator.set_claims(account.uid, {"admin": True})
        admin = auth_emulator.sign_in(account.email, "pass-word-1")
        detailed = await (await client.get("/readyz", headers=bearer(admin))).get_json()
        assert detailed["raw_errors"] is True and host in detailed["auth"]["detail"]
    monkeypatch.setenv("IMPERFECT_READINESS_DETAIL", "1")
    async with app_client({"users": {"module": "plugins.users"}}) as client:
        flagged = await (await client.get("/readyz")).get_json()
    assert flagged["raw_errors"] is True and host in flagged["auth"]["detail"]


def test_every_operation_but_liveness_documents_503_with_retry_after():
    spec = checked_in()
    for method, path, op in operations(spec):
        if path == "/healthz":
            assert "503" not in op["responses"]
            continue
        unavailable = op["responses"]["503"]
        assert "Retry-After" in unavailable["headers"], (method, path)
        schema = unavailable["content"]["application/json"]["schema"]
        if schema == {"$ref": "#/components/schemas/ErrorResponse"}:
            assert "database_unavailable" in unavailable["description"], (method, path)
