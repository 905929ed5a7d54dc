"""``POST /courier/parcels``, and the handler that delivers a parcel, scripted by tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict
from quart import Blueprint
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core import ApiError, LoadedPlugin, OutboxItem, StashKey, endpoint, enqueue
from tests.plugins.courier.models import Parcel

blueprint = Blueprint("courier", __name__)


@dataclass
class Script:
    """What the handler does next (tests edit it) and what it saw."""

    failures: list[Exception] = field(default_factory=list)
    delay: float = 0.0
    seen: list[OutboxItem] = field(default_factory=list)


SCRIPT = StashKey[Script]("script")


class ParcelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    dedupe_key: str | None = None
    ordering_key: str | None = None
    refuse: bool = False  # fail after queueing, inside the transaction


class ParcelOut(BaseModel):
    id: int
    label: str
    delivered: int


@blueprint.post("/courier/parcels")
@endpoint(body=ParcelIn, response=ParcelOut, status=201, auth="public", errors=(409,))
async def send_parcel(body: ParcelIn) -> Parcel:
    async with in_transaction():
        parcel = await Parcel.create(label=body.label)
        await enqueue(
            "courier.deliver",
            {"parcel_id": parcel.id},
            dedupe_key=body.dedupe_key,
            ordering_key=body.ordering_key,
        )
        if body.refuse:
            raise ApiError(409, "refused", "Refused after queueing.")
    return parcel


async def deliver(plugin: LoadedPlugin, item: OutboxItem) -> None:
    script = plugin.stash[SCRIPT]
    script.seen.append(item)
    if script.delay:
        await asyncio.sleep(script.delay)
    if script.failures:
        raise script.failures.pop(0)
    await Parcel.filter(id=item.payload["parcel_id"]).update(delivered=F("delivered") + 1)
