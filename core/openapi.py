"""One OpenAPI 3.1 document from the live URL map and the ``@endpoint`` declarations.

Built once at start-up with apispec. It follows what clients of a FastAPI
service expect: operationIds ``{function}{path}_{method}``, title-cased
summaries, ``"Successful Response"``, 422 with the ``HTTPValidationError`` and
``ValidationError`` components, and one tag per route family. Components come
from pydantic's JSON Schema per plugin; the same name with different content
from two plugins is a start-up error naming both.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from apispec import APISpec
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema
from quart import Quart
from werkzeug.routing import BaseConverter, Rule

from core.endpoints import Endpoint, RouteRequirement, declared_endpoint
from core.errors import ConflictError, ErrorResponse, HTTPValidationError

OPENAPI_VERSION = "3.1.0"
STREAM_MEDIA_TYPE = "text/event-stream"
REF = "#/components/schemas/{model}"
HEADER_REF = "#/components/headers/{name}"
SECURITY_SCHEME = "FirebaseBearer"
# Relative to where the document is served from: the API serves its own spec, so "/"
# is this deployment, whichever host it runs on.
SERVERS = [{"url": "/", "description": "This deployment (the host serving this document)"}]
LICENSE = {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"}
# Answered by core on every operation that takes a token: 401 (no, bad or expired token)
# and 503 auth_unavailable (Firebase cannot verify tokens on this deployment right now).
SIGNED_IN_ERRORS = (401, 503)
# Answered by core on every operation but liveness when a dependency is down: 503
# database_unavailable (or storage_unavailable) with Retry-After.
UNAVAILABLE_HEADER = {
    "description": "Seconds to wait before retrying; sent when a dependency is down "
    "(`database_unavailable`, `storage_unavailable`, and `/readyz` not ready).",
    "schema": {"type": "integer", "minimum": 1},
}
UNAVAILABLE_DESCRIPTION = (
    "Service Unavailable: a dependency is down (`database_unavailable`, "
    "`storage_unavailable`: retry after `Retry-After` seconds), or this route's family or "
    "token verification is unavailable on this deployment."
)
LIVENESS = ("core", "/healthz")
LOCATION_HEADER = {
    "description": "Where the client (a browser) is sent.",
    "required": True,
    "schema": {"type": "string", "format": "uri-reference"},
}
RATE_LIMIT_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {
        "description": "Requests allowed in the window closest to running out.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in that window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until that window has room again.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Policy": {
        "description": "Every window of this route: `<amount>;w=<seconds>`, comma-separated.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
}
_RULE_ARGUMENT = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_]\w*)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>"
)
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "default": {"type": "string"},
    "string": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}


@dataclass(frozen=True, eq=False)
class Operation:
    """One documented operation: who owns it and how it was declared."""

    owner: str
    rule: Rule
    method: str
    declared: Endpoint


@dataclass(frozen=True)
class BuiltSpec:
    """The document, its serialised bytes and their ETag."""

    document: dict[str, Any]
    body: bytes
    etag: str


def openapi_path(rule: str) -> str:
    """``/users/<int:user_id>`` -> ``/users/{user_id}``."""
    return _RULE_ARGUMENT.sub(lambda m: "{" + m.group("name") + "}", rule)


def path_parameters(
    rule: str, converters: Mapping[str, type[BaseConverter]] | None = None
) -> list[dict[str, Any]]:
    """Path parameters of ``rule``, each typed by its converter.

    A converter class registered in the URL map (``converters``) may describe its
    values itself with an ``openapi_schema`` attribute (a JSON Schema dict, for
    example ``{"type": "string", "enum": [...]}``); otherwise the built-in
    converters' types apply and anything else is a string. A converter that also has
    an ``openapi_component`` name is one component schema of that name (see
    :func:`converter_components`), which its parameters refer to, so clients get one type
    for it however many routes take it.
    """
    parameters = []
    for match in _RULE_ARGUMENT.finditer(rule):
        converter = match.group("converter") or "default"
        name = match.group("name")
        converter_class = (converters or {}).get(converter)
        component = getattr(converter_class, "openapi_component", None)
        if component and getattr(converter_class, "openapi_schema", None):
            schema: dict[str, Any] = {"$ref": REF.format(model=component)}
        else:
            own = getattr(converter_class, "openapi_schema", None)
            schema = dict(own or _CONVERTER_SCHEMAS.get(converter, {"type": "string"}))
            schema["title"] = name.replace("_", " ").title()
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return parameters


def converter_components(
    rule: str, converters: Mapping[str, type[BaseConverter]] | None = None
) -> dict[str, dict[str, Any]]:
    """The component schemas the path converters of ``rule`` name (``openapi_component``)."""
    components = {}
    for match in _RULE_ARGUMENT.finditer(rule):
        converter_class = (converters or {}).get(match.group("converter") or "default")
        component = getattr(converter_class, "openapi_component", None)
        schema = getattr(converter_class, "openapi_schema", None)
        if component and schema:
            components[component] = {"title": component, **schema}
    return components


def operation_id(function_name: str, rule: str, method: str) -> str:
    """FastAPI's ``generate_unique_id``: ``read_user_users__user_id__get``."""
    return re.sub(r"\W", "_", f"{function_name}{openapi_path(rule)}") + f"_{method.lower()}"


