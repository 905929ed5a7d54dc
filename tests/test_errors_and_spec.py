"""The merged OpenAPI document, the docs page, and the shape of every error response."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from werkzeug.routing import BaseConverter

from core.openapi import path_parameters
from tests.support import ROOT

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
