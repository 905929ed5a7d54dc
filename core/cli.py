"""The ``imperfect`` command line: serve, inspect, check, migrate, scaffold.

Plugin commands (the ``cli_commands`` hook) are loaded only when asked for,
so a broken ``plugins.toml`` never hides the built-in commands that diagnose it.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from core import db
from core.app import create_app, runtime_of
from core.config import CoreSettings
from core.errors import ConfigError, StartupError
from core.plugins import Platform, load_platform

DEFAULT_SPEC_PATH = Path("docs/openapi.json")


class CliError(click.ClickException):
    """A configuration error as click reports it: ``error: <message>`` on stderr, exit 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class ImperfectGroup(click.Group):
    """Built-in commands, plus the commands enabled plugins contribute.

    A :class:`~core.errors.ConfigError` raised by any command (a plugin's included) or
    while finding one becomes a :class:`CliError`, so click prints it as one line and
    exits 1, without a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, StartupError) as error:
            raise CliError(str(error)) from error

    def _plugin_commands(self) -> dict[str, click.Command]:
        commands: dict[str, click.Command] = {}
        owners: dict[str, str] = {}
        platform = load_platform(CoreSettings.from_env())
        for plugin, result in platform.call_each_sync("cli_commands"):
            for command in result or []:
                name = command.name or ""
                if name in self.commands or name in commands:
                    other = owners.get(name, "core")
                    raise ConfigError(
                        f"command '{name}' is defined by both {_who(other)} "
                        f"and plugin '{plugin.name}'"
                    )
                commands[name], owners[name] = command, plugin.name
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            extra = list(self._plugin_commands())
        except ConfigError:
            extra = []
        return sorted([*self.commands, *extra])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        return self._plugin_commands().get(name)


def _who(owner: str) -> str:
    return "core" if owner == "core" else f"plugin '{owner}'"


@click.group(cls=ImperfectGroup)
def cli() -> None:
    """imperfect-api: the endurance-coaching backend, one plugin per route family."""


def main() -> None:
    """Console entry point: like ``python -m``, make the current directory importable,
    so families named by module path in a deployment's plugins.toml are found."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    cli()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--server",
    type=click.Choice(["hypercorn", "uvicorn", "granian"]),
    default="hypercorn",
    show_default=True,
    help="The ASGI server; uvicorn and granian come with the `servers` extra.",
)
@click.option("--migrate", is_flag=True, help="Apply pending migrations before serving.")
def serve(host: str, port: int, workers: int, server: str, migrate: bool) -> None:
    """Serve the API with hypercorn (or uvicorn, or granian), in --workers processes.

    Server settings are the defaults shipped in the package, overridden key by key by
    ``$IMPERFECT_HYPERCORN_CONFIG`` or ``config/hypercorn.toml``; every server gets the same
    timeouts, connection cap and access log. The configuration is checked first, in a child
    process; each worker then binds its own ``SO_REUSEPORT`` socket and builds the app once.
    Application logs go to stderr at ``$IMPERFECT_LOG_LEVEL`` (default INFO), in every
    worker. A start-up that a worker refuses (unapplied migrations, a family's start-up
    failing, ...) stops the server with its cause on one line and exit status 1.
    """
    from core.errors import StartupError
    from core.serving import serve as run_server

    try:
        failure = run_server(server, host, port, workers, migrate)
    except StartupError as error:
        failure = str(error)
    if failure is not None:
        raise CliError(f"start-up failed: {failure}")


