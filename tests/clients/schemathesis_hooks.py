"""Schemathesis hooks for tests/test_contract.py (``SCHEMATHESIS_HOOKS=<this file>``).

The contract types a time zone as an IANA-shaped name (a pattern, a length): the zone
database is the server's, not the contract's, and a name it does not know is a 422. Fuzzed
with the pattern alone, nearly every "valid" name would be one of those 422s, which the
positive-data check reports as a mismatch; so the run fuzzes time zones from the zone
database this machine's server uses, as the server's own validator does. Phone numbers
likewise: the contract types them as E.164-shaped text, the server asks the numbering plan
(``phonenumbers``), so the run fuzzes them from that library's example numbers. GPX uploads
are real tracks (tests/support/schemathesis_gpx.py registers the media type's strategy).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import phonenumbers
import schemathesis

import tests.support.schemathesis_gpx  # noqa: F401 (registers application/gpx+xml bodies)

ZONES = sorted(available_timezones() - {"Factory", "localtime"})
PHONE_NUMBERS = sorted(
    phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    if (number := phonenumbers.example_number(region)) is not None
)
# A string property of this name, typed only by a pattern, is fuzzed from these values.
VALUES = {"timezone": ZONES, "phone_number": PHONE_NUMBERS}


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    for schema in raw_schema.get("components", {}).get("schemas", {}).values():
        for name, values in VALUES.items():
            field = schema.get("properties", {}).get(name)
            if field and field.get("type") == "string" and "pattern" in field:
                field.setdefault("enum", values)
