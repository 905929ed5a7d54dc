"""What one OpenAPI document serves that another does not, and what of it breaks clients.

Pure functions over two documents (parsed JSON): :func:`diff_specs` lists every
difference in operations, parameters, request bodies, responses, security and component
schemas as :class:`Change` items, each with a severity for clients written against the
*old* document:

- ``breaking``: such a client may now fail. An operation removed; a required parameter,
  request field or request body added (or made required); a query parameter removed (query
  models refuse unknown parameters); a value a request accepted refused (enum narrowed,
  ``null`` refused, a bound tightened, a pattern changed, a type narrowed); a response field
  removed or no longer required, a response value now ``null``, a response type changed;
  a success status, response media type or required response header removed; a security
  requirement the old credentials do not meet.
- ``warning``: the wire contract holds, but typed clients may notice: a response enum
  with new values (generated clients with closed enums refuse unknown values).
- ``info``: anything else (additions, removals nobody relied on, error statuses).

``imperfect openapi --diff`` (core/cli.py) prints :func:`render` of the result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["breaking", "warning", "info"]
Direction = Literal["request", "response"]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SECTIONS = ("operation", "security", "parameter", "request", "response", "component")
_SECTION_TITLES = {
    "operation": "Operations",
    "security": "Security",
    "parameter": "Parameters",
    "request": "Request bodies",
    "response": "Responses",
    "component": "Components",
}
_RANK: dict[str, int] = {"info": 0, "warning": 1, "breaking": 2}
_SYMBOLS = {"added": "+", "removed": "-", "changed": "~"}
_UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
_LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")
_TEMPLATE = re.compile(r"\{[^}/]+\}")


@dataclass(frozen=True)
class Change:
    """One difference between the two documents."""

    section: str  # one of SECTIONS
    action: Literal["added", "removed", "changed"]
    where: str  # "GET /users/me", "GET /users/me query limit", "component Sport"
    detail: str = ""
    severity: Severity = "info"

    @property
    def breaking(self) -> bool:
        return self.severity == "breaking"

    def line(self) -> str:
        tag = "" if self.severity == "info" else f"  [{self.severity}]"
        detail = f": {self.detail}" if self.detail else ""
        return f"{_SYMBOLS[self.action]} {self.where}{detail}{tag}"


def has_breaking(changes: Iterable[Change]) -> bool:
    return any(change.breaking for change in changes)


def render(changes: list[Change], old_label: str, new_label: str) -> str:
    """The report ``imperfect openapi --diff`` prints: grouped by section, then a summary."""
    lines = [f"--- {old_label}", f"+++ {new_label}"]
    if not changes:
        return "\n".join([*lines, "no differences"]) + "\n"
    for section in SECTIONS:
        items = [c for c in changes if c.section == section]
        if items:
            lines.append(f"{_SECTION_TITLES[section]}:")
            lines.extend(f"  {item.line()}" for item in items)
    breaking = sum(c.severity == "breaking" for c in changes)
    warnings = sum(c.severity == "warning" for c in changes)
    lines.append(
        f"{len(changes)} change(s): {breaking} breaking, {warnings} warning(s) "
        "for clients of the old document"
    )
    return "\n".join(lines) + "\n"


def diff_specs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every difference from ``old`` to ``new``, judged for clients written against ``old``."""
    context = _Context(old, new)
    changes: list[Change] = []
    old_ops, new_ops = _operations(old), _operations(new)
    for key in sorted(old_ops.keys() - new_ops.keys()):
        label = _label(old_ops[key])
        changes.append(Change("operation", "removed", label, "", "breaking"))
    for key in sorted(new_ops.keys() - old_ops.keys()):
        changes.append(Change("operation", "added", _label(new_ops[key])))
    for key in sorted(old_ops.keys() & new_ops.keys()):
        changes += _operation_changes(context, old_ops[key], new_ops[key])
    changes += _component_changes(context)
    return _deduplicated(changes)


# --- operations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Op:
    path: str
    method: str
    operation: Mapping[str, Any]
    path_item: Mapping[str, Any]


@dataclass
class _Context:
    old: Mapping[str, Any]
    new: Mapping[str, Any]
    seen: set[tuple[str, str, str]] = field(default_factory=set)


