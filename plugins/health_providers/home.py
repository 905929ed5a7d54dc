"""What this family gives the Home screen (the ``home`` family's hooks): the connection
summary, the training-load board section from alice's activities, and activity details.

Training load is the hours of activity in the last 7 days (acute) against the weekly
average of the last 28 (chronic); their ratio says whether the athlete is building,
holding or backing off. It reads alice live, so alice down or slow is the section's error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core import User, utcnow
from plugins.health_providers.clients import AliceActivity, AliceClient
from plugins.health_providers.models import CONNECTED, Connection

TRAINING_LOAD = {"name": "training_load", "title": "Training load", "order": 20}
WEEKS = 4


async def connection_summary(user: User) -> dict[str, Any]:
    rows = await Connection.filter(user_id=user.id, status=CONNECTED).order_by("provider")
    synced = [row.last_sync_at for row in rows if row.last_sync_at is not None]
    return {
        "connections": {
            "providers": [row.provider for row in rows],
            "count": len(rows),
            "last_sync_at": max(synced).isoformat() if synced else None,
        }
    }


async def training_load(alice: AliceClient, user: User) -> dict[str, Any] | None:
    """The section, or ``None`` for a user without a connected provider."""
    providers = await Connection.filter(user_id=user.id, status=CONNECTED).values_list(
        "provider", flat=True
    )
    if not providers:
        return None
    today = utcnow().date()
    start = today - timedelta(days=7 * WEEKS - 1)
    activities: list[AliceActivity] = []
    for provider in providers:
        activities += await alice.activities(user.id, str(provider), start, today)
    recent = today - timedelta(days=6)
    acute = sum(a.duration_s for a in activities if a.start_time.date() >= recent) / 3600
    chronic = sum(a.duration_s for a in activities) / 3600 / WEEKS
    ratio = round(acute / chronic, 2) if chronic else None
    if ratio is None:
        trend = "no training in the last four weeks"
    elif ratio > 1.3:
        trend = "building fast: more than a third above your usual week"
    elif ratio < 0.8:
        trend = "backing off: a lighter week than usual"
    else:
        trend = "steady, close to your usual week"
    return {
        "summary": f"{acute:.1f} h in the last 7 days; {trend}",
        "metrics": [
            {"label": "last 7 days", "value": round(acute, 1), "unit": "h"},
            {"label": "weekly average (4 weeks)", "value": round(chronic, 1), "unit": "h"},
            {"label": "acute:chronic", "value": ratio if ratio is not None else "n/a"},
        ],
        "data": {"activities": len(activities), "providers": [str(p) for p in providers]},
    }


async def activity(alice: AliceClient, user: User, activity_id: str) -> dict[str, Any] | None:
    found = await alice.activity(user.id, activity_id)
    return found.model_dump(mode="json") if found is not None else None
