"""The intake, race recommendations and replies. No HTTP here.

Free text a user writes (text answers, replies) is handed to ``hare`` through the
``record_source_event`` hook inside the transaction that stores it. The catalogue and
goals belong to ``events``, reached through its hooks ``event_candidates`` and
``set_active_goal``; the athlete profile belongs to whoever implements
``athlete_profile_filled`` (the ``users`` family).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import ApiError, SourceEvent, User, current_platform, utcnow
from plugins.onboarding import questionnaire
from plugins.onboarding.models import (
    IntakeAnswer,
    IntakeSession,
    Recommendation,
    RecommendationReply,
    RecommendationSet,
)
from plugins.onboarding.questionnaire import Step
from plugins.onboarding.schemas import FAMILY, IntakeAnswerIn

MAX_ID = 2**31 - 1


def value_of(answer: IntakeAnswer) -> Any:
    """The answer as given (stored wrapped, as JSON: ``{"value": ...}``)."""
    stored = answer.value
    return stored.get("value") if isinstance(stored, dict) else None


# --- hare --------------------------------------------------------------------------------


def answer_event(answer: IntakeAnswer, language: str | None) -> SourceEvent:
    return SourceEvent(
        idempotency_key=f"onboarding:intake_answer:{answer.id}",
        surface="intake",
        text=str(value_of(answer)),
        written_at=answer.written_at,
        reference_type="intake_answer",
        reference_id=str(answer.id),
        language=language,
    )


def reply_event(reply: RecommendationReply, language: str | None) -> SourceEvent:
    return SourceEvent(
        idempotency_key=f"onboarding:recommendation_reply:{reply.id}",
        surface="race_recommendation",
        text=reply.text,
        written_at=reply.written_at,
        reference_type="recommendation_reply",
        reference_id=str(reply.id),
        language=language,
    )


def _language(user: Any) -> str | None:
    locale = getattr(user, "locale", None)
    return locale if isinstance(locale, str) and locale else None


async def _to_hare(user: User, event: SourceEvent) -> None:
    try:
        await current_platform().call_each("record_source_event", user=user, event=event)
    except ValueError as error:
        raise ApiError(400, "invalid_text", f"This text cannot be recorded: {error}") from error


# --- intake ----------------------------------------------------------------------------


async def _session(user: User) -> IntakeSession:
    session = await IntakeSession.get_or_none(user_id=user.id)
    if session is not None:
        return session
    try:
        return await IntakeSession.create(
            user_id=user.id, version=questionnaire.CURRENT, started_at=utcnow()
        )
    except IntegrityError:  # created concurrently
        return await IntakeSession.get(user_id=user.id)


def _steps(session: IntakeSession) -> tuple[Step, ...]:
    return questionnaire.VERSIONS[session.version]


async def _answers(session: IntakeSession) -> list[IntakeAnswer]:
    return await IntakeAnswer.filter(session_id=session.id, active=True).order_by("id")


def _question(step: Step) -> dict[str, Any]:
    return {
        "id": step.id,
        "prompt": step.prompt,
        "type": step.type,
        "options": list(step.options),
        "min": step.min,
        "max": step.max,
        "integer": step.integer,
        "max_length": step.max_length if step.type == "text" else None,
        "optional": step.optional,
    }


def _state(session: IntakeSession, answers: list[IntakeAnswer]) -> dict[str, Any]:
    given = {a.step: value_of(a) for a in answers}
    current = questionnaire.next_step(_steps(session), [a.step for a in answers], given)
    return {
        "version": session.version,
        "status": session.status,
        "step": _question(current) if current and session.status != "completed" else None,
        "answers": given,
        "history": [a.step for a in answers],
        "can_go_back": bool(answers) and session.status != "completed",
        "started_at": session.started_at,
        "completed_at": session.completed_at,
    }


async def intake_state(user: User) -> dict[str, Any]:
    session = await _session(user)
    return _state(session, await _answers(session))


def profile_of(session: IntakeSession, answers: dict[str, Any]) -> dict[str, Any]:
    profile: dict[str, Any] = {"goals": []}
    for step in _steps(session):
        value = answers.get(step.id)
        if step.profile is None or value is None:
            continue
        if step.profile == "goals":
            profile["goals"] = [questionnaire.GOALS.get(value, str(value))]
        elif step.profile == "weekly_hours":
            profile["weekly_hours"] = float(value)
        else:
            profile[step.profile] = value
    return profile


async def answer(user: User, body: IntakeAnswerIn) -> dict[str, Any]:
    await _session(user)
    async with in_transaction():
        session = await IntakeSession.filter(user_id=user.id).select_for_update().first()
        assert session is not None
        answers = await _answers(session)
        steps = _steps(session)
        given = {a.step: value_of(a) for a in answers}
        current = questionnaire.next_step(steps, [a.step for a in answers], given)
        if session.status == "completed" or current is None:
            raise ApiError(
                409, "intake_completed", "Your intake is complete; DELETE it to start over."
            )
        if body.step not in {s.id for s in steps}:
            raise ApiError(
                409,
                "not_in_version",
                f"The intake (version {session.version}) has no step '{body.step}'; "
                f"the current step is '{current.id}'.",
            )
        if body.step != current.id:
            raise ApiError(
                409, "not_current_step", f"The current step is '{current.id}', not '{body.step}'."
            )
        if body.action == "back":
            if not answers:
                raise ApiError(409, "nothing_to_go_back_to", f"'{current.id}' is the first step.")
            await IntakeAnswer.filter(id=answers[-1].id).update(active=False)
            return _state(session, answers[:-1])
        if body.action == "skip":
            if not current.optional:
                raise ApiError(409, "step_required", f"The step '{current.id}' cannot be skipped.")
            value = None
        else:
            try:
                value = current.check(body.answer)
            except ValueError as error:
                raise ApiError(  # the schema's form of the step, not this version's
                    409,
                    "answer_does_not_fit",
                    f"The answer to '{current.id}' (version {session.version}) {error}.",
                ) from error
        row = await IntakeAnswer.create(
            session_id=session.id,
            user_id=user.id,
            version=session.version,
            step=current.id,
            value={"value": value},
            skipped=value is None,
            free_text=current.type == "text" and value is not None,
            written_at=utcnow(),
        )
        if row.free_text:
            await _to_hare(user, answer_event(row, _language(user)))
        answers.append(row)
        given[row.step] = value
        if questionnaire.next_step(steps, [a.step for a in answers], given) is None:
            session.status, session.completed_at = "completed", utcnow()
            await session.save(update_fields=["status", "completed_at"])
            await current_platform().call_each(
                "athlete_profile_filled", user=user, profile=profile_of(session, given)
            )
    return _state(session, answers)


async def restart(user: User) -> None:
    """Withdraw every answer and start over on the current questionnaire version."""
    async with in_transaction():
        session = await IntakeSession.get_or_none(user_id=user.id)
        if session is None:
            return
        await IntakeAnswer.filter(session_id=session.id, active=True).update(active=False)
        session.version, session.status = questionnaire.CURRENT, "in_progress"
        session.started_at, session.completed_at = utcnow(), None
        await session.save(update_fields=["version", "status", "started_at", "completed_at"])


# --- recommendations -------------------------------------------------------------------

WEIGHTS = {"distance_fit": 0.35, "weeks_to_prepare": 0.25, "travel": 0.25, "level": 0.15}
LEVEL_PREPARATION = {"beginner": 1.5, "intermediate": 1.0, "advanced": 0.85, "elite": 0.7}
LEVEL_LONGEST_KM = {"beginner": 21.1, "intermediate": 42.2, "advanced": 100.0, "elite": 400.0}
DEFAULT_TRAVEL_KM = 500.0


def weeks_needed(km: float, level: str) -> float:
    base = 6 if km <= 10 else 10 if km <= 21.1 else 16 if km <= 42.2 else 20
    return base * LEVEL_PREPARATION.get(level, 1.0)


def hours_needed(km: float) -> float:
    return 2 if km <= 10 else 3 if km <= 21.1 else 5 if km <= 42.2 else 8


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def _factor(name: str, score: float, value: float | None, explanation: str) -> dict[str, Any]:
    return {
        "name": name,
        "weight": WEIGHTS[name],
        "score": round(max(0.0, min(1.0, score)), 4),
        "value": None if value is None else round(value, 3),
        "explanation": explanation,
    }


def score(
    inputs: dict[str, Any], event: dict[str, Any], km: float, today: date
) -> list[dict[str, Any]]:
    """The four factors of one event and distance, each with its weight and why."""
    preferred = inputs["preferred_distance_km"]
    off = abs(math.log(km / preferred))
    fit = _factor(
        "distance_fit",
        1 - off / math.log(3),
        km,
        f"{km:g} km against the {preferred:g} km you prefer",
    )
    weeks = (event["date"] - today).days / 7
    needed = weeks_needed(km, inputs["level"])
    if weeks < needed:
        prepare = (weeks - needed / 2) / (needed / 2)
    elif weeks <= 2 * needed:
        prepare = 1.0
    else:
        prepare = max(0.3, 1 - (weeks - 2 * needed) / 52)
    weeks_factor = _factor(
        "weeks_to_prepare",
        prepare,
        weeks,
        f"{weeks:.0f} weeks away; about {needed:.0f} weeks of preparation suit a "
        f"{inputs['level']} for {km:g} km",
    )
    home = inputs.get("home")
    if home is None:
        travel = _factor("travel", 0.5, None, "no home location given: neutral")
    else:
        away = haversine_km(home["lat"], home["lng"], event["lat"], event["lng"])
        limit = inputs.get("max_travel_km") or DEFAULT_TRAVEL_KM
        if limit <= 0:
            near = 1.0 if away < 1 else 0.0
        elif away <= limit:
            near = 1 - 0.5 * away / limit
        else:
            near = 0.5 - 0.5 * (away - limit) / limit
        travel = _factor(
            "travel", near, away, f"{away:.0f} km from home; you would travel {limit:g} km"
        )
    longest = LEVEL_LONGEST_KM.get(inputs["level"], 42.2)
    suits = 1.0 if km <= longest else longest / km
    hours = inputs.get("weekly_hours")
    if hours is not None:
        suits *= min(1.0, hours / hours_needed(km)) if hours_needed(km) else 1.0
    level = _factor(
        "level",
        suits,
        km,
        f"{km:g} km for a {inputs['level']} training "
        + (f"{hours:g} h a week" if hours is not None else "an unknown amount"),
    )
    return [fit, weeks_factor, travel, level]


def total(factors: list[dict[str, Any]]) -> float:
    return round(sum(f["weight"] * f["score"] for f in factors), 4)


async def _completed_intake(user: User) -> tuple[IntakeSession, dict[str, Any]]:
    session = await IntakeSession.get_or_none(user_id=user.id)
    if session is None or session.status != "completed":
        raise ApiError(
            409, "intake_incomplete", "Complete the intake first (GET /onboarding/intake)."
        )
    return session, {a.step: value_of(a) for a in await _answers(session)}


def inputs_of(session: IntakeSession, answers: dict[str, Any]) -> dict[str, Any]:
    return {
        "intake_version": session.version,
        "sport": answers["sport"],
        "level": answers["level"],
        "weekly_hours": answers.get("weekly_hours"),
        "preferred_distance_km": answers["preferred_distance_km"],
        "home": answers.get("home_location"),
        "max_travel_km": answers.get("max_travel_km"),
    }


def rank(inputs: dict[str, Any], events: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    """Every event with its best distance and score, best first; ties by date, then id."""
    ranked = []
    for event in events:
        best = None
        for distance in sorted(event["distances"], key=lambda d: (d["km"], d["id"])):
            factors = score(inputs, event, distance["km"], today)
            if best is None or total(factors) > best[0]:
                best = (total(factors), distance, factors)
        if best is not None:
            ranked.append(
                {"event": event, "score": best[0], "distance": best[1], "factors": best[2]}
            )
    ranked.sort(key=lambda r: (-r["score"], r["event"]["date"], r["event"]["id"]))
    return ranked


async def recommend(user: User, limit: int) -> RecommendationSet:
    session, answers = await _completed_intake(user)
    inputs = inputs_of(session, answers)
    settings = FAMILY.settings
    today = utcnow().date()
    results = await current_platform().call_each(
        "event_candidates",
        sport=inputs["sport"],
        date_from=today + timedelta(weeks=settings.earliest_weeks),
        date_to=today + timedelta(weeks=settings.horizon_weeks),
        limit=settings.candidates,
    )
    events = [dict(e) for _, found in results for e in found]
    best = rank(inputs, events, today)[:limit]
    async with in_transaction():
        ranking = await RecommendationSet.create(
            user_id=user.id, inputs={**inputs, "today": today.isoformat()}, created_at=utcnow()
        )
        for position, item in enumerate(best, start=1):
            await Recommendation.create(
                set_id=ranking.id,
                user_id=user.id,
                rank=position,
                event_id=item["event"]["id"],
                event_name=item["event"]["name"],
                event_date=item["event"]["date"],
                distance_id=item["distance"]["id"],
                distance_km=item["distance"]["km"],
                score=item["score"],
                factors=item["factors"],
            )
    return ranking


async def set_out(ranking: RecommendationSet) -> dict[str, Any]:
    items = await Recommendation.filter(set_id=ranking.id).order_by("rank")
    return {
        "id": ranking.id,
        "created_at": ranking.created_at,
        "inputs": ranking.inputs,
        "items": items,
    }


async def latest(user: User) -> RecommendationSet:
    ranking = await RecommendationSet.filter(user_id=user.id).order_by("-id").first()
    if ranking is None:
        raise ApiError(404, "no_recommendations", "No race recommendations yet: POST to make them.")
    return ranking


async def owned_recommendation(user: User, recommendation_id: int) -> Recommendation:
    found = None
    if recommendation_id <= MAX_ID:
        found = await Recommendation.get_or_none(id=recommendation_id, user_id=user.id)
    if found is None:
        raise ApiError(
            404, "recommendation_not_found", f"You have no recommendation {recommendation_id}."
        )
    return found


async def accept(
    user: User, recommendation_id: int, target_time_seconds: int | None
) -> dict[str, Any]:
    recommendation = await owned_recommendation(user, recommendation_id)
    results = await current_platform().call_each(
        "set_active_goal",
        user=user,
        event_id=recommendation.event_id,
        distance_id=recommendation.distance_id,
        target_time_seconds=target_time_seconds,
        source="onboarding",
    )
    if not results:
        raise ApiError(503, "events_unavailable", "The events family is not enabled.")
    recommendation.accepted_at = utcnow()
    await recommendation.save(update_fields=["accepted_at"])
    return {"recommendation": recommendation, "user_event": results[0][1]}


async def reply(user: User, recommendation_id: int, text: str) -> RecommendationReply:
    recommendation = await owned_recommendation(user, recommendation_id)
    async with in_transaction():
        row = await RecommendationReply.create(
            recommendation_id=recommendation.id, user_id=user.id, text=text, written_at=utcnow()
        )
        await _to_hare(user, reply_event(row, _language(user)))
    return row


# --- backfill and accounts -------------------------------------------------------------


async def stored_events(
    since: Any, user_id: int | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Text answers (cursor ``a:<id>``), then replies (``r:<id>``), each oldest first."""
    kind, _, last = (after or "a:0").partition(":")
    page: list[dict[str, Any]] = []
    if kind == "a":
        answers = IntakeAnswer.filter(free_text=True, id__gt=int(last or 0))
        if since is not None:
            answers = answers.filter(written_at__gte=since)
        if user_id is not None:
            answers = answers.filter(user_id=user_id)
        for row in await answers.order_by("id").limit(limit).prefetch_related("user"):
            page.append(
                {
                    "user_id": row.user_id,
                    "event": answer_event(row, _language(row.user)),
                    "cursor": f"a:{row.id}",
                }
            )
        last = "0"
    if len(page) < limit:
        replies = RecommendationReply.filter(id__gt=int(last or 0))
        if since is not None:
            replies = replies.filter(written_at__gte=since)
        if user_id is not None:
            replies = replies.filter(user_id=user_id)
        rows = await replies.order_by("id").limit(limit - len(page)).prefetch_related("user")
        for reply_row in rows:
            page.append(
                {
                    "user_id": reply_row.user_id,
                    "event": reply_event(reply_row, _language(reply_row.user)),
                    "cursor": f"r:{reply_row.id}",
                }
            )
    return page


