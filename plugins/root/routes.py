"""``GET /``: service metadata."""

from __future__ import annotations

from quart import Blueprint

from core import current_platform, endpoint
from plugins.root.schemas import ServiceInfo
from plugins.root.service import described

blueprint = Blueprint("root", __name__)


@blueprint.get("/")
@endpoint(response=ServiceInfo, auth="public")
async def read_root() -> ServiceInfo:
    """Name, version and environment of this deployment, its families and links."""
    return described(current_platform())
