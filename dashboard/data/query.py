"""How every query runs: the warehouse's Arrow result as a pandas frame, values bound with
``?`` (dates as ISO strings), and the location filter as one placeholder per chosen gym."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from peak.model.warehouse import Warehouse


def _in(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """``column in (?, ?)`` for the chosen values, or a clause that is always true.

    ``column`` is one of this module's constants, never user input."""
    if not values:
        return "1 = 1", []
    return f"{column} in ({', '.join('?' for _ in values)})", list(values)


def _iso(day: dt.date) -> str:
    return day.isoformat()


def _frame(table: pa.Table) -> pd.DataFrame:
    """Dates become pandas datetimes (what Altair and the date columns want)."""
    return table.to_pandas(date_as_object=False)


def _run(warehouse: Warehouse, sql: str, params: Sequence[Any]) -> pd.DataFrame:
    return _frame(warehouse.query(sql, list(params)))


def _first_row(frame: pd.DataFrame) -> dict[str, Any]:
    row = frame.iloc[0].to_dict() if len(frame) else {}
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}
