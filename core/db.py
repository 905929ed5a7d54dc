"""Tortoise ORM with one Tortoise app per plugin, each with its own migrations.

Core has a Tortoise app of its own, labelled ``core`` (the outbox, :mod:`core.models`),
always configured, with its migrations in ``core/migrations``.

The embedded default is a SQLite file under ``./data/``; ``DATABASE_URL``
(``postgres://...``) selects PostgreSQL. The app refuses to serve while an
enabled plugin has unapplied migrations, unless ``IMPERFECT_AUTO_MIGRATE`` is
set; ``imperfect db migrate`` applies them.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import importlib
import importlib.util
import inspect
import pkgutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor
from tortoise.models import Model

from core.config import RESERVED_NAME as CORE
from core.errors import (
    OUTAGES,
    ConfigError,
    ConflictError,
    StartupError,
    classify_dependency_failure,
    quiet_driver_outage_logs,
)


@dataclass(frozen=True)
class PluginModels:
    """One plugin's Tortoise app: its model modules, migrations package and tables."""

    plugin: str
    modules: tuple[str, ...]
    migrations: str
    tables: tuple[str, ...]


def describe_models(plugin: str, modules: Iterable[str]) -> PluginModels:
    """Import a plugin's model modules and name its migrations package and tables."""
    modules = tuple(modules)
    tables = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for _, model in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(model, Model)
                and model.__module__ == module_name
                and not model._meta.abstract
            ):
                _check_table_description(plugin, model)
                tables.append(model._meta.db_table or model.__name__.lower())
    migrations = modules[0].rpartition(".")[0] + ".migrations"
    return PluginModels(plugin, modules, migrations, tuple(sorted(tables)))


def _check_table_description(plugin: str, model: type[Model]) -> None:
    """Refuse a table comment that Tortoise would write unescaped into SQLite DDL.

    Tortoise uses the first line of a model's docstring as the table comment,
    and its SQLite schema editor splits statements on ``;`` and does not escape
    quotes, so such a comment breaks the migration at start-up.
    """
    description = model._meta.table_description or ""
    if ";" in description or "'" in description:
        raise ConfigError(
            f"plugin '{plugin}': the first line of model {model.__name__}'s docstring contains "
            "';' or \"'\", which breaks SQLite migrations; rephrase it"
        )


def core_models() -> PluginModels:
    """Core's own Tortoise app (the outbox), part of every deployment."""
    return describe_models(CORE, ["core.models"])


def check_table_conflicts(all_models: Iterable[PluginModels]) -> None:
    owners: dict[str, str] = {}
    for models in all_models:
        for table in models.tables:
            if table in owners:
                raise ConflictError(
                    f"table '{table}' is defined by both {_owner(owners[table])} "
                    f"and {_owner(models.plugin)}"
                )
            owners[table] = models.plugin


def _owner(name: str) -> str:
    return "core" if name == CORE else f"plugin '{name}'"


