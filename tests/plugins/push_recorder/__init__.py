"""A test notifier: implements ``send_push`` by recording each push in a table.

It writes in the caller's transaction, as a real notifier's outbox does, so a
push is recorded if and only if the change that caused it commits; tests count
rows to see how many pushes a user would get.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core import PluginInfo, PushMessage, hookimpl
from tests.plugins.push_recorder.models import RecordedPush

PLUGIN = PluginInfo(version="1.0.0", description="Records pushes instead of sending them.")


@hookimpl
def model_modules() -> Iterable[str]:
    return ["tests.plugins.push_recorder.models"]


@hookimpl
async def send_push(user: Any, push: PushMessage) -> None:
    await RecordedPush.create(
        user_id=user.id, title=push.title, body=push.body, category=push.category, data=push.data
    )