@cli.command()
def check() -> None:
    """Validate plugins.toml, every family's settings and the merged app, without serving."""
    app = create_app()
    runtime = runtime_of(app)
    platform = runtime.platform
    db.check_migration_packages(runtime.tortoise_config)
    changed = asyncio.run(db.unmigrated_changes(runtime.tortoise_config))
    if changed:
        raise ConfigError(
            "models changed without a migration in: "
            + ", ".join(f"plugin '{name}'" for name in changed)
            + "; run `imperfect db makemigrations <plugin>`"
        )
    click.echo(
        f"ok: {len(platform.plugins)} families enabled "
        f"({', '.join(platform.plugins) or 'none'}), {len(runtime.routes)} routes, "
        f"{sum(len(t) for t in runtime.tables.values())} tables"
    )
    for left in platform.left_out.values():
        click.echo(f"  {left.name}: {left.status} ({left.reason})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List every family: version, source, status and why, routes and tables."""
    runtime = runtime_of(create_app())
    rows = describe_plugins(runtime.platform, runtime.routes, runtime.tables)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']} {row.get('version', '-')} [{row['status']}] {row['source']}")
        if row.get("reason"):
            click.echo(f"    why: {row['reason']}")
        for route in row.get("routes", []):
            click.echo(f"    route: {route}")
        for table in row.get("tables", []):
            click.echo(f"    table: {table}")


def describe_plugins(
    platform: Platform, routes: list[tuple[str, str, str]], tables: dict[str, tuple[str, ...]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for plugin in platform.plugins.values():
        rows.append(
            {
                "name": plugin.name,
                "version": plugin.version,
                "source": plugin.entry.source,
                "status": "enabled",
                "routes": [f"{m} {r}" for r, m, owner in routes if owner == plugin.name],
                "tables": list(tables.get(plugin.name, ())),
            }
        )
    for left in platform.left_out.values():
        rows.append(
            {"name": left.name, "source": left.source, "status": left.status, "reason": left.reason}
        )
    return rows


@cli.command()
def routes() -> None:
    """Every URL rule, its methods and the family that owns it."""
    runtime = runtime_of(create_app())
    width = max((len(rule) for rule, _, _ in runtime.routes), default=10)
    for rule, methods, owner in sorted(runtime.routes):
        click.echo(f"{rule:<{width}}  {methods:<20}  {owner}")


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to this file.")
@click.option(
    "--check",
    "check_file",
    is_flag=True,
    help=f"Fail if the file (default {DEFAULT_SPEC_PATH}) differs from what the code produces.",
)
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Print what the current configuration serves that another does not (operations, "
    f"parameters, components), marking what breaks existing clients; against {DEFAULT_SPEC_PATH} "
    "unless --against, --against-plugins or --disable says otherwise.",
)
@click.option(
    "--against",
    type=click.Path(path_type=Path, dir_okay=False),
    help="--diff against this OpenAPI document (for example the base branch's).",
)
@click.option(
    "--against-plugins",
    type=click.Path(path_type=Path, dir_okay=False),
    help="--diff against the document another plugins.toml produces.",
)
@click.option(
    "--disable",
    default="",
    metavar="A,B",
    help="--diff the current configuration against itself with these families disabled: "
    "what their clients would lose.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["breaking"]),
    help="With --diff: exit 1 when a breaking change is reported.",
)
def openapi(
    output: Path | None,
    check_file: bool,
    show_diff: bool,
    against: Path | None,
    against_plugins: Path | None,
    disable: str,
    fail_on: str | None,
) -> None:
    """Print, write (-o), verify (--check) or compare (--diff) the merged OpenAPI document."""
    if not show_diff and (against or against_plugins or disable or fail_on):
        raise click.UsageError("--against, --against-plugins, --disable and --fail-on need --diff")
    if show_diff:
        if check_file or output:
            raise click.UsageError("--diff cannot be combined with --check or -o")
        _openapi_diff(against, against_plugins, disable, fail_on)
        return
    spec = runtime_of(create_app()).spec
    assert spec is not None
    if check_file:
        path = output or DEFAULT_SPEC_PATH
        current = path.read_bytes() if path.exists() else b""
        if current != spec.body:
            diff = difflib.unified_diff(
                current.decode().splitlines(),
                spec.body.decode().splitlines(),
                str(path),
                "generated",
                lineterm="",
                n=1,
            )
            click.echo("\n".join(list(diff)[:60]), err=True)
            raise ConfigError(
                f"{path} is stale: run `imperfect openapi -o {path}` and commit the result"
            )
        click.echo(f"{path} is up to date")
    elif output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(spec.body)
        click.echo(f"wrote {output}")
    else:
        click.echo(spec.body.decode(), nl=False)


def _openapi_diff(
    against: Path | None, against_plugins: Path | None, disable: str, fail_on: str | None
) -> None:
    """``openapi --diff``: old (what clients were written against) -> new, then the report."""
    from core.specdiff import diff_specs, has_breaking, render

    if sum(bool(x) for x in (against, against_plugins, disable)) > 1:
        raise click.UsageError("give at most one of --against, --against-plugins and --disable")
    settings = CoreSettings.from_env()
    current = f"current configuration ({settings.plugins_file})"
    if disable:
        names = {name.strip() for name in disable.split(",") if name.strip()}
        # The current configuration is what clients have; the candidate disables families.
        old, old_label = _spec_document(settings), current
        off = ",".join(sorted(settings.disabled_names | names))
        new = _spec_document(settings.model_copy(update={"disable": off}))
        new_label = f"{current} with {', '.join(sorted(names))} disabled"
    else:
        new, new_label = _spec_document(settings), current
        if against_plugins is not None:
            if not against_plugins.is_file():
                raise ConfigError(f"--against-plugins: {against_plugins} is not a file")
            other = settings.model_copy(update={"plugins_file": against_plugins})
            old, old_label = _spec_document(other), f"configuration of {against_plugins}"
        else:
            path = against or DEFAULT_SPEC_PATH
            old, old_label = _read_document(path), str(path)
    changes = diff_specs(old, new)
    click.echo(render(changes, old_label, new_label), nl=False)
    if fail_on == "breaking" and has_breaking(changes):
        count = sum(change.breaking for change in changes)
        raise ConfigError(f"{count} breaking change(s) for clients of {old_label}")


def _spec_document(settings: CoreSettings) -> dict[str, Any]:
    spec = runtime_of(create_app(settings)).spec
    assert spec is not None
    return spec.document


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from error
    except ValueError as error:
        raise ConfigError(f"{path} is not JSON: {error}") from error
    if not isinstance(document, dict) or "paths" not in document:
        raise ConfigError(f"{path} is not an OpenAPI document (it has no 'paths')")
    return document


@cli.group(name="db")
def database() -> None:
    """Apply and create migrations (one Tortoise app per family)."""


def _migrate_all() -> list[str]:
    runtime = runtime_of(create_app())

    async def run() -> list[str]:
        await db.init(runtime.tortoise_config)
        try:
            async with db.migration_lock(runtime.tortoise_config):
                return await db.migrate(runtime.tortoise_config)
        finally:
            await db.close()

    return asyncio.run(run())


@database.command(name="migrate")
def db_migrate() -> None:
    """Apply every pending migration of every enabled family."""
    applied = _migrate_all()
    for name in applied:
        click.echo(f"applied {name}")
    click.echo(f"{len(applied)} migration(s) applied" if applied else "nothing to apply")


@database.command(name="makemigrations")
@click.argument("plugin", required=False)
def db_makemigrations(plugin: str | None) -> None:
    """Write migrations for families whose models changed (or only PLUGIN)."""
    runtime = runtime_of(create_app())
    written = asyncio.run(db.make_migrations(runtime.tortoise_config, plugin))
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("no changes")


@cli.command(name="new-plugin")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where it is created [default: plugins, or . with --distribution]. In the tree "
    "it must lie inside the working directory, which families are imported from.",
)
@click.option(
    "--distribution",
    is_flag=True,
    help="Scaffold an installable package, imperfect-NAME/ with a pyproject.toml, "
    "found through its entry point.",
)
def new_plugin(name: str, directory: Path | None, distribution: bool) -> None:
    """Scaffold a route family package (with a model, a migration and a test)."""
    from core.scaffold import scaffold

    if directory is None:
        directory = Path(".") if distribution else Path("plugins")
    result = scaffold(name, directory, distribution=distribution, cwd=Path.cwd())
    for path in result.written:
        click.echo(f"created {path}")
    if distribution:
        click.echo(
            f"\nInstall it where the platform runs: pip install -e {result.root}\n"
            "Then add it to plugins.toml:"
        )
    else:
        click.echo("\nNow add it to plugins.toml:")
    click.echo(f"\n{result.plugins_table}")


@cli.group()
def dev() -> None:
    """Helpers for local development."""


@dev.command(name="token")
@click.argument("email")
@click.option("--password", default="imperfect-dev-password", show_default=True)
@click.option(
    "--emulator-host",
    envvar="FIREBASE_AUTH_EMULATOR_HOST",
    default="127.0.0.1:9099",
    show_default=True,
    help="host:port of the Firebase Auth Emulator.",
)
def dev_token(email: str, password: str, emulator_host: str) -> None:
    """Print a Firebase Auth Emulator ID token for EMAIL (signing it up if new)."""
    from core.emulator import EmulatorError, sign_in_or_up

    try:
        account = sign_in_or_up(emulator_host, email, password)
    except EmulatorError as error:
        raise ConfigError(str(error)) from error
    click.echo(account.id_token)
