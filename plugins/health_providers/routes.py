"""``/health-providers/*`` and ``/onboarding/{provider}/insights``.

``{provider}`` matches exactly the registered providers: the blueprint is built
per app (:func:`build_blueprint`) with a URL converter made from that app's
registry, whose ``openapi_schema`` puts the same names in the spec as an enum.
Any other name matches no route (404).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from quart import Blueprint, Response, redirect
from werkzeug.routing import BaseConverter

from core import User, endpoint
from plugins.health_providers import service
from plugins.health_providers.clients import AliceClient
from plugins.health_providers.hookspecs import ProviderSpec
from plugins.health_providers.schemas import (
    ALICE_CLIENT,
    FAMILY,
    PROVIDERS,
    CallbackQuery,
    Catalogue,
    CompleteIn,
    ConnectionOut,
    ConnectOut,
    Insights,
)

CONVERTER = "health_provider"
ALICE_ERRORS = (502, 504)


def provider_converter(providers: Mapping[str, ProviderSpec]) -> type[BaseConverter]:
    """A converter matching only ``providers``' names; handlers get the :class:`ProviderSpec`."""
    names = list(providers)
    longest_first = sorted(names, key=len, reverse=True)

    class ProviderConverter(BaseConverter):
        regex = "(?:" + "|".join(re.escape(name) for name in longest_first) + ")"
        openapi_schema = {"type": "string", "enum": names}
        openapi_component = "HealthProvider"  # one named schema, referred to by every route

        def to_python(self, value: str) -> ProviderSpec:
            return providers[value]

        def to_url(self, value: Any) -> str:
            return value.name if isinstance(value, ProviderSpec) else str(value)

    return ProviderConverter


def _alice() -> AliceClient:
    return FAMILY.stash[ALICE_CLIENT]


@endpoint(response=Catalogue, errors=(403,))
async def list_providers(user: User) -> Catalogue:
    """Every provider this deployment offers, with the caller's connection to each."""
    providers = FAMILY.stash[PROVIDERS]
    return Catalogue(providers=await service.catalogue(providers, user))


@endpoint(
    response=ConnectOut,
    errors=(403, 409, *ALICE_ERRORS),
    rate_limits=("10/minute", "60/hour"),
)
async def connect_provider(provider: ProviderSpec, user: User) -> ConnectOut:
    """Start connecting an OAuth provider: open ``authorize_url`` in a browser.

    alice builds the provider's authorize URL (with PKCE where the provider has
    it) around a one-time ``state`` bound to the caller and the provider, valid
    for ten minutes. Providers connected another way answer 409 naming their route.
    """
    return await service.start_authorization(_alice(), FAMILY.settings, user, provider)


@endpoint(query=CallbackQuery, auth="public", status=302, media_type="text/html")
async def provider_callback(provider: ProviderSpec, query: CallbackQuery) -> Response:
    """Where the provider sends the browser back; always redirects to the app.

    Public, and it connects nothing by itself (the browser carries no token, and whoever
    consented may not be who started the flow): it spends the one-time ``state`` and
    redirects to the app with ``status=pending`` and a one-time ``completion``, which the
    app redeems with ``POST /health-providers/{provider}/complete``; or with
    ``status=error`` and a ``reason``: ``access_denied``, ``provider_error``,
    ``invalid_request``, ``unknown_state``, ``state_expired`` or ``state_used``.
    """
    outcome = await service.finish_callback(provider, query)
    return cast(Response, redirect(service.app_redirect(FAMILY.settings, outcome), 302))


@endpoint(body=CompleteIn, response=ConnectionOut, errors=(403, 404, 409, 410, *ALICE_ERRORS))
async def complete_provider(provider: ProviderSpec, body: CompleteIn, user: User) -> ConnectionOut:
    """Finish connecting: redeem the ``completion`` the callback sent the app.

    Only the user who started the flow can redeem it, once, within five minutes; then
    alice exchanges the code and the provider is connected. ``404 unknown_completion``
    for a completion that does not exist or was issued for another user (which spends
    it), ``409 completion_used``, ``410 completion_expired``; alice refusing the code is
    ``502 authorization_failed``, alice failing ``502 alice_unavailable`` or ``504
    alice_timeout``. Every answer spends the completion.
    """
    return await service.redeem_completion(
        _alice(), FAMILY.settings, user, provider, body.completion
    )


@endpoint(response=ConnectionOut, errors=(403, *ALICE_ERRORS))
async def read_provider(provider: ProviderSpec, user: User) -> ConnectionOut:
    """The caller's connection to this provider as alice reports it now (status, last sync)."""
    return await service.read_connection(_alice(), user, provider)


@endpoint(status=204, errors=(403, *ALICE_ERRORS))
async def disconnect_provider(provider: ProviderSpec, user: User) -> None:
    """alice revokes access at the provider and forgets the tokens. Idempotent."""
    await service.disconnect(_alice(), user, provider)


@endpoint(response=Insights, errors=(403, 409, *ALICE_ERRORS))
async def read_insights(provider: ProviderSpec, user: User) -> Insights:
    """Recent training volume, longest session, typical week, resting heart rate and sleep,
    computed from what alice holds for this provider."""
    return await service.insights(_alice(), FAMILY.settings, user, provider)


def build_blueprint(providers: Mapping[str, ProviderSpec]) -> Blueprint:
    """The family's routes for one app, ``{provider}`` limited to ``providers``."""
    blueprint = Blueprint("health_providers", __name__)
    converter = provider_converter(providers)
    # Recorded first, so the converter is in the app's map before any rule uses it.
    blueprint.record_once(lambda state: state.app.url_map.converters.update({CONVERTER: converter}))
    one = f"/health-providers/<{CONVERTER}:provider>"
    routes: list[tuple[str, str, Any]] = [
        ("/health-providers", "GET", list_providers),
        (f"{one}/connect", "POST", connect_provider),
        (f"{one}/callback", "GET", provider_callback),
        (f"{one}/complete", "POST", complete_provider),
        (one, "GET", read_provider),
        (one, "DELETE", disconnect_provider),
        (f"/onboarding/<{CONVERTER}:provider>/insights", "GET", read_insights),
    ]
    for rule, method, view in routes:
        blueprint.add_url_rule(rule, view_func=view, methods=[method])
    return blueprint