def _operations(document: Mapping[str, Any]) -> dict[tuple[str, str], _Op]:
    """Operations keyed by (path with its parameters unnamed, method): a renamed path
    parameter is the same operation."""
    found = {}
    for path, item in (document.get("paths") or {}).items():
        for method in METHODS:
            if isinstance(item.get(method), Mapping):
                found[_TEMPLATE.sub("{}", path), method] = _Op(path, method, item[method], item)
    return found


def _label(op: _Op) -> str:
    return f"{op.method.upper()} {op.path}"


def _operation_changes(context: _Context, old: _Op, new: _Op) -> list[Change]:
    where = _label(new)
    changes = _security_changes(context, old, new, where)
    changes += _parameter_changes(context, old, new, where)
    changes += _request_body_changes(context, old, new, where)
    changes += _response_changes(context, old, new, where)
    if not old.operation.get("deprecated") and new.operation.get("deprecated"):
        changes.append(Change("operation", "changed", where, "deprecated", "warning"))
    return changes


def _security(document: Mapping[str, Any], op: _Op) -> list[frozenset[str]]:
    requirements = op.operation.get("security", document.get("security", []))
    if not requirements:
        return [frozenset()]
    return [frozenset(requirement) for requirement in requirements]


def _security_changes(context: _Context, old: _Op, new: _Op, where: str) -> list[Change]:
    before, after = _security(context.old, old), _security(context.new, new)
    if set(before) == set(after):
        return []
    # A client meeting an old alternative still gets in when a new one needs no more.
    kept = all(any(b <= a for b in after) for a in before)
    text = f"security {_alternatives(before)} -> {_alternatives(after)}"
    return [Change("security", "changed", where, text, "info" if kept else "breaking")]


def _alternatives(requirements: list[frozenset[str]]) -> str:
    return " or ".join("+".join(sorted(r)) if r else "none" for r in requirements)