def _sqlite_path(database_url: str) -> Path | None:
    if database_url.startswith("sqlite://") and ":memory:" not in database_url:
        return Path(database_url.removeprefix("sqlite://").split("?", 1)[0])
    return None


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the folder of a SQLite file (``sqlite://./data/x.sqlite3``) and check that it
    can be written: SQLite writes its journal next to the file.

    Raises :class:`StartupError` in one line: ``the SQLite folder ./data is read-only``.
    """
    path = _sqlite_path(database_url)
    if path is None:
        return
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".imperfect-write-check-"):
            pass
    except OSError as error:
        raise StartupError(_folder_problem(folder, error)) from error


def _folder_problem(folder: Path, error: OSError) -> str:
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"the SQLite folder {folder} is read-only"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the SQLite folder {folder} is full (no space left on the device)"
    reason = error.strerror or type(error).__name__
    return f"the SQLite folder {folder} cannot be used: {reason}"


def database_label(database_url: str) -> str:
    """The database as start-up errors name it: scheme, host, port and name, no credentials."""
    sqlite_path = _sqlite_path(database_url)
    if sqlite_path is not None:
        return f"SQLite database {sqlite_path}"
    if database_url.startswith("sqlite://"):
        return "SQLite database in memory"
    scheme, _, rest = database_url.partition("://")
    location = rest.rpartition("@")[2].split("?", 1)[0]
    return f"database at {scheme}://{location}"


def _startup_reason(error: BaseException) -> str | None:
    """``connection refused``, ``host name not resolved``...: why the database is unreachable."""
    for current in (error, error.__cause__, error.__context__):
        if isinstance(current, socket.gaierror):
            return "host name not resolved"
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and "connect call failed" in str(current).lower()
        ):
            return "connection refused"
    return None


@contextmanager
def _as_startup_error(database_url: str, *, connecting: bool = False) -> Iterator[None]:
    """A database that cannot serve, raised as one :class:`StartupError` line naming it.

    ``connecting``: also any driver error (a refused password, a missing database), which
    while connecting is the deployment's to fix, not a bug to trace.
    """
    try:
        yield
    except StartupError:
        raise
    except Exception as error:
        label = database_label(database_url)
        failure = classify_dependency_failure(error)
        if failure is not None:
            reason = failure.reason.removeprefix("unreachable").lstrip(": ")
            detail = _startup_reason(error) or reason
            if failure.write_refused:
                message = f"the {label} refuses writes: {failure.reason}"
            elif failure.reason.startswith("unreachable") or _startup_reason(error):
                message = f"the {label} is unreachable" + (f": {detail}" if detail else "")
            else:
                message = f"the {label} is unavailable: {failure.reason}"
            raise StartupError(message) from error
        driver = type(error).__module__.split(".", 1)[0] in ("asyncpg", "tortoise", "sqlite3")
        if connecting and driver:
            text = " ".join(str(error).split()) or type(error).__name__
            raise StartupError(f"the {label} refused the connection: {text}") from error
        raise


MIGRATIONS_TABLE = "tortoise_migrations"  # where Tortoise's MigrationRecorder keeps history

# pg_advisory_lock key: the bytes of "impf" ("imperfect migrations").
_MIGRATION_LOCK_KEY = 0x696D7066


@asynccontextmanager
async def migration_lock(config: dict[str, Any]) -> AsyncIterator[None]:
    """Let one process at a time check and apply migrations (after :func:`init`).

    Several instances starting together with ``IMPERFECT_AUTO_MIGRATE`` (or a
    deploy step running ``imperfect db migrate`` beside them) would otherwise
    apply the same migration twice. PostgreSQL: a session advisory lock held
    on one pooled connection. SQLite: an exclusive lock on a file next to the
    database.
    """
    database_url = config["connections"]["default"]
    sqlite_path = _sqlite_path(database_url)
    if sqlite_path is not None:
        lock_path = sqlite_path.with_name(sqlite_path.name + ".migrate-lock")
        with lock_path.open("a") as handle:
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if not config["apps"] or not database_url.startswith(("postgres://", "postgresql://")):
        yield
        return
    async with get_connection("default").acquire_connection() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        try:
            yield
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)


# SQLite as a serving database, set on each connection Tortoise opens (its SQLite client
# runs every URL query parameter as `PRAGMA name=value` when it connects, and already sets
# journal_mode=WAL, journal_size_limit and foreign_keys=ON). WAL lets readers run while one
# writer writes; synchronous=NORMAL is durable in WAL mode except for the last transactions
# before a power loss (never corrupt); busy_timeout makes a second process (another worker)
# wait up to 5 s for the write lock instead of failing at once with "database is locked".
SQLITE_PRAGMAS = {"journal_mode": "WAL", "synchronous": "NORMAL", "busy_timeout": "5000"}
POOL_MIN_ENV, POOL_MAX_ENV = "IMPERFECT_DB_POOL_MIN", "IMPERFECT_DB_POOL_MAX"


def _pool_size(name: str) -> str | None:
    import os

    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise ConfigError(f"invalid environment: {name}={value} is not a number from 1 to 1000")
    return value


def serving_database_url(database_url: str) -> str:
    """``DATABASE_URL`` with the serving options added as query parameters.

    SQLite: :data:`SQLITE_PRAGMAS`. PostgreSQL: the connection pool's size per process
    (Tortoise's ``minsize``/``maxsize``, default 1 and 5) from ``IMPERFECT_DB_POOL_MIN`` and
    ``IMPERFECT_DB_POOL_MAX``. A parameter the URL already has is kept as it is.
    """
    from urllib.parse import parse_qsl, urlencode

    base, _, query = database_url.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    if database_url.startswith("sqlite://"):
        added = SQLITE_PRAGMAS
    elif database_url.startswith(("postgres://", "postgresql://", "asyncpg://", "psycopg://")):
        sizes = {"minsize": _pool_size(POOL_MIN_ENV), "maxsize": _pool_size(POOL_MAX_ENV)}
        added = {key: value for key, value in sizes.items() if value is not None}
        low, high = added.get("minsize", params.get("minsize")), added.get("maxsize")
        if low is not None and high is not None and int(low) > int(high):
            raise ConfigError(
                f"invalid environment: {POOL_MIN_ENV}={low} is larger than {POOL_MAX_ENV}={high}"
            )
    else:
        return database_url
    missing = {key: value for key, value in added.items() if key not in params}
    if not missing:
        return database_url
    return f"{base}?{urlencode({**params, **missing})}"


def tortoise_config(database_url: str, all_models: Iterable[PluginModels]) -> dict[str, Any]:
    database_url = serving_database_url(database_url)
    apps = {
        models.plugin: {
            "models": list(models.modules),
            "migrations": models.migrations,
            "default_connection": "default",
        }
        for models in all_models
    }
    return {"connections": {"default": database_url}, "apps": apps, "use_tz": True}


def check_migration_packages(config: dict[str, Any]) -> None:
    """Every family with models needs its migrations package, written for its name.

    A family's name in ``plugins.toml`` is its Tortoise app label, which its migrations
    record: a family renamed in ``plugins.toml`` cannot apply them, so say so in one line.
    """
    for plugin, app_config in config["apps"].items():
        package = app_config["migrations"]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"plugin '{plugin}': its models have no migrations package "
                f"{package}; run `imperfect db makemigrations {plugin}`"
            )
        recorded = _recorded_labels(package) - {plugin}
        if recorded:
            raise ConfigError(
                f"plugin '{plugin}': its migrations ({package}) were written for the family "
                f"name '{sorted(recorded)[0]}'; a family's name is recorded in its migrations "
                f"and migration history, so enable it as [plugins.{sorted(recorded)[0]}]"
            )


def _recorded_labels(package: str) -> set[str]:
    """The app labels a migrations package's models were created under."""
    labels: set[str] = set()
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        migration = getattr(importlib.import_module(f"{package}.{info.name}"), "Migration", None)
        for operation in getattr(migration, "operations", ()):
            app = (getattr(operation, "options", None) or {}).get("app")
            if isinstance(app, str):
                labels.add(app)
    return labels


async def unmigrated_changes(config: dict[str, Any]) -> list[str]:
    """Families whose models differ from what their migrations build."""
    from tortoise.migrations.autodetector import MigrationAutodetector

    ctx = await Tortoise.init(config=config, init_connections=False)
    assert ctx.apps is not None
    try:
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    finally:
        await Tortoise.close_connections()
    return sorted({writer.app_label for writer in writers})


async def init(config: dict[str, Any]) -> None:
    """Initialise Tortoise for the served app, reachable from every request task.

    A database that cannot be reached, or a SQLite file or folder that cannot be written,
    raises :class:`StartupError` with one line naming it
    (``the database at postgres://db:5432/app is unreachable: connection refused``).
    """
    check_migration_packages(config)
    database_url = config["connections"]["default"]
    ensure_sqlite_directory(database_url)
    quiet_driver_outage_logs("asyncpg", "asyncpg.pool")
    with _as_startup_error(database_url, connecting=True):
        await Tortoise.init(config=config, _enable_global_fallback=True)
        await probe()
    OUTAGES.set_probe("database", probe)


async def probe() -> None:
    """One round trip to the database; for SQLite, also whether it takes writes.

    The write check takes SQLite's write lock and rewrites the schema's ``user_version``
    with its own value inside a transaction it rolls back: a read-only file refuses it,
    and nothing reaches the disk. (A full disk shows only when a write is committed: see
    :meth:`core.errors.OutageLog.recent_write_refusal`.) Raises what the driver raises.
    """
    connection = get_connection("default")
    if connection.capabilities.dialect != "sqlite":
        await connection.execute_query("SELECT 1")
        return
    async with connection.acquire_connection() as raw:
        cursor = await raw.execute("PRAGMA user_version")
        row = await cursor.fetchone()
        await cursor.close()
        version = int(row[0]) if row else 0
        await raw.execute("BEGIN IMMEDIATE")
        try:
            await raw.execute(f"PRAGMA user_version = {version}")
        finally:
            await raw.execute("ROLLBACK")


async def close() -> None:
    if Tortoise.is_inited():
        await Tortoise.close_connections()


async def pending_migrations(config: dict[str, Any]) -> list[str]:
    """Names (``plugin.0001_initial``) of migrations not yet applied."""
    with _as_startup_error(config["connections"]["default"]):
        connection = get_connection("default")
        await _migrations_table_readable(connection)
        executor = MigrationExecutor(connection, config["apps"])
        steps = await executor.plan()
        if steps:
            # Tortoise reads a failing query of its history as "nothing applied yet".
            await _migrations_table_readable(connection)
    return [f"{step.migration.app_label}.{step.migration.name}" for step in steps]


async def _migrations_table_readable(connection: Any) -> None:
    """Raise if the migration history cannot be read because the database is down.

    A missing table (a fresh database) is not an error: everything is pending then.
    """
    try:
        await connection.execute_query(f"SELECT 1 FROM {MIGRATIONS_TABLE} LIMIT 1")
    except Exception as error:
        if classify_dependency_failure(error) is not None:
            raise


async def migrate(config: dict[str, Any]) -> list[str]:
    """Apply every pending migration of core and every enabled plugin (after :func:`init`)."""
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")

    with _as_startup_error(config["connections"]["default"]):
        executor = MigrationExecutor(get_connection("default"), config["apps"])
        await executor.migrate(progress=progress)
    return applied


async def make_migrations(config: dict[str, Any], plugin: str | None = None) -> list[str]:
    """Write a new migration for each plugin whose models changed (or only ``plugin``).

    The detector always sees every enabled family, so a migration of one family
    records its dependencies on the migrations of the families it relates to.
    """
    from tortoise.migrations.autodetector import MigrationAutodetector

    apps = config["apps"]
    if plugin is not None and plugin not in apps:
        raise ConfigError(f"plugin '{plugin}' is not enabled or has no models")
    for app_config in apps.values():
        _ensure_package(app_config["migrations"])
    ctx = await Tortoise.init(config=config, init_connections=False)
    assert ctx.apps is not None
    try:
        writers = await MigrationAutodetector(ctx.apps, apps).changes()
    finally:
        await Tortoise.close_connections()
    return [str(w.write()) for w in writers if plugin is None or w.app_label == plugin]


def _ensure_package(dotted: str) -> None:
    parent, _, leaf = dotted.rpartition(".")
    parent_path = Path(next(iter(importlib.import_module(parent).__path__)))
    package = parent_path / leaf
    package.mkdir(exist_ok=True)
    (package / "__init__.py").touch()