class SpecComponent:
    """Makes an annotated type one named component of the spec (a ``$defs`` entry).

    Every field of that type then refers to it (``$ref``), so client generators make one
    type of it, shared by requests and responses, instead of one inline enum per field.
    """

    def __init__(self, name: str, description: str) -> None:
        self.name, self.description = name, description

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return {**handler(source), "ref": self.name}

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        target.update(title=self.name, description=self.description)
        return json_schema


class Components:
    """Component schemas with their owners; a name reused with other content conflicts."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}
        self.owners: dict[str, str] = {}

    def add(self, owner: str, name: str, schema: dict[str, Any]) -> None:
        existing = self.schemas.get(name)
        if existing is not None and existing != schema:
            raise ConflictError(
                f"component schema '{name}' is defined differently by plugin "
                f"'{self.owners[name]}' and plugin '{owner}'"
            )
        self.schemas.setdefault(name, schema)
        self.owners.setdefault(name, owner)


def build_spec(
    app: Quart,
    *,
    title: str,
    version: str,
    description: str,
    owners: dict[str, str],
    tags: list[dict[str, Any]],
    fragments: Iterable[tuple[str, dict[str, Any]]],
    requirements: Mapping[str, RouteRequirement] | None = None,
) -> BuiltSpec:
    """Assemble the document; ``owners`` maps blueprint names to plugin names.

    A route requirement with a ``security_scheme`` becomes a security scheme of its name,
    required together with the bearer token on the routes that declare it.
    """
    requirements = requirements or {}
    operations = _operations(app, owners)
    fragments = list(fragments)
    components = Components()
    core_models = TypeAdapter.json_schemas(
        [(m, "validation", TypeAdapter(m)) for m in (HTTPValidationError, ErrorResponse)],
        ref_template=REF,
    )[1]
    for name, schema in core_models.get("$defs", {}).items():
        components.add("core", name, _without_null_defaults(schema))
    for op in operations:
        for name, schema in converter_components(op.rule.rule, op.rule.map.converters).items():
            components.add(op.owner, name, schema)

    schemas_by_owner = {
        owner: _owner_schemas(components, owner, ops) for owner, ops in _group(operations).items()
    }

    spec = APISpec(
        title=title,
        version=version,
        openapi_version=OPENAPI_VERSION,
        info={"description": description, "license": LICENSE},
        servers=SERVERS,
    )
    spec.components.security_scheme(
        SECURITY_SCHEME,
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Firebase Authentication ID token: `Authorization: Bearer <token>`.",
        },
    )
    for tag in tags:
        spec.tag(tag)
    used = sorted({name for op in operations for name in op.declared.requires})
    for name in used:
        scheme = requirements[name].security_scheme
        if scheme is not None:
            spec.components.security_scheme(
                name, {"description": requirements[name].description, **scheme}
            )
    _merge_fragments(spec, components, fragments, tags, reserved=used)

    seen_ids: dict[str, str] = {}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        op_id = op.declared.operation_id or operation_id(op.declared.name, op.rule.rule, op.method)
        if op_id in seen_ids:
            raise ConflictError(
                f"operationId '{op_id}' is used by both plugin '{seen_ids[op_id]}' "
                f"and plugin '{op.owner}'"
            )
        seen_ids[op_id] = op.owner
        path = openapi_path(op.rule.rule)
        body_schema, response_schema, query_params, others = schemas_by_owner[op.owner][op]
        paths.setdefault(path, {})[op.method.lower()] = _operation(
            op, op_id, body_schema, response_schema, query_params, others, requirements
        )
    documented_by = {
        (path, method): seen_ids[operation["operationId"]]
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    for owner, fragment in fragments:
        for path, methods in fragment.get("paths", {}).items():
            for method, operation in methods.items():
                if (path, method) in documented_by:
                    raise ConflictError(
                        f"{method.upper()} {path} is documented by both "
                        f"plugin '{documented_by[path, method]}' and plugin '{owner}'"
                    )
                documented_by[path, method] = owner
                paths.setdefault(path, {})[method] = operation
    for path in sorted(paths):
        spec.path(path=path, operations=paths[path])
    unused = _unused_query_models(schemas_by_owner, components, paths)
    for name in sorted(set(components.schemas) - unused):
        spec.components.schema(name, components.schemas[name])
    headers = _referenced_headers(paths)
    for name in sorted(headers):
        spec.components.header(name, RATE_LIMIT_HEADERS[name])

    document = spec.to_dict()
    body = json.dumps(document, indent=2, sort_keys=False).encode() + b"\n"
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return BuiltSpec(document, body, etag)


def _without_null_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """Core's error models without ``"default": null``: a 422 item leaves ``ctx`` out when
    it has none, and a default would make typed clients (openapi-typescript) expect it."""
    properties = {
        name: {k: v for k, v in prop.items() if not (k == "default" and v is None)}
        for name, prop in schema.get("properties", {}).items()
    }
    return {**schema, "properties": properties} if properties else schema


def _operations(app: Quart, owners: dict[str, str]) -> list[Operation]:
    operations = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        view = app.view_functions[rule.endpoint]
        declared = declared_endpoint(view)
        owner = owners.get(rule.endpoint.rpartition(".")[0], "core")
        if declared is None:
            if rule.endpoint == "static":
                continue
            raise ConflictError(
                f"plugin '{owner}' serves {rule.rule} with handler '{rule.endpoint}' that is not "
                "declared with @endpoint, so the spec cannot describe it"
            )
        if not declared.include_in_schema:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations.append(Operation(owner, rule, method, declared))
    return operations


def _group(operations: list[Operation]) -> dict[str, list[Operation]]:
    grouped: dict[str, list[Operation]] = {}
    for op in operations:
        grouped.setdefault(op.owner, []).append(op)
    return grouped


def _owner_schemas(
    components: Components, owner: str, ops: list[Operation]
) -> dict[Operation, tuple[Any, Any, list[dict[str, Any]], dict[int, Any]]]:
    """JSON Schemas for one plugin's models, with its ``$defs`` added to components."""
    inputs: list[tuple[Any, JsonSchemaMode, TypeAdapter[Any]]] = []
    for op in ops:
        if op.declared.body is not None:
            inputs.append(((op, "body"), "validation", TypeAdapter(op.declared.body)))
        if op.declared.query is not None:
            inputs.append(((op, "query"), "validation", TypeAdapter(op.declared.query)))
        if op.declared.response is not None:
            adapter = op.declared.response_adapter or TypeAdapter(op.declared.response)
            inputs.append(((op, "response"), "serialization", adapter))
        for status, model in op.declared.responses:
            inputs.append(((op, status), "serialization", TypeAdapter(model)))
        for event, model in (op.declared.stream.events if op.declared.stream else {}).items():
            inputs.append(((op, "event", event), "serialization", TypeAdapter(model)))
    if not inputs:
        return {op: (None, None, [], {}) for op in ops}
    by_key, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)
    for name, schema in defs.get("$defs", {}).items():
        components.add(owner, name, schema)
    result = {}
    for op in ops:
        query_params = []
        if op.declared.query is not None:
            query_schema = by_key[((op, "query"), "validation")]
            query_params = _query_parameters(query_schema, defs.get("$defs", {}))
        result[op] = (
            by_key.get(((op, "body"), "validation")),
            _stream_schemas(op, by_key) or by_key.get(((op, "response"), "serialization")),
            query_params,
            {
                status: by_key[((op, status), "serialization")]
                for status, _ in op.declared.responses
            },
        )
    return result