def _parameters(document: Mapping[str, Any], op: _Op) -> dict[tuple[str, str], dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    position = 0
    for source in (op.path_item.get("parameters", []), op.operation.get("parameters", [])):
        for raw in source:
            parameter = _resolve(document, raw)
            location = parameter.get("in", "query")
            name = parameter.get("name", "")
            if location == "path":  # path parameters are positional on the wire
                names = _TEMPLATE.findall(op.path)
                if f"{{{name}}}" in names:
                    name = f"#{names.index('{' + name + '}')}"
                else:
                    name, position = f"#{position}", position + 1
            merged[location, name] = parameter
    return merged


def _parameter_changes(context: _Context, old: _Op, new: _Op, where: str) -> list[Change]:
    changes = []
    before, after = _parameters(context.old, old), _parameters(context.new, new)
    for key in sorted(before.keys() - after.keys()):
        location, _ = key
        name = before[key].get("name", "")
        breaking = location == "query"
        detail = "clients that send it may be refused" if breaking else ""
        changes.append(
            Change(
                "parameter",
                "removed",
                f"{where} {location} {name}",
                detail,
                "breaking" if breaking else "info",
            )
        )
    for key in sorted(after.keys() - before.keys()):
        location, _ = key
        parameter = after[key]
        required = bool(parameter.get("required"))
        changes.append(
            Change(
                "parameter",
                "added",
                f"{where} {location} {parameter.get('name', '')}",
                "required" if required else "optional",
                "breaking" if required else "info",
            )
        )
    for key in sorted(before.keys() & after.keys()):
        old_param, new_param = before[key], after[key]
        label = f"{where} {key[0]} {new_param.get('name', '')}"
        if not old_param.get("required") and new_param.get("required"):
            changes.append(Change("parameter", "changed", label, "now required", "breaking"))
        elif old_param.get("required") and not new_param.get("required"):
            changes.append(Change("parameter", "changed", label, "now optional"))
        changes += _schema_changes(
            context,
            old_param.get("schema", {}),
            new_param.get("schema", {}),
            label,
            "request",
            "parameter",
        )
    return changes


def _request_body_changes(context: _Context, old: _Op, new: _Op, where: str) -> list[Change]:
    before = _resolve(context.old, old.operation.get("requestBody"))
    after = _resolve(context.new, new.operation.get("requestBody"))
    label = f"{where} request body"
    if not before and not after:
        return []
    if not after:
        return [Change("request", "removed", label)]
    if not before:
        required = bool(after.get("required"))
        severity: Severity = "breaking" if required else "info"
        return [Change("request", "added", label, "required" if required else "", severity)]
    changes = []
    if not before.get("required") and after.get("required"):
        changes.append(Change("request", "changed", label, "now required", "breaking"))
    old_content, new_content = before.get("content", {}), after.get("content", {})
    for media in sorted(old_content.keys() - new_content.keys()):
        changes.append(
            Change("request", "removed", f"{label} {media}", "no longer accepted", "breaking")
        )
    for media in sorted(new_content.keys() - old_content.keys()):
        changes.append(Change("request", "added", f"{label} {media}"))
    for media in sorted(old_content.keys() & new_content.keys()):
        changes += _schema_changes(
            context,
            old_content[media].get("schema", {}),
            new_content[media].get("schema", {}),
            label,
            "request",
            "request",
        )
    return changes


def _is_success(status: str) -> bool:
    return status[:1] in ("2", "3")


def _response_changes(context: _Context, old: _Op, new: _Op, where: str) -> list[Change]:
    changes = []
    before = old.operation.get("responses", {})
    after = new.operation.get("responses", {})
    for status in sorted(before.keys() - after.keys()):
        success = _is_success(status)
        changes.append(
            Change(
                "response",
                "removed",
                f"{where} {status}",
                "a success status clients expect" if success else "",
                "breaking" if success else "info",
            )
        )
    for status in sorted(after.keys() - before.keys()):
        changes.append(Change("response", "added", f"{where} {status}"))
    for status in sorted(before.keys() & after.keys()):
        old_response = _resolve(context.old, before[status])
        new_response = _resolve(context.new, after[status])
        label = f"{where} {status}"
        success = _is_success(status)
        old_content = old_response.get("content", {})
        new_content = new_response.get("content", {})
        for media in sorted(old_content.keys() - new_content.keys()):
            severity: Severity = "breaking" if success else "info"
            changes.append(Change("response", "removed", f"{label} {media}", "", severity))
        for media in sorted(new_content.keys() - old_content.keys()):
            changes.append(Change("response", "added", f"{label} {media}"))
        for media in sorted(old_content.keys() & new_content.keys()):
            found = _schema_changes(
                context,
                old_content[media].get("schema", {}),
                new_content[media].get("schema", {}),
                label,
                "response",
                "response",
            )
            if not success:  # what an error body looks like is informative only
                found = [_at_most(change, "info") for change in found]
            changes += found
        old_headers = old_response.get("headers", {})
        new_headers = new_response.get("headers", {})
        gone = sorted(old_headers.keys() - new_headers.keys())
        if gone:
            relied_on = success and any(
                _resolve(context.old, old_headers[name]).get("required") for name in gone
            )
            changes.append(
                Change(
                    "response",
                    "removed",
                    label,
                    f"header(s) {', '.join(gone)}",
                    "breaking" if relied_on else "info",
                )
            )
        added = sorted(new_headers.keys() - old_headers.keys())
        if added:
            changes.append(Change("response", "added", label, f"header(s) {', '.join(added)}"))
    return changes


# --- components ----------------------------------------------------------------------------


def _component_changes(context: _Context) -> list[Change]:
    before = _schemas(context.old)
    after = _schemas(context.new)
    usage = _usage(context.old)
    for name, directions in _usage(context.new).items():
        usage.setdefault(name, set()).update(directions)
    changes = [
        Change("component", "removed", f"component {name}") for name in sorted(before - after)
    ]
    changes += [
        Change("component", "added", f"component {name}") for name in sorted(after - before)
    ]
    for name in sorted(before & after):
        old_schema = context.old["components"]["schemas"][name]
        new_schema = context.new["components"]["schemas"][name]
        directions = usage.get(name) or set()
        found: list[Change] = []
        both: tuple[Direction, ...] = ("request", "response")
        for direction in [d for d in both if d in directions or not directions]:
            found += _schema_changes(
                context, old_schema, new_schema, f"component {name}", direction, "component"
            )
        if not directions:  # used by no operation: nobody can break
            found = [_at_most(change, "info") for change in found]
        changes += found
    return changes


def _schemas(document: Mapping[str, Any]) -> set[str]:
    return set((document.get("components") or {}).get("schemas") or {})


def _usage(document: Mapping[str, Any]) -> dict[str, set[str]]:
    """Which component schemas requests and responses use (directly or through others)."""
    schemas = (document.get("components") or {}).get("schemas") or {}
    roots: dict[str, set[str]] = {"request": set(), "response": set()}
    for op in _operations(document).values():
        for raw in [*op.path_item.get("parameters", []), *op.operation.get("parameters", [])]:
            _refs(_resolve(document, raw), roots["request"])
        _refs(_resolve(document, op.operation.get("requestBody")), roots["request"])
        for response in op.operation.get("responses", {}).values():
            _refs(_resolve(document, response), roots["response"])
    usage: dict[str, set[str]] = {}
    for direction, pending in roots.items():
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            if name in seen or name not in schemas:
                continue
            seen.add(name)
            usage.setdefault(name, set()).add(direction)
            pending |= _refs(schemas[name], set())
    return usage


def _refs(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, Mapping):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for item in value.values():
            _refs(item, found)
    elif isinstance(value, list):
        for item in value:
            _refs(item, found)
    return found


# --- schemas -------------------------------------------------------------------------------


def _schema_changes(
    context: _Context,
    old: Any,
    new: Any,
    where: str,
    direction: Direction,
    section: str,
    depth: int = 0,
) -> list[Change]:
    """Differences between two schemas as ``direction`` sees them.

    Two equal ``$ref`` are not followed (the component is compared once, under
    Components); different ones, or a ``$ref`` and an inline schema, are compared by
    content, so moving an inline enum into a component of the same values is no change.
    """
    if not isinstance(old, Mapping) or not isinstance(new, Mapping) or depth > 40:
        return []
    old_ref, new_ref = old.get("$ref"), new.get("$ref")
    if old_ref or new_ref:
        if old_ref == new_ref:
            return []
        key = (str(old_ref), str(new_ref), direction)
        if key in context.seen:
            return []
        context.seen.add(key)
        try:
            return _schema_changes(
                context,
                _resolve(context.old, old),
                _resolve(context.new, new),
                where,
                direction,
                section,
                depth=depth + 1,
            )
        finally:
            context.seen.discard(key)
    changes: list[Change] = []

    def note(detail: str, severity: Severity = "info", at: str = "") -> None:
        changes.append(Change(section, "changed", where + at, detail, severity))

    old_core, old_null = _without_null(old)
    new_core, new_null = _without_null(new)
    if old_null and not new_null:
        note(
            "null no longer accepted" if direction == "request" else "never null now",
            "breaking" if direction == "request" else "info",
        )
    elif new_null and not old_null:
        note(
            "null accepted" if direction == "request" else "may now be null",
            "info" if direction == "request" else "breaking",
        )
    if old_core is not old or new_core is not new:
        return changes + _schema_changes(
            context, old_core, new_core, where, direction, section, depth=depth + 1
        )
    changes += _union_changes(context, old, new, where, direction, section, depth)
    changes += _type_changes(old, new, where, direction, section)
    changes += _enum_changes(old, new, where, direction, section)
    if direction == "request":
        changes += _constraint_changes(old, new, where, section)
    changes += _object_changes(context, old, new, where, direction, section, depth)
    if isinstance(old.get("items"), Mapping) and isinstance(new.get("items"), Mapping):
        changes += _schema_changes(
            context, old["items"], new["items"], where + "[]", direction, section, depth=depth + 1
        )
    return changes


def _without_null(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """``schema`` without its ``null`` alternative, and whether it had one."""
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        rest = [t for t in types if t != "null"]
        stripped = {**schema, "type": rest[0] if len(rest) == 1 else rest}
        return stripped, True
    for keyword in ("anyOf", "oneOf"):
        variants = schema.get(keyword)
        if isinstance(variants, list) and {"type": "null"} in variants:
            rest = [v for v in variants if v != {"type": "null"}]
            outer = {k: v for k, v in schema.items() if k != keyword}
            if len(rest) == 1 and isinstance(rest[0], Mapping):
                return {**outer, **rest[0]}, True
            return {**outer, keyword: rest}, True
    if schema.get("enum") and None in schema["enum"]:
        return {**schema, "enum": [v for v in schema["enum"] if v is not None]}, True
    return schema, False


def _union_changes(
    context: _Context,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    where: str,
    direction: Direction,
    section: str,
    depth: int,
) -> list[Change]:
    for keyword in ("anyOf", "oneOf"):
        before, after = old.get(keyword), new.get(keyword)
        if not isinstance(before, list) and not isinstance(after, list):
            continue
        before, after = before or [old], after or [new]
        if len(before) == len(after):
            changes = []
            for index, (a, b) in enumerate(zip(before, after, strict=True)):
                changes += _schema_changes(
                    context,
                    a,
                    b,
                    f"{where}({keyword}[{index}])",
                    direction,
                    section,
                    depth=depth + 1,
                )
            return changes
        fewer = len(after) < len(before)
        narrowed = fewer if direction == "request" else not fewer
        return [
            Change(
                section,
                "changed",
                where,
                f"{keyword} alternatives {len(before)} -> {len(after)}",
                "breaking" if narrowed else "info",
            )
        ]
    return []


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    types = schema.get("type")
    if types is None:
        return None
    found = set(types) if isinstance(types, list) else {types}
    if "number" in found:
        found.add("integer")  # every integer is a number
    return found


def _type_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], where: str, direction: Direction, section: str
) -> list[Change]:
    before, after = _types(old), _types(new)
    if before == after or (before is None and after is None):
        return []
    if direction == "request":
        kept = after is None or (before is not None and before <= after)
    else:
        kept = after is not None and before is not None and after <= before
    text = f"type {_type_text(old)} -> {_type_text(new)}"
    return [Change(section, "changed", where, text, "info" if kept else "breaking")]


