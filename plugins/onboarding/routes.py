"""``/onboarding/intake`` and ``/onboarding/race-recommendations``. Thin: parse, call the
service, shape the answer."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from core import User, endpoint
from plugins.onboarding import service
from plugins.onboarding.models import RecommendationReply
from plugins.onboarding.schemas import (
    AcceptIn,
    AcceptOut,
    IntakeAnswerIn,
    IntakeState,
    RecommendationSetOut,
    RecommendIn,
    ReplyIn,
    ReplyOut,
)

blueprint = Blueprint("onboarding", __name__, url_prefix="/onboarding")


@blueprint.get("/intake")
@endpoint(response=IntakeState)
async def read_intake(user: User) -> dict[str, Any]:
    """The caller's intake: the answers so far and the current question."""
    return await service.intake_state(user)


@blueprint.post("/intake")
@endpoint(body=IntakeAnswerIn, response=IntakeState, errors=(400, 409))
async def answer_intake(body: IntakeAnswerIn, user: User) -> dict[str, Any]:
    """Answer the current step, skip it (when optional), or go back one step.

    The body's schema gives every step's answer type (422 otherwise). What depends on the
    caller's intake is a 409 naming the current step: a step that is not the current one
    (or not in the caller's questionnaire version), skipping a step that version requires,
    going back from the first step, or answering a completed intake. Answering the last
    step completes the intake and fills the caller's athlete profile. 400 `invalid_text`:
    a text answer the text log cannot record.
    """
    return await service.answer(user, body)


@blueprint.delete("/intake")
@endpoint(status=204)
async def restart_intake(user: User) -> None:
    """Start the intake over, on the current questionnaire version."""
    await service.restart(user)


@blueprint.post("/race-recommendations")
@endpoint(body=RecommendIn, response=RecommendationSetOut, status=201, errors=(409,))
async def recommend_races(body: RecommendIn, user: User) -> dict[str, Any]:
    """Rank catalogue events for the caller, from their completed intake, each with the
    factors of its score and their weights. The same inputs give the same order."""
    return await service.set_out(await service.recommend(user, body.limit))


@blueprint.get("/race-recommendations")
@endpoint(response=RecommendationSetOut, errors=(404,))
async def read_race_recommendations(user: User) -> dict[str, Any]:
    """The caller's latest ranking."""
    return await service.set_out(await service.latest(user))


@blueprint.post("/race-recommendations/<int:recommendation_id>/accept")
@endpoint(body=AcceptIn, response=AcceptOut, errors=(409,))
async def accept_race_recommendation(
    recommendation_id: int, body: AcceptIn, user: User
) -> dict[str, Any]:
    """Make the recommended event (and distance) the caller's active goal."""
    return await service.accept(user, recommendation_id, body.target_time_seconds)


@blueprint.post("/race-recommendations/<int:recommendation_id>/replies")
@endpoint(body=ReplyIn, response=ReplyOut, status=201, errors=(400,))
async def reply_to_race_recommendation(
    recommendation_id: int, body: ReplyIn, user: User
) -> RecommendationReply:
    """Say, in your own words, what you think of a recommendation (kept for your coach)."""
    return await service.reply(user, recommendation_id, body.text)