def _stream_schemas(op: Operation, by_key: Mapping[Any, Any]) -> dict[str, Any] | None:
    """A streaming route's 200 content: ``text/event-stream`` and the JSON fallback.

    Before OpenAPI 3.2 (this document is 3.1), a sequential media type's ``schema``
    describes one item, here one event as it is on the wire: ``{event, id, data}`` with
    ``data`` the JSON text whose ``contentSchema`` is the event's model (a component). That
    is what 3.2 calls ``itemSchema``, and what 3.1 tools (schemathesis, Redocly, code
    generators) read. The ``application/json`` answer (``Accept: application/json``) is the
    same events in one document, ``data`` parsed.
    """
    stream = op.declared.stream
    if stream is None:
        return None

    def one_of(
        id_schema: dict[str, Any], data: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        variants = [
            {
                "type": "object",
                "title": f"{event} event",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": event},
                    "id": id_schema,
                    "data": data(by_key[((op, "event", event), "serialization")]),
                },
            }
            for event in stream.events
        ]
        return variants[0] if len(variants) == 1 else {"oneOf": variants}

    def as_text(model: dict[str, Any]) -> dict[str, Any]:
        return {"type": "string", "contentMediaType": "application/json", "contentSchema": model}

    names = ", ".join(f"`{event}`" for event in stream.events)
    described = f"{stream.description} " if stream.description else ""
    per_event = one_of({"type": "string"}, as_text)
    per_event["description"] = (
        f"{described}Server-Sent Events ({names}): each frame is `id:` (when the event has "
        "one), `event:` and one `data:` line holding the event's JSON; `: heartbeat` comment "
        "lines keep an idle stream open. This schema describes one event."
    )
    return {
        STREAM_MEDIA_TYPE: {"schema": per_event},
        "application/json": {
            "schema": {
                "type": "object",
                "description": "The finished stream as one document, for clients that "
                "cannot stream (`Accept: application/json`): the same events, in order.",
                "required": ["events"],
                "properties": {
                    "events": {
                        "type": "array",
                        "items": one_of(
                            {"anyOf": [{"type": "string"}, {"type": "null"}]}, lambda model: model
                        ),
                    }
                },
            }
        },
    }


