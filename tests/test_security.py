"""The core edge against hostile input: the emulator guard, claims, routing, logs, start-up.

Every HTTP answer in this file goes through :func:`assert_json`: JSON, never a 500, never
empty, never an HTML page.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import create_app
from core.config import CoreSettings
from core.errors import ConfigError
from core.testing import settings_for
from tests.support import ROOT, new_account, users_family
from tests.support.ports import free_port
from tests.support.servers import stop_process_group

IMPERFECT = ROOT / ".venv/bin/imperfect"
EXAMPLE = {"example": {"entry_point": "example", "settings": {"api_key": "k"}}}
EMULATOR = "FIREBASE_AUTH_EMULATOR_HOST"
NOT_AN_EMULATOR = "127.0.0.1:9"  # nothing is contacted: the refusal comes first


def assert_json(status: int, content_type: str | None, data: bytes) -> Any:
    """The answer is a JSON body (of core's contract), not a 500, not empty, not HTML."""
    assert status != 500 and status < 600, (status, data)
    assert data, f"empty body with status {status}"
    assert (content_type or "").startswith("application/json"), (content_type, data)
    assert not data.lstrip().startswith(b"<"), data
    return json.loads(data)


async def answer(response: Any) -> Any:
    """:func:`assert_json` for a Quart test response; returns the parsed body."""
    return assert_json(response.status_code, response.content_type, await response.get_data())


def assert_error(body: Any, code: str) -> None:
    assert set(body) == {"detail", "code"} and body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


# --- 1. the Auth Emulator is allowed only in an explicit development or test environment --

PRODUCTION_SPELLINGS = ["production", "Production", "PRODUCTION", "prod", "production ", None]
REFUSED = [*PRODUCTION_SPELLINGS, "staging", "Stage"]


def _set_environment(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("IMPERFECT_ENV", raising=False)
    else:
        monkeypatch.setenv("IMPERFECT_ENV", value)


@pytest.mark.parametrize("environment", REFUSED)
def test_the_emulator_is_refused_outside_development_and_test(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, environment: str | None
) -> None:
    monkeypatch.setenv(EMULATOR, NOT_AN_EMULATOR)
    _set_environment(monkeypatch, environment)
    monkeypatch.setenv("IMPERFECT_PLUGINS_FILE", str(ROOT / "plugins.toml"))
    for build in (CoreSettings.from_env, create_app):
        with pytest.raises(ConfigError) as raised:
            build()
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith(f"{EMULATOR} is set while IMPERFECT_ENV=")
        assert "development" in message and "test" in message
    # settings written in code are held to the same rule
    with pytest.raises(ConfigError, match=EMULATOR):
        settings_for(tmp_path, {"root": {"module": "plugins.root"}}, environment=environment or "")


@pytest.mark.parametrize(
    ("given", "environment"),
    [("development", "development"), ("Dev", "development"), ("test", "test"), (" TEST", "test")],
)
def test_the_emulator_is_accepted_in_development_and_test(
    monkeypatch: pytest.MonkeyPatch, given: str, environment: str
) -> None:
    monkeypatch.setenv(EMULATOR, NOT_AN_EMULATOR)
    monkeypatch.setenv("IMPERFECT_ENV", given)
    assert CoreSettings.from_env().environment == environment


def test_the_environment_is_a_closed_set_and_defaults_to_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(EMULATOR, raising=False)
    monkeypatch.delenv("IMPERFECT_ENV", raising=False)
    assert CoreSettings.from_env().environment == "production"
    monkeypatch.setenv("IMPERFECT_ENV", "Prod")
    assert CoreSettings.from_env().environment == "production"
    monkeypatch.setenv("IMPERFECT_ENV", "qa")
    with pytest.raises(ConfigError) as raised:
        CoreSettings.from_env()
    assert str(raised.value).startswith("invalid environment: IMPERFECT_ENV: ")
    assert "\n" not in str(raised.value)


def test_a_variable_set_after_the_settings_were_built_is_refused_by_create_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(EMULATOR, raising=False)
    settings = settings_for(tmp_path, {"root": {"module": "plugins.root"}}, environment="prod")
    monkeypatch.setenv(EMULATOR, NOT_AN_EMULATOR)
    with pytest.raises(ConfigError, match=EMULATOR):
        create_app(settings)


@pytest.mark.parametrize("environment", PRODUCTION_SPELLINGS)
def test_imperfect_check_refuses_the_emulator_in_production(imperfect, environment) -> None:
    result = imperfect("check", env={EMULATOR: NOT_AN_EMULATOR, "IMPERFECT_ENV": environment})
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"error: {EMULATOR} is set while IMPERFECT_ENV=production")
    assert result.stderr.count("\n") == 1


def test_imperfect_check_accepts_the_emulator_in_tests(imperfect) -> None:
    result = imperfect(
        "check", plugins={"root": {"module": "plugins.root"}}, env={EMULATOR: NOT_AN_EMULATOR}
    )
    assert result.returncode == 0, result.stderr


def _serve_env(workdir: Path, **extra: str) -> dict[str, str]:
    (workdir / "plugins.toml").write_text('[plugins.root]\nmodule = "plugins.root"\n')
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"sqlite://{workdir}/serve.sqlite3",
        **extra,
    }


