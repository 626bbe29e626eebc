"""Every CSV the dashboard offers for download is safe to open in a spreadsheet (OWASP CSV
injection): one helper, ``dashboard.fmt.csv_bytes``, writes them, and the tables' own export,
which would write cells as they are, is switched off."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import fmt

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_starting_like_a_formula_is_neutralised(prefix: str) -> None:
    value = f'{prefix}HYPERLINK("http://x.example","hi")'
    frame = pd.DataFrame({"handle": [value, "J***4976"], "visits": [3, -2]})

    rows = list(csv.reader(io.StringIO(fmt.csv_bytes(frame).decode("utf-8"), newline="")))

    assert rows[0] == ["handle", "visits"]
    assert rows[1] == ["'" + value, "3"]  # kept whole, but read as text
    assert rows[2] == ["J***4976", "-2"]  # numbers are numbers, not formulas


def test_headers_and_nullable_text_are_neutralised_too() -> None:
    frame = pd.DataFrame({"=cmd": pd.array(["@SUM(A1)", None], dtype="string")})

    text = fmt.csv_bytes(frame).decode("utf-8")

    assert text.splitlines() == ["'=cmd", "'@SUM(A1)", '""']  # the null: an empty cell


def test_the_tables_built_in_csv_export_is_off() -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert st.get_option("client.disableDataExport") is True


def _table_with_gaps() -> None:
    import pandas as pd

    from dashboard import ui

    frame = pd.DataFrame(
        {
            "gym": ["Peak A", None],
            "change": [0.06, None],
            "members": [199.0, None],
            "since": pd.to_datetime(["2026-11-02", None]),
        }
    )
    ui.table(
        frame,
        gym="Gym",
        change=ui.percent("vs previous period", signed=True),
        members=ui.count("Members per day"),
        since=ui.date("Since"),
    )


def test_a_table_never_shows_none_for_a_missing_value() -> None:
    at = AppTest.from_function(_table_with_gaps, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.dataframe[0].value
    assert shown.to_dict("list") == {
        "gym": ["Peak A", "–"],
        "change": ["+6.0%", "–"],
        "members": ["199", "–"],
        "since": ["2026-11-02", "–"],
    }