def _type_text(schema: Mapping[str, Any]) -> str:
    types = schema.get("type")
    if types is None:
        return "any"
    return "|".join(types) if isinstance(types, list) else str(types)


def _enum(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _enum_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], where: str, direction: Direction, section: str
) -> list[Change]:
    before, after = _enum(old), _enum(new)
    if before is None and after is None:
        return []
    changes = []
    if before is not None and after is not None:
        removed = [v for v in before if v not in after]
        added = [v for v in after if v not in before]
        if removed:
            changes.append(
                Change(
                    section,
                    "changed",
                    where,
                    f"enum narrowed: {_values(removed)} "
                    + ("no longer accepted" if direction == "request" else "no longer returned"),
                    "breaking" if direction == "request" else "info",
                )
            )
        if added:
            changes.append(
                Change(
                    section,
                    "changed",
                    where,
                    f"enum widened: {_values(added)} "
                    + (
                        "accepted"
                        if direction == "request"
                        else "may be returned (closed enums in typed clients refuse them)"
                    ),
                    "info" if direction == "request" else "warning",
                )
            )
    elif after is not None:
        changes.append(
            Change(
                section,
                "changed",
                where,
                f"now an enum of {_values(after)}",
                "breaking" if direction == "request" else "info",
            )
        )
    else:
        changes.append(
            Change(
                section,
                "changed",
                where,
                "no longer an enum",
                "info" if direction == "request" else "warning",
            )
        )
    return changes


