"""``/session`` and ``/session/sdk-token``: connecting Terra-backed sources."""

from __future__ import annotations

from quart import Blueprint

from core import User, endpoint
from plugins.terra import service
from plugins.terra.schemas import (
    ALICE_CLIENT,
    FAMILY,
    TERRA_CLIENT,
    SdkTokenOut,
    WidgetSessionOut,
)

blueprint = Blueprint("terra", __name__)
TERRA_ERRORS = (403, 502, 503, 504)


@blueprint.post(service.SESSION_PATH)
@endpoint(
    response=WidgetSessionOut,
    status=201,
    errors=TERRA_ERRORS,
    rate_limits=("10/minute", "60/hour"),
)
async def create_session(user: User) -> WidgetSessionOut:
    """A Terra widget session for the caller: open ``url`` to connect a Terra-backed source.

    Providers, language and redirect URLs come from the deployment's settings; the
    session carries the caller's opaque Terra reference, which alice is told about
    first. 503 ``terra_not_configured`` when the deployment has no Terra credentials; 502
    when Terra refuses (``terra_credentials_rejected``, ``terra_rejected``) or
    fails; 504 when it does not answer in time. alice failing to record the reference
    is a 502 or 504 naming alice.
    """
    return await service.widget_session(
        FAMILY.stash.get(TERRA_CLIENT), FAMILY.stash[ALICE_CLIENT], FAMILY.settings, user
    )


@blueprint.post(service.SDK_TOKEN_PATH)
@endpoint(
    response=SdkTokenOut,
    status=201,
    errors=TERRA_ERRORS,
    rate_limits=("10/minute", "60/hour"),
)
async def create_sdk_token(user: User) -> SdkTokenOut:
    """A Terra mobile SDK token (valid 180 s) for connecting Apple Health or Samsung Health.

    Errors as for ``POST /session``.
    """
    return await service.sdk_token(FAMILY.stash.get(TERRA_CLIENT), FAMILY.stash[ALICE_CLIENT], user)