async def erase(user: User) -> None:
    async with in_transaction():
        await RecommendationReply.filter(user_id=user.id).delete()
        await Recommendation.filter(user_id=user.id).delete()
        await RecommendationSet.filter(user_id=user.id).delete()
        await IntakeAnswer.filter(user_id=user.id).delete()
        await IntakeSession.filter(user_id=user.id).delete()


async def export(user: User) -> dict[str, Any]:
    session = await IntakeSession.get_or_none(user_id=user.id)
    answers = await IntakeAnswer.filter(user_id=user.id).order_by("id")
    sets = await RecommendationSet.filter(user_id=user.id).order_by("id")
    items = await Recommendation.filter(user_id=user.id).order_by("id")
    replies = await RecommendationReply.filter(user_id=user.id).order_by("id")

    def when(value: Any) -> Any:
        return value.isoformat() if value is not None else None

    return {
        "intake": None
        if session is None
        else {
            "version": session.version,
            "status": session.status,
            "started_at": when(session.started_at),
            "completed_at": when(session.completed_at),
        },
        "answers": [
            {
                "step": a.step,
                "value": value_of(a),
                "skipped": a.skipped,
                "active": a.active,
                "version": a.version,
                "written_at": when(a.written_at),
            }
            for a in answers
        ],
        "recommendation_sets": [
            {"id": s.id, "created_at": when(s.created_at), "inputs": s.inputs} for s in sets
        ],
        "recommendations": [
            {
                "id": r.id,
                "set_id": r.set_id,
                "rank": r.rank,
                "event_id": r.event_id,
                "event_name": r.event_name,
                "event_date": when(r.event_date),
                "distance_km": r.distance_km,
                "score": r.score,
                "factors": r.factors,
                "accepted_at": when(r.accepted_at),
            }
            for r in items
        ],
        "replies": [
            {
                "recommendation_id": r.recommendation_id,
                "text": r.text,
                "written_at": when(r.written_at),
            }
            for r in replies
        ],
    }
