"""Schemathesis hooks for tests/test_contract.py (``SCHEMATHESIS_HOOKS=<this file>``).

The contract types a time zone as an IANA-shaped name (a pattern, a length): the zone
database is the server's, not the contract's, and a name it does not know is a 422. Fuzzed
with the pattern alone, nearly every "valid" name would be one of those 422s, which the
positive-data check reports as a mismatch; so the run fuzzes time zones from the zone
database this machine's server uses, as the server's own validator does.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

import schemathesis

ZONES = sorted(available_timezones() - {"Factory", "localtime"})


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    for schema in raw_schema.get("components", {}).get("schemas", {}).values():
        zone = schema.get("properties", {}).get("timezone")
        if zone and zone.get("type") == "string" and "pattern" in zone and "enum" not in zone:
            zone["enum"] = ZONES
