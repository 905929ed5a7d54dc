"""Field helpers for request models, shared by every family.

``WholeNumber`` exists because JSON Schema (and so the published contract) counts ``4.0`` as
an integer while pydantic's strict mode does not: a client or a contract fuzzer sending a
whole-number float for an ``integer`` field would otherwise get a 422 the schema does not
announce. Strings and booleans stay refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator, ConfigDict, Field


def _whole_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = BeforeValidator(_whole_number)
"""Marks an ``int`` field as JSON Schema's ``integer``: ``4.0`` is taken as ``4``. Put it
after the field's bounds, which then still reach the schema:
``Annotated[int, Field(ge=1), WholeNumber]``."""


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(**constraints: Any) -> Any:
    """A request field that may be left out: ``field: int | None = omittable(ge=1)``.

    Its ``None`` default is never validated nor shown in the schema, so the contract says
    exactly what a client may send: a ``"default": null`` would make typed clients
    (openapi-typescript) require the field, and Swagger UI pre-fill ``null``. ``null``
    itself is accepted only if the field's type says so.
    """
    return Field(None, json_schema_extra=_drop_default, **constraints)


def request_body(*examples: Any, strict: bool = True) -> ConfigDict:
    """The ``model_config`` of a request body: unknown fields refused, strict types (no
    ``"5"`` for ``5``) unless ``strict=False``, and the examples the spec shows (Swagger UI
    pre-fills the first; tests/test_errors_and_spec.py checks each validates)."""
    return ConfigDict(extra="forbid", strict=strict, json_schema_extra={"examples": list(examples)})
