"""Hooks the ``health_providers`` family defines: how other families add providers.

A family contributes providers to the catalogue by implementing
:func:`health_providers`. Mark the implementation ``@hookimpl(optionalhook=True)``
unless the family lists ``health_providers`` in ``requires``: the catalogue family
may be disabled, and then the hook is simply never called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import LoadedPlugin, hookspec

ProviderKind = Literal["device", "app", "phone"]
ConnectMethod = Literal["oauth", "widget", "sdk"]


class ProviderSpec(BaseModel):
    """One provider in the catalogue: what it is and how a user connects it.

    ``kind``: ``device`` (a watch, ring, band, bike computer or scale whose data
    syncs to its vendor's cloud), ``app`` (a training app or platform), ``phone``
    (a health store on the phone, such as Apple Health).

    ``connect``: ``oauth`` means alice runs the provider's OAuth flow, through
    ``POST /health-providers/{name}/connect`` and its callback; ``widget`` and
    ``sdk`` mean another route starts the connection, named by ``connect_path``
    (the app opens a web widget whose session that route creates, or connects on
    the phone with the token that route returns).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    display_name: str = Field(min_length=1, max_length=60)
    kind: ProviderKind
    connect: ConnectMethod = "oauth"
    connect_path: str | None = Field(None, pattern=r"^/[A-Za-z0-9/_-]*$")

    @model_validator(mode="after")
    def _path_matches_method(self) -> ProviderSpec:
        if self.connect == "oauth" and self.connect_path is not None:
            raise ValueError(
                "an oauth provider connects through /health-providers: no connect_path"
            )
        if self.connect != "oauth" and self.connect_path is None:
            raise ValueError(f"a {self.connect} provider needs the connect_path that starts it")
        return self


@hookspec
def health_providers(plugin: LoadedPlugin) -> Iterable[ProviderSpec | Mapping[str, Any]]:
    """Return the health providers this family adds to the catalogue.

    Runs: once, when the app is built (``health_providers`` gathers the registry with
    ``Platform.collect`` in its ``blueprints`` hook).
    Gets: ``plugin``, the contributing family.
    Returns: :class:`ProviderSpec` items, or mappings with its fields (so a family that
    only optionally pairs with ``health_providers`` need not import it). Every provider
    becomes a value of the ``{provider}`` path parameter and of its enum in the spec. An
    invalid item, or an implementation that raises, is the contributing family's failure:
    by that family's ``on_failure`` it is left out (``health_providers`` serves without
    it) or start-up stops naming it. A name another family already contributes stops
    start-up naming both, whatever ``on_failure`` says.
    May be async: no.
    """