def _values(values: list[Any]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def _constraint_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], where: str, section: str
) -> list[Change]:
    """Bounds, patterns and formats a request must now meet that it need not before.

    When the old schema was an enum, a new constraint every old value meets narrows
    nothing (an enum of names becoming a pattern that fits them all, for example).
    """
    changes = []
    old_values = _enum(old)

    def narrowed(keyword: str, bound: Any) -> Severity:
        if old_values is not None and all(_meets(v, keyword, bound) for v in old_values):
            return "info"
        return "breaking"

    for keyword in _UPPER_BOUNDS:
        a, b = old.get(keyword), new.get(keyword)
        if b is not None and (a is None or b < a):
            changes.append(
                Change(section, "changed", where, f"{keyword} {a} -> {b}", narrowed(keyword, b))
            )
        elif a is not None and (b is None or b > a):
            changes.append(Change(section, "changed", where, f"{keyword} {a} -> {b}"))
    for keyword in _LOWER_BOUNDS:
        a, b = old.get(keyword), new.get(keyword)
        if b is not None and (a is None or b > a):
            changes.append(
                Change(section, "changed", where, f"{keyword} {a} -> {b}", narrowed(keyword, b))
            )
        elif a is not None and (b is None or b < a):
            changes.append(Change(section, "changed", where, f"{keyword} {a} -> {b}"))
    for keyword in ("pattern", "format"):
        a, b = old.get(keyword), new.get(keyword)
        if a != b:
            severity = "info" if b is None else narrowed(keyword, b)
            changes.append(Change(section, "changed", where, f"{keyword} {a} -> {b}", severity))
    return changes


