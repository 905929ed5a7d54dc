"""``POST /bench/echo``, declared with core's ``@endpoint`` like any family route."""

from __future__ import annotations

from quart import Blueprint

from core import endpoint
from tests.bench.workout import WorkoutIn, WorkoutOut, summarise

blueprint = Blueprint("bench", __name__, url_prefix="/bench")


@blueprint.post("/echo")
@endpoint(body=WorkoutIn, response=WorkoutOut, auth="public", tags=["bench"])
async def echo_workout(body: WorkoutIn) -> WorkoutOut:
    """Validate a workout and echo it with its totals."""
    return summarise(body)
