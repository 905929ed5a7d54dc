"""Parts shared by the ``clash_a`` and ``clash_b`` test families.

Each of the two contributes only what its ``kind`` setting names, so a test
enables both with the same kind and they collide in exactly that one way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import click
from pydantic import BaseModel, ConfigDict, create_model
from quart import Blueprint

from core import endpoint

Kind = Literal[
    "route",
    "converter",
    "operation_id",
    "schema",
    "same_schema",
    "security_scheme",
    "table",
    "core_table",
    "core_route",
    "command",
    "outbox",
]


class ClashSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind


def blueprint(side: str, kind: Kind) -> Blueprint:
    """A fresh blueprint for one side; only the ``kind`` part is shared with the other."""
    bp = Blueprint(f"clash_{side}", __name__)

    async def handler(**_: Any) -> None:
        return None

    if kind == "route":
        bp.add_url_rule("/clash/route", view_func=endpoint(auth="public")(handler))
    elif kind == "converter":
        rule = "/x/<int:a>" if side == "a" else "/x/<b>"
        bp.add_url_rule(rule, view_func=endpoint(auth="public")(handler))
    elif kind == "operation_id":
        declared = endpoint(auth="public", operation_id="shared_operation")(handler)
        bp.add_url_rule(f"/clash-{side}/operation", view_func=declared)
    elif kind in ("schema", "same_schema"):
        fields: dict[str, Any] = {"x": (int, ...)}
        if kind == "schema" and side == "b":
            fields = {"y": (str, ...)}
        item = create_model("Item", **fields)
        bp.add_url_rule(
            f"/clash-{side}/item", view_func=endpoint(auth="public", response=item)(handler)
        )
    elif kind == "core_route":
        bp.add_url_rule("/healthz", view_func=endpoint(auth="public")(handler))
    else:
        bp.add_url_rule(f"/clash-{side}/ok", view_func=endpoint(auth="public")(handler))
    return bp


def model_modules(side: str, kind: Kind) -> Iterable[str]:
    if kind == "core_table" and side == "a":
        return ["tests.plugins.clash_a.takeover"]
    return [f"tests.plugins.clash_{side}.models"] if kind == "table" else []


def outbox_handlers(kind: Kind) -> Mapping[str, Any]:
    async def deliver(item: Any) -> None:
        return None

    return {"clash.deliver": deliver} if kind == "outbox" else {}


def fragment(side: str, kind: Kind) -> Mapping[str, Any]:
    if kind != "security_scheme":
        return {}
    scheme = {"type": "apiKey", "in": "header", "name": f"X-Clash-{side.upper()}"}
    return {"components": {"securitySchemes": {"ClashKey": scheme}}}


def commands(kind: Kind) -> Iterable[click.Command]:
    if kind != "command":
        return []

    @click.command(name="clash-hello")
    def hello() -> None:
        click.echo("hello")

    return [hello]
