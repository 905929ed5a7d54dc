"""``imperfect events import FILE`` and ``imperfect events export``: the catalogue as CSV or
JSON, in and out. An import is idempotent by each row's ``source_id``; every rejected row is
reported with its line and the reason, and the rest is imported.

JSON is an array of objects with the fields of ``EventIn`` (what ``export`` writes).
CSV has one event a row with the columns of :data:`CSV_COLUMNS`; ``distances`` is
``km[:label]`` items separated by ``;`` (``42.195:Marathon;21.0975:Half``) and
``translations`` is optional JSON (``{"fr": {"name": "..."}}``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from plugins.events import service
from plugins.events.schemas import EventIn

CSV_COLUMNS = (
    "source_id",
    "name",
    "description",
    "sport",
    "distances",
    "date",
    "start_time",
    "timezone",
    "place_name",
    "country",
    "lat",
    "lng",
    "organiser_url",
    "default_language",
    "translations",
)


@dataclass
class Report:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.rejected)


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "row"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def json_rows(text: str) -> Iterator[tuple[int, Any]]:
    """``(line, item)`` for each item of a JSON array, ``line`` where the item starts."""
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if position >= len(text) or text[position] != "[":
        raise ValueError("a JSON import is an array of events")
    position = _skip(text, position + 1)
    if position < len(text) and text[position] == "]":
        return
    while True:
        line = text.count("\n", 0, position) + 1
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise ValueError(f"line {error.lineno}: invalid JSON: {error.msg}") from error
        yield line, item
        position = _skip(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            return
        raise ValueError(f"line {text.count(chr(10), 0, position) + 1}: expected ',' or ']'")


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _number(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value  # left as text: validation says what is wrong with it


def csv_item(row: dict[str, Any]) -> Any:
    """A CSV row as the JSON object an import validates."""
    unknown = set(row) - set(CSV_COLUMNS) - {None}
    if unknown:
        raise ValueError(f"unknown column(s): {', '.join(sorted(str(u) for u in unknown))}")
    if None in row:
        raise ValueError("more values than columns")
    distances = []
    for part in (row.get("distances") or "").split(";"):
        if part.strip():
            km, _, label = part.partition(":")
            distances.append({"km": _number(km.strip()), "label": label.strip()})
    translations: Any = {}
    if (row.get("translations") or "").strip():
        try:
            translations = json.loads(row["translations"])
        except ValueError as error:
            raise ValueError(f"translations: not JSON ({error})") from error
    item: dict[str, Any] = {
        "name": row.get("name") or "",
        "description": row.get("description") or "",
        "sport": row.get("sport") or "",
        "distances": distances,
        "date": row.get("date") or "",
        "start_time": row.get("start_time") or "",
        "timezone": row.get("timezone") or "",
        "place": {
            "name": row.get("place_name") or "",
            "country": row.get("country") or "",
            "lat": _number(row.get("lat") or ""),
            "lng": _number(row.get("lng") or ""),
        },
        "organiser_url": row.get("organiser_url") or None,
        "default_language": row.get("default_language") or "",
        "translations": translations,
    }
    if row.get("source_id"):
        item["source_id"] = row["source_id"]
    return item


def csv_rows(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "name" not in reader.fieldnames:
        raise ValueError(f"a CSV import starts with a header: {','.join(CSV_COLUMNS)}")
    for row in reader:
        line = reader.line_num
        try:
            yield line, csv_item(row)
        except ValueError as error:
            yield line, error


def rows_of(text: str, fmt: str) -> list[tuple[int, Any]]:
    return list(json_rows(text) if fmt == "json" else csv_rows(text))


async def import_rows(rows: list[tuple[int, Any]], progress: Any = None) -> Report:
    report = Report()
    seen: dict[str, int] = {}
    for line, item in rows:
        try:
            if isinstance(item, Exception):
                raise ValueError(str(item))
            event = EventIn.model_validate_json(json.dumps(item))
            if not event.source_id:
                raise ValueError("source_id: required to import (imports are idempotent by it)")
            if event.source_id in seen:
                raise ValueError(
                    f"source_id: '{event.source_id}' is also on line {seen[event.source_id]}"
                )
            seen[event.source_id] = line
            outcome = await service.import_event(event)
            setattr(report, outcome, getattr(report, outcome) + 1)
        except ValidationError as error:
            report.rejected.append((line, _reason(error)))
        except ValueError as error:
            report.rejected.append((line, str(error)))
        if progress is not None:
            progress(1)
    return report


def to_csv(events: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for event in events:
        writer.writerow(
            {
                "source_id": event["source_id"] or "",
                "name": event["name"],
                "description": event["description"],
                "sport": event["sport"],
                "distances": ";".join(
                    f"{d['km']!r}:{d['label']}" if d["label"] else f"{d['km']!r}"
                    for d in event["distances"]
                ),
                "date": event["date"],
                "start_time": event["start_time"],
                "timezone": event["timezone"],
                "place_name": event["place"]["name"],
                "country": event["place"]["country"],
                "lat": repr(event["place"]["lat"]),
                "lng": repr(event["place"]["lng"]),
                "organiser_url": event["organiser_url"] or "",
                "default_language": event["default_language"],
                "translations": json.dumps(event["translations"], ensure_ascii=False)
                if event["translations"]
                else "",
            }
        )
    return out.getvalue()