@pytest.mark.parametrize("environment", ["Production", "prod", None])
def test_imperfect_serve_refuses_the_emulator_in_production(tmp_path: Path, environment) -> None:
    env = _serve_env(tmp_path, **{EMULATOR: NOT_AN_EMULATOR})
    if environment is not None:
        env["IMPERFECT_ENV"] = environment
    result = subprocess.run(
        [str(IMPERFECT), "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: {EMULATOR} is set while IMPERFECT_ENV=production")
    assert result.stderr.count("\n") == 1


def test_a_start_up_a_worker_refuses_exits_1_with_one_line(tmp_path: Path) -> None:
    """Unapplied migrations: each worker refuses; the server exits 1 naming the cause once."""
    result = subprocess.run(
        [str(IMPERFECT), "serve", "--port", str(free_port()), "--workers", "2"],
        cwd=tmp_path,
        env=_serve_env(tmp_path, IMPERFECT_ENV="test"),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [result.stderr.splitlines()[-1]]
    assert errors[0].startswith("error: start-up failed: unapplied migrations: core.0001")
    assert "Traceback" not in result.stderr


# --- 2. claims are input ---------------------------------------------------------------


def _token(uid: str, **changes: Any) -> str:
    """An emulator-style unsigned ID token for ``uid``; a change of None drops the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://securetoken.google.com/demo-imperfect",
        "aud": "demo-imperfect",
        "sub": uid,
        "user_id": uid,
        "auth_time": now - 10,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_CLAIMS = [
    {"auth_time": "yesterday"},
    {"auth_time": True},
    {"auth_time": 1.5},
    {"auth_time": None},
    {"auth_time": [1]},
    {"iat": "now"},
    {"exp": "later"},
    {"exp": False},
    {"sub": "", "user_id": ""},
    {"sub": "u" * 129, "user_id": "u" * 129},
    {"sub": 12345, "user_id": 12345},
    {"email": 5},
    {"email": ["a@example.com"]},
]


@pytest.mark.parametrize("changes", BAD_CLAIMS, ids=lambda c: json.dumps(c)[:40])
async def test_a_claim_of_the_wrong_type_is_401_invalid_token(
    app_client, auth_emulator, changes
) -> None:
    account = new_account(auth_emulator)
    async with app_client(EXAMPLE) as client:
        good = await client.get(
            "/example/notes", headers={"Authorization": f"Bearer {_token(account.uid)}"}
        )
        assert good.status_code == 200
        await answer(good)
        bad = {"Authorization": f"Bearer {_token(account.uid, **changes)}"}
        response = await client.get("/example/notes", headers=bad)
        assert response.status_code == 401
        assert_error(await answer(response), "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("auth_time", ["yesterday", True, "1700000000", None])
async def test_account_deletion_with_a_bad_auth_time_is_401_not_500(
    app_client, auth_emulator, fake_fcm, auth_time
) -> None:
    account = new_account(auth_emulator)
    async with app_client({"users": users_family(fake_fcm.url)}) as client:
        headers = {"Authorization": f"Bearer {account.id_token}"}
        assert (await client.post("/users", headers=headers)).status_code == 201
        forged = {"Authorization": f"Bearer {_token(account.uid, auth_time=auth_time)}"}
        response = await client.delete("/account", headers=forged)
        assert response.status_code == 401
        assert_error(await answer(response), "invalid_token")
        assert auth_emulator.lookup(account.uid) is not None


# --- 3. requests the router cannot bind ------------------------------------------------

FAMILY_SOURCE = """
from pydantic import BaseModel
from quart import Blueprint

from core import PluginInfo, endpoint, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Integer ids and a trailing slash.")
blueprint = Blueprint("{name}", __name__)


class Thing(BaseModel):
    id: int


@blueprint.get("/things/<int:thing_id>")
@endpoint(response=Thing, auth="public")
async def thing(thing_id: int) -> Thing:
    return Thing(id=thing_id)


@blueprint.get("/shelf/")
@endpoint(response=Thing, auth="public")
async def shelf() -> Thing:
    return Thing(id=0)


@hookimpl
def blueprints():
    return [blueprint]
"""


@pytest.fixture
def things(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A family module of this test's own (``/things/<int:thing_id>``, ``/shelf/``)."""
    name = f"things_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FAMILY_SOURCE.replace("{name}", name))
    sys.path.insert(0, str(tmp_path))
    try:
        yield {"things": {"module": name}, "echo": {"module": "tests.plugins.echo"}}
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


BAD_HOSTS = ["a..b", ".", "a" * 64 + ".example", "..:8000"]


@pytest.mark.parametrize("host", BAD_HOSTS)
async def test_a_host_werkzeug_cannot_encode_is_400_bad_host(app_client, things, host) -> None:
    async with app_client(things) as client:
        for method, path in (("GET", "/things/1"), ("POST", "/echo"), ("GET", "/nowhere")):
            response = await client.open(path, method=method, headers={"Host": host})
            assert response.status_code == 400, (method, path)
            assert_error(await answer(response), "bad_host")
            assert response.headers["X-Request-ID"]


async def test_a_good_host_still_routes(app_client, things) -> None:
    async with app_client(things) as client:
        response = await client.get("/things/7", headers={"Host": "api.example:8443"})
        assert response.status_code == 200
        assert await answer(response) == {"id": 7}


@pytest.mark.parametrize("path", ["//things//1", "/things//1", "//echo", "/things/1//"])
async def test_slashes_are_not_merged_into_a_redirect(app_client, things, path) -> None:
    async with app_client(things) as client:
        response = await client.get(path, headers={"Host": "evil.example"})
        assert response.status_code in (404, 405)
        assert_error(
            await answer(response),
            "not_found" if response.status_code == 404 else "method_not_allowed",
        )
        assert "Location" not in response.headers


async def test_a_strict_slash_redirect_is_json_with_a_relative_location(app_client, things) -> None:
    async with app_client(things) as client:
        response = await client.get("/shelf?x=1", headers={"Host": "evil.example"})
        assert response.status_code == 308
        assert_error(await answer(response), "redirect")
        assert response.headers["Location"] == "/shelf/?x=1"
        followed = await client.get(response.headers["Location"])
        assert followed.status_code == 200
        await answer(followed)


@pytest.mark.parametrize(
    "segment",
    ["\uff11", "\u0661", "\u00b9", "1\u0e51", "1" * 33, "9" * 5000, "-1", "+1", "0x1", " 1", "1.0"],
)
async def test_an_int_segment_is_at_most_32_ascii_digits(app_client, things, segment) -> None:
    async with app_client(things) as client:
        response = await client.get(f"/things/{segment}")
        assert response.status_code == 404, segment
        assert_error(await answer(response), "not_found")


async def test_an_int_segment_of_ascii_digits_matches_and_is_documented_as_an_integer(
    app_client, things
) -> None:
    async with app_client(things) as client:
        for segment in ("0", "42", "007", "2147483648", "9" * 32):
            response = await client.get(f"/things/{segment}")
            assert response.status_code == 200
            assert await answer(response) == {"id": int(segment)}
        spec = await answer(await client.get("/openapi.json"))
    (parameter,) = spec["paths"]["/things/{thing_id}"]["get"]["parameters"]
    assert parameter["schema"]["type"] == "integer"


# --- 4. the access log and hypercorn's own answers, through a real server ---------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``imperfect serve --migrate`` of the root family; (port, log file)."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(IMPERFECT), "serve", "--migrate", "--port", str(port)],
            cwd=tmp_path,
            env=_serve_env(tmp_path, IMPERFECT_ENV="test"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield port, log_path
    finally:
        stop_process_group(process)


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as bytes; the status, headers (lower-case) and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def test_a_request_cannot_forge_access_log_lines(server: tuple[int, Path]) -> None:
    port, log_path = server
    # decoded by the server: '/nowhere\n127.0.0.1 [forged] "GET /admin 1.1" 200\r\x1b[2J\u2028'
    forged = "/nowhere%0A127.0.0.1%20[forged]%20%22GET%20/admin%201.1%22%20200%0D%1B[2J%E2%80%A8"
    status, headers, body = _raw(
        port,
        f"GET {forged} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        "User-Agent: ua%0A\x7f\r\n\r\n".encode(),
    )
    assert status == 404
    assert_error(assert_json(status, headers.get("content-type"), body), "not_found")
    deadline = time.monotonic() + 10
    while "/nowhere" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    output = log_path.read_text()
    assert not any(line.startswith("127.0.0.1 [forged]") for line in output.splitlines())
    (line,) = [line for line in output.splitlines() if "/nowhere" in line]
    assert '/nowhere\\x0a127.0.0.1 [forged] \\"GET /admin 1.1\\" 200\\x0d\\x1b[2J\\u2028' in line
    assert "\x1b" not in output


@pytest.mark.parametrize("host", ["a..b", "."])
def test_a_bad_host_over_the_wire_is_json(server: tuple[int, Path], host: str) -> None:
    port, log_path = server
    status, headers, body = _raw(
        port, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    assert status == 400
    assert_error(assert_json(status, headers.get("content-type"), body), "bad_host")
    assert "Traceback" not in log_path.read_text()


def test_a_unicode_digit_over_the_wire_is_json_404(server: tuple[int, Path]) -> None:
    port, _ = server
    status, headers, body = _raw(
        port,
        b"GET /users_profiles/%EF%BC%91 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    assert status == 404
    assert_error(assert_json(status, headers.get("content-type"), body), "not_found")


def test_doubled_slashes_over_the_wire_never_redirect(server: tuple[int, Path]) -> None:
    """Leading slashes are one (Werkzeug's request does that); inner ones match nothing."""
    port, _ = server
    for path, status, code in (
        ("//healthz", 200, None),
        ("/docs/assets//x.css", 404, "not_found"),
        ("/healthz//", 404, "not_found"),
    ):
        answered, headers, body = _raw(
            port, f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode()
        )
        assert answered == status and "location" not in headers, (path, answered)
        parsed = assert_json(answered, headers.get("content-type"), body)
        if code:
            assert_error(parsed, code)
