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
import fcntl
import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor
from tortoise.models import Model

from core.config import RESERVED_NAME as CORE
from core.errors import ConfigError, ConflictError


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
    """Create the folder of a SQLite file (``sqlite://./data/x.sqlite3``)."""
    path = _sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


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


def tortoise_config(database_url: str, all_models: Iterable[PluginModels]) -> dict[str, Any]:
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
    """Initialise Tortoise for the served app, reachable from every request task."""
    check_migration_packages(config)
    ensure_sqlite_directory(config["connections"]["default"])
    await Tortoise.init(config=config, _enable_global_fallback=True)


async def close() -> None:
    if Tortoise.is_inited():
        await Tortoise.close_connections()


async def pending_migrations(config: dict[str, Any]) -> list[str]:
    """Names (``plugin.0001_initial``) of migrations not yet applied."""
    executor = MigrationExecutor(get_connection("default"), config["apps"])
    steps = await executor.plan()
    return [f"{step.migration.app_label}.{step.migration.name}" for step in steps]


async def migrate(config: dict[str, Any]) -> list[str]:
    """Apply every pending migration of core and every enabled plugin (after :func:`init`)."""
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")

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
