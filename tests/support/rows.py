"""The rows a user owns, found by walking Tortoise's model registry.

Every model with a foreign key (or one-to-one key) to ``users.User``, directly or through
other models' keys (a delivery -> its notification -> the user), is a table that holds rows
of a user; so is ``users_user`` itself. Nothing here names a family's tables, so a family
added later is covered by every test that uses these helpers.
"""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.expressions import Q
from tortoise.models import Model

MAX_DEPTH = 4  # foreign keys followed from a table to users.User


def user_model() -> type[Model]:
    assert Tortoise.apps is not None, "Tortoise is not initialised: use inside a started app"
    return Tortoise.apps.get_model("users", "User")


def paths_to_users() -> dict[type[Model], list[str]]:
    """Every model that leads to ``users.User``, with the lookups (``"notification__user_id"``)
    that reach the user's id; ``users.User`` itself maps to ``["id"]``."""
    assert Tortoise.apps is not None
    target = user_model()
    models = list(Tortoise.apps.get_models_iterable())
    paths: dict[type[Model], list[str]] = {target: ["id"]}
    for _ in range(MAX_DEPTH):
        for model in models:
            for name in sorted(model._meta.fk_fields | model._meta.o2o_fields):
                related = model._meta.fields_map[name].related_model
                if related is target:
                    found = [f"{name}_id"]
                elif related in paths and related is not model:
                    found = [f"{name}__{path}" for path in paths[related]]
                else:
                    continue
                known = paths.setdefault(model, [])
                known.extend(path for path in found if path not in known)
    return paths


def _of(user_id: int, lookups: list[str]) -> Q:
    return Q(*[Q(**{lookup: user_id}) for lookup in lookups], join_type="OR")


async def count_user_rows(user_id: int) -> dict[str, int]:
    """``{table: rows of user_id}`` for every table that leads to ``users.User``."""
    return {
        model._meta.db_table: await model.filter(_of(user_id, lookups)).count()
        for model, lookups in paths_to_users().items()
    }


async def user_rows(user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``user_id`` in every such table, as stored (to compare before/after)."""
    rows = {}
    for model, lookups in paths_to_users().items():
        query = model.filter(_of(user_id, lookups)).order_by(model._meta.pk_attr)
        rows[model._meta.db_table] = await query.values()
    return rows


async def all_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of every enabled family, and core's (the outbox)."""
    assert Tortoise.apps is not None
    return {
        model._meta.db_table: await model.all().order_by(model._meta.pk_attr).values()
        for model in Tortoise.apps.get_models_iterable()
    }
