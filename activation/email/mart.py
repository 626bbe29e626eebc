"""What the email sink reads: ``mart_email_targets``' columns and segments, and a mart value as
template text."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from peak.model.manifest import public_columns

MART = "mart_email_targets"
#: The mart's columns, from its dbt contract (a public model): what templates may use.
MART_COLUMNS = tuple(public_columns(MART))
REQUIRED_COLUMNS = ("user_id", "email", "segment")
SEGMENTS = ("at_risk", "churned")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def format_value(value: Any) -> str:
    """A mart value as template text: dates as ``3 November 2026``, numbers plainly, None as
    ""; control characters (a newline in a class name) become one space."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return f"{value.day} {value:%B %Y}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return _CONTROL.sub(" ", str(value)).strip()


def row_key(row: Mapping[str, Any]) -> str:
    """How a mart row is named in a record error."""
    return str(row.get("user_id") or row.get("email") or "?")
