"""The ``imperfect`` command line: errors through click, hypercorn settings, serve's logs."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from core import serving
from core.cli import cli
from core.errors import ConfigError
from tests.support import ROOT
from tests.support.ports import free_port
from tests.support.servers import imperfect_serve

IMPERFECT = ROOT / ".venv/bin/imperfect"
CHATTY = '[plugins.chatty]\nmodule = "tests.plugins.chatty"\n'


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "PYTHONPATH": str(ROOT),  # tests.plugins.chatty
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"sqlite://{workdir}/serve.sqlite3",
        **extra,
    }


# --- configuration errors reach click as one line and exit status 1 -----------------------


def test_a_config_error_is_one_line_on_stderr_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plugins.toml").write_text("[plugins.broken\n")
    monkeypatch.setenv("IMPERFECT_PLUGINS_FILE", str(tmp_path / "plugins.toml"))
    runner = CliRunner()
    for args in (["check"], ["routes"], ["db", "migrate"], ["no-such-command"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error: "), (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert not isinstance(result.exception, ConfigError)  # click handled it


def test_the_console_script_prints_config_errors_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text('[plugins.x]\nmodule = "nowhere.at_all"\n')
    result = subprocess.run(
        [str(IMPERFECT), "check"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: plugin 'x'") and result.stderr.count("\n") == 1


# --- hypercorn settings: shipped defaults, overridden key by key ---------------------------


def test_shipped_defaults_apply_without_a_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(serving.CONFIG_ENV, raising=False)
    config = serving.hypercorn_config("127.0.0.1", 9000, 3)
    assert config.accesslog == "-" and config.errorlog == "-"
    assert "rid=%({x-request-id}o)s" in config.access_log_format
    assert config.keep_alive_timeout == 75 and config.include_server_header is False
    assert config.bind == ["127.0.0.1:9000"] and config.workers == 3
    assert config.application_path == serving.WORKER_APPLICATION


def test_the_deployment_file_overrides_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(serving.CONFIG_ENV, raising=False)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/hypercorn.toml").write_text("keep_alive_timeout = 5\nworkers = 9\n")
    config = serving.hypercorn_config("127.0.0.1", 9000, 1)
    assert config.keep_alive_timeout == 5  # overridden
    assert config.graceful_timeout == 25 and config.accesslog == "-"  # kept
    assert config.workers == 1  # set by serve, whatever the file says

    named = tmp_path / "elsewhere.toml"
    named.write_text("graceful_timeout = 3\n")
    monkeypatch.setenv(serving.CONFIG_ENV, str(named))
    config = serving.hypercorn_config("127.0.0.1", 9000, 1)
    assert config.graceful_timeout == 3 and config.keep_alive_timeout == 75  # instead of config/

    monkeypatch.setenv(serving.CONFIG_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"IMPERFECT_HYPERCORN_CONFIG=.*no such file"):
        serving.hypercorn_settings()
    named.write_text("keep_alive_timeuot = 3\n")
    monkeypatch.setenv(serving.CONFIG_ENV, str(named))
    with pytest.raises(ConfigError, match=r"unknown hypercorn setting.*keep_alive_timeuot"):
        serving.hypercorn_settings()
    named.write_text("keep_alive_timeout = \n")
    with pytest.raises(ConfigError, match="cannot read hypercorn settings"):
        serving.hypercorn_settings()


def test_serve_refuses_a_bad_log_level_or_settings_file_before_starting(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text(CHATTY)
    (tmp_path / "bad.toml").write_text("no_such_setting = 1\n")
    for extra, message in (
        ({"IMPERFECT_LOG_LEVEL": "chatty"}, "IMPERFECT_LOG_LEVEL=chatty is not a log level"),
        ({serving.CONFIG_ENV: str(tmp_path / "bad.toml")}, "no_such_setting"),
    ):
        result = subprocess.run(
            [str(IMPERFECT), "serve", "--port", str(free_port())],
            cwd=tmp_path,
            env=_env(tmp_path, **extra),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1


def test_configure_logging_follows_the_level_and_installs_one_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    hypercorn = logging.getLogger("hypercorn")
    saved_propagate = hypercorn.propagate
    try:
        monkeypatch.setenv(serving.LOG_LEVEL_ENV, "debug")
        serving.configure_logging()
        serving.configure_logging()
        ours = [h for h in root.handlers if getattr(h, "_imperfect", False)]
        assert len(ours) == 1 and root.level == logging.DEBUG
        assert hypercorn.propagate is False  # its lines are printed once, by its handlers
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        hypercorn.propagate = saved_propagate


# --- imperfect serve, as a real process --------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``imperfect serve --workers 2`` from a directory without config/; (base URL, log)."""
    (tmp_path / "plugins.toml").write_text(CHATTY)
    assert not (tmp_path / "config").exists()
    with imperfect_serve(tmp_path, ["--migrate", "--workers", "2"], _env(tmp_path)) as served:
        yield served


def test_serve_logs_access_lines_and_family_loggers_in_every_worker(
    served: tuple[str, Path],
) -> None:
    base, log_path = served
    pids = set()
    for _ in range(12):  # a new connection each time: either worker may take it
        with httpx.Client() as client:
            pids.add(client.get(f"{base}/chatty/hello", timeout=5).json()["pid"])
    deadline = time.monotonic() + 10
    while True:
        output = log_path.read_text()
        logged = all(f"chatty said hello from worker {pid}" in output for pid in pids)
        if logged and output.count('"GET /chatty/hello 1.1" 200') >= 12:
            break
        assert time.monotonic() < deadline, output
        time.sleep(0.1)
    # the family's own logger, with its name, in the worker that handled the request
    for pid in pids:
        assert f"[{pid}] [INFO] tests.plugins.chatty: chatty said hello from worker {pid}" in (
            output
        )
    # the access log in the shipped format (request id included), with no config/ directory
    access = [line for line in output.splitlines() if '"GET /chatty/hello 1.1" 200' in line]
    assert all(" rid=" in line for line in access), access
    assert "chatty debug detail" not in output  # INFO by default
    assert output.count("Running on") == 2  # each hypercorn line once, not repeated by root