def _references(value: Any, found: set[str]) -> set[str]:
    """The component schema names ``value`` refers to (directly)."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for item in value.values():
            _references(item, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, found)
    return found


def _unused_query_models(
    schemas_by_owner: Mapping[str, Mapping[Operation, tuple[Any, Any, Any, Any]]],
    components: Components,
    paths: Mapping[str, Any],
) -> set[str]:
    """Components of query models that nothing refers to once they are parameters.

    A query model is documented as one parameter per field, so its own component would
    be unused (and generators make an unused type of it), unless something refers to it.
    """
    candidates: set[str] = set()
    for ops in schemas_by_owner.values():
        for op in ops:
            if op.declared.query is not None:
                candidates.add(op.declared.query.__name__)
    candidates &= set(components.schemas)
    used: set[str] = set()
    pending = _references(paths, set())
    while pending:
        name = pending.pop()
        if name in used or name not in components.schemas:
            continue
        used.add(name)
        pending |= _references(components.schemas[name], set())
    for name, schema in components.schemas.items():
        if name not in candidates:  # a component kept for its own sake (a plugin's fragment)
            used |= _references(schema, set())
    return candidates - used


def _referenced_headers(paths: Mapping[str, Any]) -> set[str]:
    found = set()
    for methods in paths.values():
        for operation in methods.values():
            for response in operation.get("responses", {}).values():
                for header in response.get("headers", {}).values():
                    ref = header.get("$ref", "") if isinstance(header, dict) else ""
                    if ref.startswith("#/components/headers/"):
                        found.add(ref.rsplit("/", 1)[1])
    return found & set(RATE_LIMIT_HEADERS)


def _query_parameters(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _json_content(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": _json_content({"$ref": REF.format(model="ErrorResponse")}),
    }


def _operation(
    op: Operation,
    op_id: str,
    body_schema: Any,
    response_schema: Any,
    query_params: list[dict[str, Any]],
    others: dict[int, Any],
    requirements: Mapping[str, RouteRequirement],
) -> dict[str, Any]:
    declared = op.declared
    required = [requirements[name] for name in declared.requires]
    in_path = path_parameters(op.rule.rule, op.rule.map.converters)
    parameters = in_path + query_params
    success: dict[str, Any] = {"description": "Successful Response"}
    if declared.stream is not None:
        success["content"] = response_schema
    elif response_schema is not None:
        success["content"] = {declared.media_type: {"schema": response_schema}}
    elif declared.media_type != "application/json":
        success["content"] = {declared.media_type: {"schema": {"type": "string"}}}
    if 300 <= declared.status < 400:
        success["headers"] = {"Location": LOCATION_HEADER}
    if declared.headers:
        success["headers"] = {
            **success.get("headers", {}),
            **{
                name: {"description": text, "required": True, "schema": {"type": "string"}}
                for name, text in declared.headers
            },
        }
    responses: dict[str, Any] = {str(declared.status): success}
    error_statuses = set(declared.errors)
    for requirement in required:
        error_statuses.update(requirement.errors)
    if declared.auth != "public":
        error_statuses.update(SIGNED_IN_ERRORS)
    rate_limited = bool(declared.rate_limits)
    if rate_limited:
        error_statuses.add(429)
    if in_path:
        error_statuses.add(404)  # a path value its converter refuses matches no route
    if declared.auth == "admin" or declared.resolves_user:
        error_statuses.add(403)  # missing admin claim, or resolve_user refusing the caller
    if body_schema is not None:
        error_statuses.update({413, 415})
    if (op.owner, op.rule.rule) != LIVENESS:
        error_statuses.add(503)  # the database (or the disk) may be down
    for status in sorted(error_statuses):
        responses[str(status)] = _error(status)
    replaced: set[str] = set()
    for status, schema in others.items():
        content = {declared.media_type: {"schema": schema}}
        answered_by_core = responses.get(str(status)) if status in error_statuses else None
        if answered_by_core is not None and declared.media_type not in answered_by_core["content"]:
            # Core answers this status on this route too, as JSON (a rate limit, an outage):
            # a client may get either body, told apart by Content-Type.
            answered_by_core["content"] = {**answered_by_core["content"], **content}
            continue
        replaced.add(str(status))
        responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": content}
        if 300 <= status < 400:
            responses[str(status)]["headers"] = {"Location": LOCATION_HEADER}
    if "503" in responses:
        if "503" not in replaced:
            responses["503"]["description"] = UNAVAILABLE_DESCRIPTION
        responses["503"]["headers"] = {"Retry-After": UNAVAILABLE_HEADER}
    if rate_limited:
        _document_rate_limit(responses)
    if query_params or body_schema is not None:  # bad path values never match: 404
        responses["422"] = {
            "description": "Validation Error",
            "content": _json_content({"$ref": REF.format(model="HTTPValidationError")}),
        }
    operation: dict[str, Any] = {
        "tags": list(declared.tags or (op.owner,)),
        "summary": declared.summary or declared.name.replace("_", " ").title(),
        "operationId": op_id,
        "responses": dict(sorted(responses.items())),
    }
    if declared.description:
        operation["description"] = declared.description
    if parameters:
        operation["parameters"] = parameters
    if body_schema is not None:
        operation["requestBody"] = {"required": True, "content": _json_content(body_schema)}
    elif declared.raw_body:
        media = declared.raw_body_media_type or "application/octet-stream"
        operation["requestBody"] = {"required": True, "content": {media: {"schema": {}}}}
    schemes = [r.name for r in required if r.security_scheme is not None]
    if declared.auth != "public":
        operation["security"] = [{SECURITY_SCHEME: [], **{name: [] for name in schemes}}]
    elif schemes:
        operation["security"] = [{name: [] for name in schemes}]
    else:
        operation["security"] = []  # explicitly public: no token is sent, none is checked
    if required:
        notes = "\n".join(f"- **{r.name}**: {r.description}" for r in required)
        described = operation.get("description")
        operation["description"] = (f"{described}\n\n" if described else "") + f"Requires:\n{notes}"
    if declared.deprecated:
        operation["deprecated"] = True
    return operation


def _document_rate_limit(responses: dict[str, Any]) -> None:
    """``RateLimit-*`` on every documented response, and ``Retry-After`` on the 429."""
    usage = {
        name: {"$ref": HEADER_REF.format(name=name)}
        for name in RATE_LIMIT_HEADERS
        if name != "Retry-After"
    }
    for status, response in responses.items():
        if status == "429":
            response["description"] = "Too Many Requests: wait `Retry-After` seconds."
            response["headers"] = {
                "Retry-After": {"$ref": HEADER_REF.format(name="Retry-After")},
                **usage,
            }
        elif status.startswith(("2", "3")):
            response["headers"] = {**response.get("headers", {}), **usage}


def _merge_fragments(
    spec: APISpec,
    components: Components,
    fragments: list[tuple[str, dict[str, Any]]],
    tags: list[dict[str, Any]],
    reserved: Iterable[str] = (),
) -> None:
    known_tags = {tag["name"]: "core (one tag per family)" for tag in tags}
    schemes: dict[str, tuple[str, Any]] = {SECURITY_SCHEME: ("core", None)}
    schemes.update({name: ("core", None) for name in reserved})
    sections: dict[str, dict[str, tuple[str, Any]]] = {"securitySchemes": schemes}
    for owner, fragment in fragments:
        for key in fragment:
            if key not in ("tags", "components", "paths"):
                raise ConflictError(f"plugin '{owner}': spec fragment key '{key}' is not supported")
        for tag in fragment.get("tags", []):
            if tag.get("name") in known_tags:
                raise ConflictError(
                    f"plugin '{owner}': spec fragment tag '{tag.get('name')}' is already "
                    f"defined by {known_tags[tag.get('name')]}"
                )
            known_tags[tag["name"]] = f"plugin '{owner}'"
            spec.tag(tag)
        for section, items in fragment.get("components", {}).items():
            if section != "schemas" and section not in _COMPONENT_METHODS:
                raise ConflictError(
                    f"plugin '{owner}': component section '{section}' is not supported"
                )
            for name, content in items.items():
                if section == "schemas":
                    components.add(owner, name, content)
                    continue
                known = sections.setdefault(section, {})
                if name in known and known[name][1] != content:
                    first = known[name][0]
                    raise ConflictError(
                        f"component {section} '{name}' is defined differently by "
                        f"{'core' if first == 'core' else f'plugin {first!r}'} and plugin '{owner}'"
                    )
                known[name] = (owner, content)
    for section, items in sections.items():
        for name, (owner, content) in sorted(items.items()):
            if owner != "core":
                getattr(spec.components, _COMPONENT_METHODS[section])(name, content)


_COMPONENT_METHODS = {
    "securitySchemes": "security_scheme",
    "parameters": "parameter",
    "responses": "response",
    "examples": "example",
    "headers": "header",
}
