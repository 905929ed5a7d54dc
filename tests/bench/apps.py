"""The three apps under test, each serving ``GET /``, ``GET /healthz`` and ``POST /bench/echo``.

``platform`` is the real thing: ``core.app.create_app`` with every family of
the deployment's ``plugins.toml`` plus the ``echo`` family. ``quart`` and
``fastapi`` are what a team would write by hand without the platform: the same
pydantic models, the same handler bodies, the same JSON. The bare Quart app
validates and serialises by hand; FastAPI does it from type hints. The
``GET /`` document is the platform's own answer, read from a file, so all three
send the same data. The bare apps never import ``core`` (``serve.py`` checks),
so they pay neither its import time nor its memory.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from tests.bench.workout import WorkoutIn, WorkoutOut, summarise

JSON = "application/json"
ROOT_SCHEMAS = Path(__file__).resolve().parents[2] / "plugins" / "root" / "schemas.py"


class Health(BaseModel):
    """``GET /healthz``: the smallest validated response, to isolate per-request overhead."""

    status: Literal["ok"]


def _root_document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def root_schemas() -> ModuleType:
    """The ``root`` family's pydantic models, loaded from their file.

    Importing ``plugins.root.schemas`` would run ``plugins/root/__init__.py``,
    which imports the whole platform; the models module itself needs pydantic only.
    """
    name = "bench_root_schemas"
    spec = importlib.util.spec_from_file_location(name, ROOT_SCHEMAS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def platform_app() -> Any:
    """The platform, configured from the environment (``IMPERFECT_PLUGINS_FILE`` etc.)."""
    from core.app import create_app

    return create_app()


def quart_app(root_document: Path) -> Any:
    """A bare Quart app: the same handlers, validation and serialisation written by hand."""
    from quart import Quart, Response, request

    ServiceInfo = root_schemas().ServiceInfo
    document = _root_document(root_document)
    app = Quart("bare")

    @app.get("/")
    async def read_root() -> Response:
        info = ServiceInfo.model_validate(document)
        return Response(info.model_dump_json(), content_type=JSON)

    @app.get("/healthz")
    async def liveness() -> Response:
        return Response(Health(status="ok").model_dump_json(), content_type=JSON)

    @app.post("/bench/echo")
    async def echo_workout() -> Response:
        if request.mimetype != JSON:
            return Response(b'{"detail":"JSON body required"}', status=415, content_type=JSON)
        try:
            body = WorkoutIn.model_validate_json(await request.get_data())
        except PydanticValidationError as error:
            detail = json.dumps({"detail": error.errors(include_url=False)}, default=str)
            return Response(detail, status=422, content_type=JSON)
        return Response(summarise(body).model_dump_json(), content_type=JSON)

    return app


def fastapi_app(root_document: Path) -> Any:
    """The same endpoints on FastAPI, validated and serialised from the type hints."""
    from fastapi import FastAPI

    ServiceInfo = root_schemas().ServiceInfo
    document = _root_document(root_document)
    app = FastAPI(title="bench")

    @app.get("/", response_model=ServiceInfo)
    async def read_root() -> ServiceInfo:
        return ServiceInfo.model_validate(document)

    @app.get("/healthz", response_model=Health)
    async def liveness() -> Health:
        return Health(status="ok")

    @app.post("/bench/echo", response_model=WorkoutOut)
    async def echo_workout(body: WorkoutIn) -> WorkoutOut:
        return summarise(body)

    return app
