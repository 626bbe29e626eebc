"""The contract's row rules, compiled to SQL and run on DuckDB, one value at a time."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

import contracts
from glue import rules
from ingestion.parse import raw_schema
from tests.conftest import CHECKIN, CLASS, MEMBER

INGESTED = dt.datetime(2026, 11, 24, 6, 0)
BASE = {"members": MEMBER, "classes": CLASS, "attendance": CHECKIN}


def validate(dataset: str, changes: list[dict], timezone: str = "UTC") -> list[dict]:
    contract = contracts.get(dataset)
    rows = []
    for i, change in enumerate(changes, start=1):
        row = {**BASE[dataset], **change}
        row.update(
            _source_file="f.csv",
            _source_row=i,
            _ingested_at=INGESTED,
            _export_date=INGESTED.date(),
            _raw_id="r1",
        )
        row.setdefault("_parse_error", None)
        rows.append(row)
    raw = pa.Table.from_pylist(rows, schema=raw_schema(contract))  # noqa: F841 (read by DuckDB)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = rules.validate_sql(contract, timezone=timezone, dialect="duckdb")
    return con.sql(sql).to_arrow_table().to_pylist()


def reasons(dataset: str, **change) -> set[str]:
    out = validate(dataset, [change])[0]["_reasons"]
    return set(out.split(";")) if out else set()


def test_a_clean_row_of_every_dataset_passes():
    for dataset in BASE:
        assert reasons(dataset) == set()


@pytest.mark.parametrize(
    ("dataset", "change", "expected"),
    [
        ("attendance", {"user_id": "  "}, {"user_id.required"}),
        ("attendance", {"user_id": None}, {"user_id.required"}),
        ("attendance", {"attendance_id": "A 1"}, {"attendance_id.pattern"}),
        ("attendance", {"checked_in_at": "yesterday"}, {"checked_in_at.type"}),
        ("attendance", {"checked_in_at": "2026-02-30T07:00:00Z"}, {"checked_in_at.type"}),
        ("attendance", {"checked_in_at": "2026-11-23T25:00:00Z"}, {"checked_in_at.type"}),
        ("attendance", {"checked_in_at": "1999-12-31T23:00:00Z"}, {"checked_in_at.min"}),
        ("attendance", {"checked_in_at": "2026-11-25T00:30:00Z"}, {"checked_in_at.future"}),
        ("members", {"email": "not-an-email"}, {"email.pattern"}),
        ("members", {"email": "a" * 250 + "@example.com"}, {"email.max_length"}),
        ("members", {"status": "paused"}, {"status.allowed"}),
        ("members", {"marketing_opt_in": "maybe"}, {"marketing_opt_in.type"}),
        ("members", {"join_date": "15/01/2025"}, {"join_date.type"}),
        ("members", {"join_date": "2027-01-01"}, {"join_date.future"}),
        ("members", {"join_date": "1999-01-01"}, {"join_date.min"}),
        ("classes", {"capacity": "0"}, {"capacity.min"}),
        ("classes", {"capacity": "5000"}, {"capacity.max"}),
        ("classes", {"capacity": "12.5"}, {"capacity.type"}),
        ("classes", {"duration_minutes": "forty"}, {"duration_minutes.type"}),
        ("classes", {"start_time": "7:30"}, {"start_time.type"}),
        ("classes", {"start_time": "24:00"}, {"start_time.type"}),
        ("classes", {"weekday": "Monday"}, {"weekday.allowed"}),
        ("classes", {"class_name": "x" * 201}, {"class_name.max_length"}),
        (
            "classes",
            {"capacity": "", "weekday": "Funday"},
            {"capacity.required", "weekday.allowed"},
        ),
    ],
)
def test_each_rule_names_its_column_and_rule(dataset, change, expected):
    assert reasons(dataset, **change) == expected


def test_a_malformed_row_gets_only_the_malformed_reason():
    row = {c: None for c in contracts.get("attendance").column_names}
    assert reasons("attendance", **row, _parse_error="expected 4 fields, got 2") == {
        "row.malformed"
    }


@pytest.mark.parametrize(
    ("change", "typed"),
    [
        ({"email": "  Alice@Example.COM "}, {"email": "alice@example.com"}),
        ({"status": "ACTIVE"}, {"status": "active"}),
        ({"marketing_opt_in": " Yes"}, {"marketing_opt_in": True}),
        ({"marketing_opt_in": "0"}, {"marketing_opt_in": False}),
        ({"join_date": "2025-01-15"}, {"join_date": dt.date(2025, 1, 15)}),
    ],
)
def test_values_are_normalised_and_typed(change, typed):
    out = validate("members", [change])[0]
    assert out["_reasons"] == ""
    for name, value in typed.items():
        assert out[name + rules.TYPED] == value
    # A valid row carries no original text (only its typed values move on)...
    assert out[next(iter(change))] is None
    # ...a rejected row keeps the original of every column, for the quarantine.
    rejected = validate("members", [{**change, "user_id": ""}])[0]
    assert rejected["_reasons"] != ""
    assert rejected[next(iter(change))] == next(iter(change.values()))


def test_weekday_is_canonicalised_case_insensitively():
    out = validate("classes", [{"weekday": "sat"}])[0]
    assert out["weekday" + rules.TYPED] == "Sat" and out["_reasons"] == ""


@pytest.mark.parametrize(
    ("text", "timezone", "utc"),
    [
        ("2026-11-23T07:25:00Z", "UTC", dt.datetime(2026, 11, 23, 7, 25)),
        ("2026-11-23t07:25:00z", "UTC", dt.datetime(2026, 11, 23, 7, 25)),
        ("2026-11-23T08:25:00+01:00", "UTC", dt.datetime(2026, 11, 23, 7, 25)),
        ("2026-11-23T08:25:00+0100", "UTC", dt.datetime(2026, 11, 23, 7, 25)),
        ("2026-11-23T08:25+01", "UTC", dt.datetime(2026, 11, 23, 7, 25)),
        ("2026-11-23T01:55:00-05:30", "UTC", dt.datetime(2026, 11, 23, 7, 25)),
        ("2026-11-23 07:25:00.123456", "UTC", dt.datetime(2026, 11, 23, 7, 25, 0, 123456)),
        ("2026-11-23 07:25", "UTC", dt.datetime(2026, 11, 23, 7, 25)),
        # naive values are in the gym's zone: London is UTC+1 in July, UTC+0 in November
        ("2026-07-01 08:25", "Europe/London", dt.datetime(2026, 7, 1, 7, 25)),
        ("2026-11-23 07:25", "Europe/London", dt.datetime(2026, 11, 23, 7, 25)),
        ("2026-07-01 08:25Z", "Europe/London", dt.datetime(2026, 7, 1, 8, 25)),
        ("2026-07-01 10:25", "Europe/Berlin", dt.datetime(2026, 7, 1, 8, 25)),
    ],
)
def test_timestamps_are_converted_to_utc(text, timezone, utc):
    out = validate("attendance", [{"checked_in_at": text}], timezone)[0]
    assert out["_reasons"] == ""
    assert out["checked_in_at" + rules.TYPED] == utc
    assert out["dt"] == utc.date()


def test_a_check_in_partitions_by_its_utc_date_and_members_by_export_date():
    late = validate("attendance", [{"checked_in_at": "2026-11-23T23:30:00-02:00"}])[0]
    assert late["dt"] == dt.date(2026, 11, 24)
    member = validate("members", [{}])[0]
    assert member["dt"] == INGESTED.date()


def test_every_rule_of_every_contract_compiles_for_both_dialects():
    for contract in contracts.load_all().values():
        for dialect in rules.DIALECTS:
            sql = rules.validate_sql(contract, timezone="Europe/London", dialect=dialect)
            for rule in contract.rules():
                assert rules.lit(rule.code) in sql
    assert "TO_UTC_TIMESTAMP" in rules.validate_sql(
        contracts.get("attendance"), timezone="Europe/London", dialect="spark"
    )


def test_an_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="unknown dialect"):
        rules.render("SELECT 1", "oracle")
