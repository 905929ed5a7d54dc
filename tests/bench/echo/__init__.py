"""A benchmark-only family: one public, validated JSON ``POST /bench/echo``.

It exists so the benchmark measures the platform's whole request path
(routing, ``@endpoint`` body validation, response-model serialisation) on a
route that does some real pydantic work, loaded like any other family.
"""

from __future__ import annotations

from collections.abc import Iterable

from quart import Blueprint

from core import PluginInfo, hookimpl
from tests.bench.echo.routes import blueprint

PLUGIN = PluginInfo(version="1.0.0", description="Benchmark only: a public validated echo.")


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]