def _meets(value: Any, keyword: str, bound: Any) -> bool:
    """Whether one value satisfies one JSON Schema constraint (an unknown one: no)."""
    try:
        if keyword == "pattern":
            return isinstance(value, str) and re.search(bound, value) is not None
        if keyword not in _UPPER_BOUNDS and keyword not in _LOWER_BOUNDS:
            return False
        measure = value if keyword.endswith(("imum",)) else len(value)
        if keyword.startswith("exclusiveM"):
            return bool(measure < bound if "Max" in keyword else measure > bound)
        return bool(measure <= bound if keyword.startswith("max") else measure >= bound)
    except (TypeError, re.error):
        return False


def _object_changes(
    context: _Context,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    where: str,
    direction: Direction,
    section: str,
    depth: int,
) -> list[Change]:
    changes = []
    before = old.get("properties") or {}
    after = new.get("properties") or {}
    old_required = set(old.get("required") or [])
    new_required = set(new.get("required") or [])
    closed = new.get("additionalProperties") is False
    for name in sorted(before.keys() - after.keys()):
        severity: Severity = "breaking"
        if direction == "response":
            detail = "response field removed"
        elif closed:
            detail = "request field removed: sending it is refused"
        else:
            detail, severity = "request field removed", "info"
        changes.append(Change(section, "removed", f"{where}.{name}", detail, severity))
    for name in sorted(after.keys() - before.keys()):
        required = name in new_required
        if direction == "request" and required:
            changes.append(
                Change(section, "added", f"{where}.{name}", "new required field", "breaking")
            )
        else:
            changes.append(
                Change(section, "added", f"{where}.{name}", "required" if required else "optional")
            )
    for name in sorted(before.keys() & after.keys()):
        label = f"{where}.{name}"
        if direction == "request" and name in new_required - old_required:
            changes.append(Change(section, "changed", label, "now required", "breaking"))
        if direction == "response" and name in old_required - new_required:
            changes.append(
                Change(section, "changed", label, "no longer always present", "breaking")
            )
        changes += _schema_changes(
            context, before[name], after[name], label, direction, section, depth=depth + 1
        )
    old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
        changes += _schema_changes(
            context, old_extra, new_extra, where + "{}", direction, section, depth=depth + 1
        )
    elif direction == "request" and old_extra is not False and new_extra is False and before:
        changes.append(Change(section, "changed", where, "unknown fields now refused", "breaking"))
    return changes


# --- helpers -------------------------------------------------------------------------------


def _resolve(document: Mapping[str, Any], value: Any, depth: int = 0) -> dict[str, Any]:
    """``value`` with a local ``$ref`` followed (to a dict; ``{}`` when it leads nowhere)."""
    if not isinstance(value, Mapping):
        return {}
    ref = value.get("$ref")
    if not isinstance(ref, str) or depth > 20:
        return dict(value)
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        target = target.get(part) if isinstance(target, Mapping) else None
    siblings = {k: v for k, v in value.items() if k != "$ref"}
    resolved = _resolve(document, target, depth + 1)
    return {**resolved, **siblings} if resolved else {}


def _at_most(change: Change, severity: Severity) -> Change:
    if _RANK[change.severity] <= _RANK[severity]:
        return change
    return Change(change.section, change.action, change.where, change.detail, severity)


def _deduplicated(changes: list[Change]) -> list[Change]:
    """One change per (section, action, where, detail), at its highest severity."""
    best: dict[tuple[str, str, str, str], Change] = {}
    for change in changes:
        key = (change.section, change.action, change.where, change.detail)
        if key not in best or _RANK[change.severity] > _RANK[best[key].severity]:
            best[key] = change
    return list(best.values())
