"""The ``events`` family: the race catalogue (discovery, translations, admin edits,
import/export) and each user's goal (one active event, the rest history), which it also
shows on ``home``'s Home screen and boards when that family is on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import click
import pluggy
from quart import Blueprint

from core import LoadedPlugin, Platform, PluginInfo, User, hookimpl, running
from plugins.events import hookspecs, service, transfer
from plugins.events.routes import blueprint
from plugins.events.schemas import SWEEPER, EventsSettings, Sweeper

PLUGIN = PluginInfo(
    version="1.0.0",
    description="Race discovery (text, sport, dates, distances, place), translations, admin "
    "edits and imports, and each user's active event and history.",
    requires=("users",),
)


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def settings_model() -> type[EventsSettings]:
    return EventsSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["plugins.events.models"]


@hookimpl
async def startup(plugin: LoadedPlugin) -> None:
    settings: EventsSettings = plugin.settings
    sweeper = Sweeper()
    sweeper.task = asyncio.create_task(
        service.sweep_forever(settings.sweep_interval_seconds, sweeper),
        name="events: complete passed goals",
    )
    plugin.stash[SWEEPER] = sweeper


@hookimpl
async def shutdown(plugin: LoadedPlugin) -> None:
    sweeper = plugin.stash.get(SWEEPER)
    if sweeper is not None:
        del plugin.stash[SWEEPER]
        sweeper.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper.task


@hookimpl
async def event_candidates(
    sport: str, date_from: date, date_to: date, limit: int
) -> list[dict[str, Any]]:
    return await service.candidates(sport, date_from, date_to, limit)


@hookimpl
async def set_active_goal(
    user: User,
    event_id: int,
    distance_id: int | None,
    target_time_seconds: int | None,
    source: str,
) -> Mapping[str, Any]:
    goal = await service.set_goal(user, event_id, distance_id, target_time_seconds, source)
    return service.goal_out(goal)


# home's hooks (optional: home may be disabled, and then they are never called)
COUNTDOWN = {"name": "countdown", "title": "Countdown", "order": 10}


@hookimpl(optionalhook=True)
async def home_parts(user: User) -> Mapping[str, Any]:
    return await service.home_part(user)


@hookimpl(optionalhook=True)
def board_sections() -> Iterable[Mapping[str, Any]]:
    return [COUNTDOWN]


@hookimpl(optionalhook=True)
async def board_section(user: User, name: str) -> Mapping[str, Any] | None:
    return await service.countdown_section(user) if name == COUNTDOWN["name"] else None


@hookimpl
async def account_deleted(user: User) -> None:
    await service.erase(user)


@hookimpl
async def account_export(user: User) -> Mapping[str, Any]:
    return await service.export(user)


@hookimpl
def cli_commands(plugin: LoadedPlugin, platform: Platform) -> Iterable[click.Command]:
    group = click.Group(name=plugin.name, help="The event catalogue: import and export.")
    formats = click.Choice(["csv", "json"])

    @group.command(name="import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--format", "fmt", type=formats, help="Default: from the file's extension.")
    def import_(file: Path, fmt: str | None) -> None:
        """Create or update the events in FILE (CSV or JSON), by each row's source_id.

        Running it again with the same file changes nothing. Every rejected row is
        reported with its line and the reason; the others are imported. Exits 1 when a
        row was rejected.
        """
        fmt = fmt or ("json" if file.suffix.lower() == ".json" else "csv")
        try:
            rows = transfer.rows_of(file.read_text(encoding="utf-8-sig"), fmt)
        except (ValueError, UnicodeDecodeError) as error:
            raise click.ClickException(f"{file}: {error}") from error

        async def run() -> transfer.Report:
            async with running(platform):
                if sys.stdout.isatty():
                    with click.progressbar(length=len(rows), label="importing") as bar:
                        return await transfer.import_rows(rows, bar.update)
                return await transfer.import_rows(rows)

        report = asyncio.run(run())
        for line, reason in report.rejected:
            click.echo(f"{file}:{line}: rejected: {reason}", err=True)
        click.echo(
            f"{report.total} row(s): {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.rejected)} rejected"
        )
        if report.rejected:
            sys.exit(1)

    @group.command(name="export")
    @click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--format", "fmt", type=formats, help="Default: from -o's extension, else json.")
    @click.option("--include-retired", is_flag=True, help="Export retired events too.")
    def export(output: Path | None, fmt: str | None, include_retired: bool) -> None:
        """Write the catalogue as CSV or JSON (what `import` reads back)."""
        fmt = fmt or ("csv" if output is not None and output.suffix.lower() == ".csv" else "json")

        async def run() -> list[dict[str, Any]]:
            async with running(platform):
                return await service.export_catalogue(include_retired)

        events = asyncio.run(run())
        text = (
            transfer.to_csv(events)
            if fmt == "csv"
            else json.dumps(events, indent=2, ensure_ascii=False) + "\n"
        )
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            click.echo(f"{len(events)} event(s) written to {output}", err=True)

    return [group]
