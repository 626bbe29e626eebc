"""Numbers and text for people: thousands separators, percentages, deltas, masked emails.

Pure functions (no Streamlit), used by the pages and by the tests that compare what a page shows
with the marts.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: Anything shaped like an email address (what :func:`mask_emails` hides in free text).
EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value: Any) -> str:
    """``12345`` -> ``12,345``; ``None`` -> ``–``."""
    if _missing(value):
        return "–"
    return f"{round(value):,}"


def number(value: Any, digits: int = 1) -> str:
    """``1234.56`` -> ``1,234.6``."""
    if _missing(value):
        return "–"
    return f"{value:,.{digits}f}"


def pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage: ``0.1234`` -> ``12.3%``."""
    if _missing(value):
        return "–"
    return f"{value * 100:,.{digits}f}%"


def change(now: Any, before: Any) -> float | None:
    """The relative change from ``before`` to ``now`` (None when there is nothing to compare)."""
    if _missing(now) or _missing(before) or before == 0:
        return None
    return (now - before) / before


def delta_count(now: Any, before: Any) -> str | None:
    """``+1,234 (+5.2%)`` against the previous period, for ``st.metric``'s delta."""
    if _missing(now) or _missing(before):
        return None
    diff = round(now - before)
    rel = change(now, before)
    text = f"{diff:+,}"
    return f"{text} ({rel * 100:+.1f}%)" if rel is not None else text


def delta_points(now: Any, before: Any, digits: int = 1) -> str | None:
    """The difference of two shares in percentage points: ``+0.4 pp``."""
    if _missing(now) or _missing(before):
        return None
    return f"{(now - before) * 100:+.{digits}f} pp"


def mask_emails(text: Any) -> Any:
    """Free text (an error message, a reason) with every email address in it masked the way
    ``dim_users.email_masked`` is: ``alice@example.com`` -> ``a***@example.com``."""
    if not isinstance(text, str):
        return text
    return EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def rank(value: Any, tied: Any = False) -> str:
    """A leaderboard rank as sports tables show it: ``1``, or ``=1`` when shared."""
    if _missing(value):
        return "–"
    return f"={round(value)}" if tied else f"{round(value)}"


#: What a spreadsheet reads as the start of a formula (OWASP, CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run: one starting like a formula gets a leading
    ``'`` (``=HYPERLINK(…)`` -> ``'=HYPERLINK(…)``); other values as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_bytes(frame: Any) -> bytes:
    """A DataFrame as UTF-8 CSV for people to open, every text cell and header through
    :func:`csv_cell`: the one way the dashboard writes a CSV."""
    safe = frame.rename(columns=lambda c: csv_cell(str(c)))
    for column in safe.columns:
        if safe[column].dtype == object or str(safe[column].dtype).startswith("string"):
            safe[column] = safe[column].map(csv_cell)
    return bytes(safe.to_csv(index=False), "utf-8")
