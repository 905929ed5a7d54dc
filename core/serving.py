"""How ``imperfect serve`` runs hypercorn: its settings, and application logging in workers.

Hypercorn's settings start from the defaults shipped in the package
(``core/defaults/hypercorn.toml``), overridden key by key by one deployment file: the path
in ``IMPERFECT_HYPERCORN_CONFIG``, else ``config/hypercorn.toml`` in the working directory
when it exists.

Hypercorn runs the app in worker processes it spawns (even with one worker), which start
with Python's logging unconfigured: only hypercorn's own loggers have handlers there. The
workers therefore build the app through :func:`worker_app`, which first sends application
loggers (the root logger: ``imperfect.*`` and every family's ``logging.getLogger(__name__)``)
to stderr at ``IMPERFECT_LOG_LEVEL`` (default ``INFO``).
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from hypercorn.config import Config
    from quart import Quart

CONFIG_ENV = "IMPERFECT_HYPERCORN_CONFIG"
LOG_LEVEL_ENV = "IMPERFECT_LOG_LEVEL"
DEPLOYMENT_CONFIG = Path("config/hypercorn.toml")
WORKER_APPLICATION = "core.serving:worker_app()"
LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"  # hypercorn's, so the two logs read alike
_SET_BY_SERVE = frozenset({"bind", "workers", "application_path"})


def default_settings() -> dict[str, Any]:
    """The hypercorn settings shipped with the package."""
    text = files("core").joinpath("defaults/hypercorn.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def deployment_config_path() -> Path | None:
    """The deployment's override file: ``$IMPERFECT_HYPERCORN_CONFIG``, else
    ``config/hypercorn.toml`` if it exists, else none."""
    named = os.environ.get(CONFIG_ENV, "")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={named}: no such file")
        return path
    return DEPLOYMENT_CONFIG if DEPLOYMENT_CONFIG.is_file() else None


def _read_overrides(path: Path) -> dict[str, Any]:
    from hypercorn.config import Config

    try:
        overrides = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: cannot read hypercorn settings: {error}") from error
    unknown = sorted(key for key in overrides if not hasattr(Config, key))
    if unknown:
        raise ConfigError(f"{path}: unknown hypercorn setting(s): {', '.join(unknown)}")
    return overrides


def hypercorn_settings() -> dict[str, Any]:
    """The shipped defaults, overridden key by key by the deployment file (if any)."""
    settings = default_settings()
    path = deployment_config_path()
    if path is not None:
        settings.update(_read_overrides(path))
    return settings


def hypercorn_config(host: str, port: int, workers: int) -> Config:
    """The complete hypercorn configuration ``imperfect serve`` runs with."""
    from hypercorn.config import Config

    settings = {k: v for k, v in hypercorn_settings().items() if k not in _SET_BY_SERVE}
    config = Config.from_mapping(settings)
    config.bind = [f"{host}:{port}"]
    config.workers = workers
    config.application_path = WORKER_APPLICATION
    return config


def log_level() -> int:
    """``IMPERFECT_LOG_LEVEL`` (a name such as ``INFO`` or ``DEBUG``) as a logging level."""
    name = os.environ.get(LOG_LEVEL_ENV, "") or "INFO"
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise ConfigError(
            f"invalid environment: {LOG_LEVEL_ENV}={name} is not a log level "
            "(DEBUG, INFO, WARNING, ERROR, CRITICAL)"
        )
    return level


def configure_logging() -> None:
    """Send application log records to stderr at ``IMPERFECT_LOG_LEVEL``.

    One handler on the root logger, installed once per process. Hypercorn's loggers keep
    their own handlers (from ``accesslog``/``errorlog``), so they stop propagating here
    instead of printing every line twice.
    """
    level = log_level()
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_imperfect", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        handler._imperfect = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    logging.getLogger("hypercorn").propagate = False


def worker_app() -> Quart:
    """The app factory each hypercorn worker runs: logging first, then the app."""
    from core.app import create_app

    configure_logging()
    return create_app()
