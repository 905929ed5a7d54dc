"""An out-of-tree family: notes, with settings, a table, a spec fragment and a command."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click
from quart import Blueprint

from core import LoadedPlugin, PluginInfo, hookimpl
from imperfect_example.channel import Postbox
from imperfect_example.routes import blueprint
from imperfect_example.schemas import ExampleSettings
from imperfect_example.service import count_notes

PLUGIN = PluginInfo(version="0.3.0", description="Notes, from an installed package.")


@hookimpl
def settings_model() -> type[ExampleSettings]:
    return ExampleSettings


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]


@hookimpl
def model_modules() -> Iterable[str]:
    return ["imperfect_example.models"]


@hookimpl
def spec_fragments() -> Mapping[str, Any]:
    return {
        "components": {
            "securitySchemes": {
                "ExampleApiKey": {"type": "apiKey", "in": "header", "name": "X-Example-Key"}
            }
        }
    }


@hookimpl
def cli_commands(plugin: LoadedPlugin) -> Iterable[click.Command]:
    @click.command(name="example-greet")
    @click.argument("name")
    def greet(name: str) -> None:
        """Greet NAME with the configured greeting."""
        click.echo(f"{plugin.settings.greeting}, {name}!")

    return [greet]


@hookimpl(optionalhook=True)
async def notices(plugin: LoadedPlugin) -> list[str]:
    """Implements the hook that the ``noticeboard`` family defines."""
    return [f"{plugin.settings.greeting}: {await count_notes()} note(s) stored"]


@hookimpl(optionalhook=True)
def channels(plugin: LoadedPlugin) -> list[Postbox]:
    """Implements the hook that the ``channels`` family defines: one more chat channel."""
    return [Postbox(plugin.settings)]
