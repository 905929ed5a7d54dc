"""A test family that logs, with its module's logger, each request it handles."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from pydantic import BaseModel
from quart import Blueprint

from core import PluginInfo, endpoint, hookimpl

PLUGIN = PluginInfo(version="1.0.0", description="Says hello, and logs that it did.")

log = logging.getLogger(__name__)
blueprint = Blueprint("chatty", __name__, url_prefix="/chatty")


class Hello(BaseModel):
    pid: int


@blueprint.get("/hello")
@endpoint(response=Hello, auth="public")
async def hello() -> Hello:
    """Answer with the worker's process id, after logging a line."""
    log.info("chatty said hello from worker %s", os.getpid())
    log.debug("chatty debug detail")
    return Hello(pid=os.getpid())


@hookimpl
def blueprints() -> Iterable[Blueprint]:
    return [blueprint]
