"""The two transform engines agree: Spark (the Glue job) gives exactly what DuckDB (the reference)
gives, because both run the statements of ``glue.rules``, each in its own dialect.

Given raw Parquet holding every kind of violation of every contract, valid rows with noise that
normalisation removes, every timestamp spelling the contract accepts, duplicates within a batch,
rows that supersede or duplicate rows of an earlier batch, a late-arriving older export and a
malformed row; when each engine processes the same batches in two gym time zones; then the
engine results (counts, affected partitions, reason counts) and the staged files (schema and
rows) are identical.

``test_edge_case_agrees`` covers inputs on which the two engines' built-ins differ (Unicode
trimming and case mapping, Java's regex ``$``, lenient timestamp casts, the repeated hour when
daylight saving ends); each names the difference ``glue.rules`` spells out the same way for both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import contracts
from contracts import Contract
from glue.engine import base as staging_layout
from glue.engine.base import EngineJob, EngineResult
from glue.engine.duckdb_engine import DuckDBEngine
from ingestion.parse import raw_schema
from peak.core import layout
from tests.conftest import CHECKIN, CLASS, MEMBER

DATASETS = ("members", "classes", "attendance")
TIMEZONES = ("UTC", "Europe/London")

# Batch 1 lands on 24 November (two exports), batch 2 on 25 November, plus one export that was
# landed before batch 1 but reaches the transform only with batch 2.
DAY1_EARLY = dt.datetime(2026, 11, 24, 6, 0)
DAY1_LATE = dt.datetime(2026, 11, 24, 7, 30)
DAY2 = dt.datetime(2026, 11, 25, 6, 0)
LATE_ARRIVAL = dt.datetime(2026, 11, 23, 20, 0)


def _staged_files(kind: str, staging: Path) -> dict[str, Path]:
    """The staged files of an engine's staging folder: ``{partition value: path}``."""
    keys = [p.relative_to(staging).as_posix() for p in Path(staging).rglob("*") if p.is_file()]
    found = getattr(staging_layout, f"staged_{kind}")(keys, "")
    return {value: Path(staging) / key for value, key in found.items()}


def staged_partitions(staging: Path) -> dict[str, Path]:
    return _staged_files("partitions", staging)


def staged_quarantine(staging: Path) -> dict[str, Path]:
    return _staged_files("quarantine", staging)


# ---------------------------------------------------------------------------------------------
# The fixture: exports as rows of text, each row with the reason codes it must be rejected for.
# ---------------------------------------------------------------------------------------------

BASE: dict[str, dict[str, str]] = {
    "members": {**MEMBER, "user_id": "U0", "email": "member@example.com"},
    "classes": {**CLASS, "class_id": "C0"},
    "attendance": {**CHECKIN, "attendance_id": "A0"},
}
KEY = {"members": "user_id", "classes": "class_id", "attendance": "attendance_id"}


@dataclass
class Row:
    values: dict[str, str | None]
    expect: frozenset[str] = frozenset()
    parse_error: str | None = None


@dataclass
class Export:
    name: str
    ingested_at: dt.datetime
    rows: list[Row] = field(default_factory=list)

    @property
    def raw_id(self) -> str:
        return hashlib.sha256(f"{self.name}@{self.ingested_at.isoformat()}".encode()).hexdigest()

    @property
    def export_date(self) -> dt.date:
        named = contracts.export_date_from_name(self.name)
        return dt.date.fromisoformat(named) if named else self.ingested_at.date()


def row(dataset: str, key: str, expect: str = "", **values: str | None) -> Row:
    """A row of ``dataset`` keyed ``key``: the base row with ``values`` changed, rejected for the
    ';'-separated reason codes in ``expect`` (none: valid)."""
    merged = {**BASE[dataset], KEY[dataset]: key, **values}
    return Row(merged, frozenset(c for c in expect.split(";") if c))


def malformed(dataset: str) -> Row:
    values = dict.fromkeys(BASE[dataset])
    return Row(values, frozenset({"row.malformed"}), "expected 8 fields, got 3: a,b,c")


def blank(dataset: str, text: str | None) -> Row:
    """Every column empty (None) or blank (spaces): every 'required' rule fails."""
    return Row(
        dict.fromkeys(BASE[dataset], text), frozenset(f"{c}.required" for c in BASE[dataset])
    )


def members_fixture() -> tuple[list[Export], list[Export]]:
    r = lambda key, expect="", **v: row("members", key, expect, **v)  # noqa: E731
    violations = [
        r("V01", "user_id.required", user_id=None),
        r("V02", "user_id.required", user_id="   "),
        r("V03 x", "user_id.pattern"),
        r("V04", "user_id.pattern", user_id="U" * 65),
        r("V05", "email.required", email=""),
        r("V06", "email.max_length", email="a" * 243 + "@example.com"),
        r("V07", "email.pattern", email="not-an-email"),
        r("V08", "email.pattern", email="alice@@example.com"),
        r("V09", "location.required", location=None),
        r("V10", "location.max_length", location="L" * 101),
        r("V11", "join_date.required", join_date=" "),
        r("V12", "join_date.type", join_date="2025-02-30"),
        r("V13", "join_date.type", join_date="15/01/2025"),
        r("V14", "join_date.type", join_date="2025-1-15"),
        r("V15", "join_date.min", join_date="1999-12-31"),
        r("V16", "join_date.min", join_date="0000-01-01"),
        r("V17", "join_date.future", join_date="2026-11-25"),
        r("V18", "plan.required", plan=None),
        r("V19", "plan.max_length", plan="P" * 51),
        r("V20", "status.required", status=None),
        r("V21", "status.allowed", status="paused"),
        r("V22", "marketing_opt_in.required", marketing_opt_in=""),
        r("V23", "marketing_opt_in.type", marketing_opt_in="maybe"),
        r("V24", "marketing_opt_in.type", marketing_opt_in="2"),
        r("V25", "updated_at.required", updated_at=None),
        r("V26", "updated_at.type", updated_at="yesterday"),
        r("V27", "updated_at.type", updated_at="2026-02-30T10:00:00Z"),
        r("V28", "updated_at.type", updated_at="2026-11-20T25:00:00Z"),
        r("V29", "updated_at.type", updated_at="2026-11-20T10:00:00+1"),
        r("V30", "updated_at.type", updated_at="2026-11-20 10:00:00 UTC"),
        r("V31", "updated_at.min", updated_at="1999-12-31T23:59:59Z"),
        r("V32", "updated_at.min", updated_at="2000-01-01T00:30:00+01:00"),
        r("V33", "updated_at.future", updated_at="2026-11-25T00:00:00Z"),
        r("V34", "updated_at.future", updated_at="2026-11-24T23:30:00-01:00"),
        r(
            "V35 x",
            "user_id.pattern;email.pattern;join_date.type;status.allowed;updated_at.future",
            email="x",
            join_date="soon",
            status="gone",
            updated_at="2027-01-01T00:00:00Z",
        ),
        malformed("members"),
        blank("members", None),
        blank("members", "  "),
    ]
    noise = [
        r(
            "  N01  ",
            email="  Bob.Smith+gym@Example.CO.UK ",
            location=" Peak Leeds ",
            join_date=" 2024-02-29 ",
            plan=" PLUS ",
            status=" Frozen ",
            marketing_opt_in=" YES ",
            updated_at=" 2026-11-20t10:00:00z ",
        ),
        r("N02", marketing_opt_in="T", updated_at="2026-11-20T10:00:00+01:00"),
        r("N03", marketing_opt_in="y", updated_at="2026-11-20T10:00:00+0100"),
        r("N04", marketing_opt_in="1", updated_at="2026-11-20T10:00:00+01"),
        r("N05", marketing_opt_in="False", updated_at="2026-11-20T10:00:00-05:30"),
        r("N06", marketing_opt_in="f", updated_at="2026-11-20 10:00:00"),
        r("N07", marketing_opt_in="NO", updated_at="2026-11-20T10:00"),
        r("N08", marketing_opt_in="n", updated_at="2026-11-20T10:00:00.5Z"),
        r("N09", marketing_opt_in="0", updated_at="2026-11-20T10:00:00.123456+01:00"),
        r("N10", updated_at="2026-11-20T10:00:00.123456789"),
        r("N11", updated_at="2026-06-15T12:00:00"),  # naive, in British summer time
        r("N12", updated_at="2026-11-20T10:00:00.9999999z"),
        r("N13", updated_at="1999-12-31T23:30:00-01:00"),  # 2000-01-01 00:30 UTC: not too old
        r("N14", join_date="2000-01-01", updated_at="2026-11-24T23:59:59Z"),  # the bounds
        r("N15", join_date="2026-11-24", updated_at="2026-11-24t23:00:00+00:00"),
        r("N16", status="CANCELLED", plan="Gold", updated_at="2026-11-20T10:00:00-00"),
        r("N17", updated_at="2026-11-20 10:00:00+01:00"),
        r("N18", updated_at="2026-11-20 10:00:00.25-0530"),
    ]
    a = Export(
        "members_2026-11-23.csv",
        DAY1_EARLY,
        [
            *violations,
            *noise,
            r("D1", updated_at="2026-11-20T10:00:00Z", plan="basic"),
            r("D1", updated_at="2026-11-20T11:00:00Z", plan="plus"),  # the newest wins
            r("D2", updated_at="2026-11-20T09:00:00Z", plan="gold"),
        ],
    )
    b = Export(
        "members_2026-11-24.csv",
        DAY1_LATE,
        [
            r("D1", updated_at="2026-11-21T08:00:00Z"),  # another export date: kept too
            r("D3", updated_at="2026-11-21T08:00:00Z", plan="first"),
            r("D3", updated_at="2026-11-21T08:00:00Z", plan="second"),  # a tie: the later row
            r("D4", updated_at="2026-11-21T10:00:00Z"),
            r("D5", updated_at="2026-11-21T12:00:00Z"),
            r("D6", updated_at="2026-11-21T12:00:00Z", plan="old"),
            r("D7", updated_at="2026-11-21T12:00:00Z"),
        ],
    )
    c = Export(
        "members-2026-11-24-resend.json",
        DAY2,
        [
            r("D4", updated_at="2026-11-21T12:00:00Z"),  # newer: supersedes batch 1's
            r("D5", updated_at="2026-11-21T09:00:00Z"),  # older: loses to batch 1's
            r("D6", updated_at="2026-11-21T12:00:00Z", plan="new"),  # a tie: loses on file name
            r("D8", updated_at="2026-11-22T12:00:00+01:00"),
            r("V36", "status.allowed;updated_at.type", status="x", updated_at="never"),
            malformed("members"),
        ],
    )
    return [a, b], [c]


def classes_fixture() -> tuple[list[Export], list[Export]]:
    r = lambda key, expect="", **v: row("classes", key, expect, **v)  # noqa: E731
    violations = [
        r("V01", "class_id.required", class_id=None),
        r("V02 !", "class_id.pattern"),
        r("V03", "class_name.required", class_name=""),
        r("V04", "class_name.max_length", class_name="N" * 201),
        r("V05", "instructor.required", instructor="  "),
        r("V06", "instructor.max_length", instructor="I" * 201),
        r("V07", "location.required", location=None),
        r("V08", "location.max_length", location="L" * 101),
        r("V09", "weekday.required", weekday=None),
        r("V10", "weekday.allowed", weekday="Monday"),
        r("V11", "weekday.allowed", weekday="Funday"),
        r("V12", "start_time.required", start_time=""),
        r("V13", "start_time.type", start_time="7:30"),
        r("V14", "start_time.type", start_time="24:00"),
        r("V15", "start_time.type", start_time="07:60"),
        r("V16", "start_time.type", start_time="07:30:00"),
        r("V17", "duration_minutes.required", duration_minutes=None),
        r("V18", "duration_minutes.type", duration_minutes="45.0"),
        r("V19", "duration_minutes.type", duration_minutes="forty"),
        r("V20", "duration_minutes.type", duration_minutes="1e3"),
        r("V21", "duration_minutes.type", duration_minutes="9999999999999999999"),
        r("V22", "duration_minutes.min", duration_minutes="4"),
        r("V23", "duration_minutes.min", duration_minutes="-5"),
        r("V24", "duration_minutes.max", duration_minutes="481"),
        r("V25", "capacity.required", capacity=" "),
        r("V26", "capacity.type", capacity="4 5"),
        r("V27", "capacity.min", capacity="0"),
        r("V28", "capacity.max", capacity="1001"),
        r(
            "V29",
            "weekday.allowed;start_time.type;duration_minutes.max;capacity.type",
            weekday="Someday",
            start_time="noon",
            duration_minutes="999999999999999999",
            capacity="many",
        ),
        malformed("classes"),
        blank("classes", None),
        blank("classes", "   "),
        # Tabs, line breaks and Unicode spaces are trimmed like spaces: a tab-only row is blank.
        blank("classes", "\t"),
        blank("classes", "\u00a0\n"),
    ]
    noise = [
        r(
            "  N01 ",
            class_name="  Spin 45  ",
            instructor=" Sam Lee",
            location="Peak Camden ",
            weekday=" mon ",
            start_time=" 00:00 ",
            duration_minutes=" +45 ",
            capacity=" 020 ",
        ),
        r("N02", weekday="TUE", start_time="23:59", duration_minutes="5", capacity="1"),
        r("N03", weekday="sun", duration_minutes="480", capacity="1000"),
        r("N04", weekday="Sat", class_name="Ünïcödé Yoga 🧘", instructor="Zoë Łukasz"),
        r("N05", location="L" * 100, class_name="N" * 200),
    ]
    a = Export(
        "classes_2026-11-23.csv",
        DAY1_EARLY,
        [
            *violations,
            *noise,
            r("D1", class_name="Spin 30"),
            r("D1", class_name="Spin 45"),  # the last row wins
        ],
    )
    b = Export(
        "classes_2026-11-24.csv",
        DAY1_LATE,
        [r("D1", class_name="Spin 60"), r("D2"), r("D3"), r("D4", capacity="12")],
    )
    c = Export(
        "classes_20261124.json",
        DAY2,
        [
            r("D2", capacity="25"),  # the same export date, a later file name: supersedes
            r("D3", capacity="30"),
            r("D5"),
            r("V30", "capacity.max", capacity="5000"),
        ],
    )
    return [a, b], [c]


def attendance_fixture() -> tuple[list[Export], list[Export]]:
    r = lambda key, expect="", **v: row("attendance", key, expect, **v)  # noqa: E731
    violations = [
        r("V01", "attendance_id.required", attendance_id=None),
        r("V02.x", "attendance_id.pattern"),
        r("V03", "user_id.required", user_id=""),
        r("V04", "user_id.pattern", user_id="U 1"),
        r("V05", "class_id.required", class_id=None),
        r("V06", "class_id.pattern", class_id="C#1"),
        r("V07", "checked_in_at.required", checked_in_at="  "),
        r("V08", "checked_in_at.type", checked_in_at="2026-11-23"),
        r("V09", "checked_in_at.type", checked_in_at="2026-11-31T07:00:00Z"),
        r("V10", "checked_in_at.type", checked_in_at="23/11/2026 07:00"),
        r("V11", "checked_in_at.type", checked_in_at="2026-11-23T07:00:00.Z"),
        r("V12", "checked_in_at.min", checked_in_at="1999-06-01T07:00:00"),
        r("V13", "checked_in_at.min", checked_in_at="0000-01-01T00:00:00Z"),
        r("V14", "checked_in_at.future", checked_in_at="2026-11-25T00:00:01Z"),
        r("V15", "checked_in_at.future", checked_in_at="2026-12-01T07:00:00"),
        r("V16", "checked_in_at.future", checked_in_at="2026-11-24T23:30:00-01:00"),
        malformed("attendance"),
        blank("attendance", None),
        blank("attendance", " "),
    ]
    noise = [
        r(" N01 ", user_id=" U1 ", class_id=" C1 ", checked_in_at=" 2026-11-23t07:25:00z "),
        r("N02", checked_in_at="2026-11-23T07:25:00+01:00"),
        r("N03", checked_in_at="2026-11-23T07:25:00+0100"),
        r("N04", checked_in_at="2026-11-23T00:25:00+01"),  # the day before in UTC
        r("N05", checked_in_at="2026-11-23T21:00:00-05:30"),  # the next day in UTC
        r("N06", checked_in_at="2026-11-23T07:25:00"),
        r("N07", checked_in_at="2026-11-23 07:25"),
        r("N08", checked_in_at="2026-11-23T07:25:00.5"),
        r("N09", checked_in_at="2026-11-23T07:25:00.123456789Z"),
        r("N10", checked_in_at="2026-07-01T00:30:00"),  # BST: the day before in London
        r("N11", checked_in_at="2026-03-29T01:30:00"),  # the hour London skips
        r("N12", checked_in_at="2026-11-24T23:59:59"),  # the ingest day itself
    ]
    a = Export(
        "attendance_2026-11-23.csv",
        DAY1_EARLY,
        [
            *violations,
            *noise,
            r("D1", checked_in_at="2026-11-23T08:00:00Z"),
            r("D2", checked_in_at="2026-11-23T09:00:00Z", user_id="first"),
            r("D2", checked_in_at="2026-11-23T09:00:00Z", user_id="second"),  # first wins
            r("D5", checked_in_at="2026-11-21T09:00:00Z"),  # the only row of its day
        ],
    )
    b = Export(
        "attendance_2026-11-24.csv",
        DAY1_LATE,
        [
            r("D1", checked_in_at="2026-11-24T08:00:00Z"),  # seen already: loses
            r("D3", checked_in_at="2026-11-24T10:00:00Z"),
        ],
    )
    c = Export(
        "attendance_2026-11-25.csv",
        DAY2,
        [
            r("D1", checked_in_at="2026-11-23T08:00:00Z"),  # a re-sent check-in: loses
            r("D3", checked_in_at="2026-11-24T10:00:00Z"),
            r("D4", checked_in_at="2026-11-25T06:00:00+01:00"),
            r("V17", "user_id.pattern;checked_in_at.type", user_id="?", checked_in_at="x"),
        ],
    )
    d = Export(  # landed before batch 1 but transformed with batch 2: its rows were first
        "attendance_2026-11-22.csv",
        LATE_ARRIVAL,
        [
            r("D5", checked_in_at="2026-11-22T09:00:00Z"),  # supersedes; 21 Nov empties
            r("D6", checked_in_at="2026-11-22T10:00:00Z"),
            malformed("attendance"),
        ],
    )
    return [a, b], [c, d]


FIXTURES = {
    "members": members_fixture,
    "classes": classes_fixture,
    "attendance": attendance_fixture,
}


def write_raw(contract: Contract, export: Export, folder: Path) -> str:
    """The export as ingestion writes it: text columns plus lineage, ``raw_schema``."""
    n = len(export.rows)
    columns: dict[str, list[Any]] = {
        name: [r.values.get(name) for r in export.rows] for name in contract.column_names
    }
    columns |= {
        contracts.SOURCE_FILE: [export.name] * n,
        contracts.SOURCE_ROW: list(range(1, n + 1)),
        contracts.INGESTED_AT: [export.ingested_at] * n,
        contracts.EXPORT_DATE: [export.export_date] * n,
        contracts.RAW_ID: [export.raw_id] * n,
        contracts.PARSE_ERROR: [r.parse_error for r in export.rows],
    }
    path = folder / f"{export.raw_id}.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(columns, schema=raw_schema(contract)), path)
    return str(path)


# ---------------------------------------------------------------------------------------------
# Running and comparing.
# ---------------------------------------------------------------------------------------------

NAIVE_TS = pa.timestamp("us")
ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "time": pa.string(),
    "timestamp": NAIVE_TS,
}
LINEAGE_TYPES = {
    contracts.SOURCE_FILE: pa.string(),
    contracts.SOURCE_ROW: pa.int64(),
    contracts.INGESTED_AT: NAIVE_TS,
    contracts.EXPORT_DATE: pa.date32(),
    contracts.RAW_ID: pa.string(),
    contracts.PARSE_ERROR: pa.string(),
}


def processed_schema(contract: Contract) -> pa.Schema:
    fields = [pa.field(c.name, ARROW_TYPES[c.type]) for c in contract.columns]
    fields += [pa.field(n, LINEAGE_TYPES[n]) for n in contracts.PROCESSED_LINEAGE]
    return pa.schema(fields)


def quarantine_schema(contract: Contract) -> pa.Schema:
    fields = [pa.field(c, pa.string()) for c in contract.column_names]
    fields += [pa.field(n, t) for n, t in LINEAGE_TYPES.items()]
    return pa.schema([*fields, pa.field(contracts.REASONS, pa.string())])


def read_file(path: Path) -> pa.Table:
    """Exactly the file's columns (no Hive partition columns inferred from its folder)."""
    return pq.ParquetFile(path).read()


def staged(staging: Path) -> dict[str, dict[str, pa.Table]]:
    return {
        "processed": {k: read_file(p) for k, p in staged_partitions(staging).items()},
        "quarantine": {k: read_file(p) for k, p in staged_quarantine(staging).items()},
    }


def sorted_rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r[contracts.RAW_ID], r[contracts.SOURCE_ROW]))


def assert_same_output(contract: Contract, ref: Path, other: Path) -> None:
    """The same folders, the same schemas (the expected ones), the same rows."""
    expected, actual = staged(ref), staged(other)
    schemas = {"processed": processed_schema(contract), "quarantine": quarantine_schema(contract)}
    for kind in ("processed", "quarantine"):
        assert sorted(actual[kind]) == sorted(expected[kind]), kind
        for part, table in expected[kind].items():
            theirs = actual[kind][part]
            assert table.schema.equals(schemas[kind]), (kind, part, table.schema)
            assert theirs.schema.equals(schemas[kind]), (kind, part, theirs.schema)
            assert sorted_rows(theirs) == sorted_rows(table), (kind, part)
    for path in [*staged_partitions(other).values(), *staged_quarantine(other).values()]:
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    leftovers = [
        p.name
        for p in other.rglob("*")
        if p.is_file() and (p.name.endswith(".crc") or p.name.startswith("_SUCCESS"))
    ]
    assert leftovers == []


def publish(staging: Path, result: EngineResult, lake_root: Path, dataset: str) -> list[str]:
    """What the orchestrator does with staged partitions; returns the live partition files."""
    partitions = staged_partitions(staging)
    for day in result.affected_partitions:
        target = lake_root / layout.processed_key(dataset, day)
        if day in partitions:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(partitions[day], target)
        else:
            target.unlink()
            target.parent.rmdir()
    return sorted(str(p) for p in (lake_root / "processed" / dataset).glob("dt=*/data.parquet"))


@dataclass
class Batches:
    contract: Contract
    first: list[Export]
    second: list[Export]
    raw_first: list[str]
    raw_second: list[str]

    @property
    def ids_first(self) -> list[str]:
        return [e.raw_id for e in self.first]

    @property
    def ids_second(self) -> list[str]:
        return [e.raw_id for e in self.second]

    @property
    def export_dates(self) -> dict[str, str]:
        return {e.raw_id: e.export_date.isoformat() for e in (*self.first, *self.second)}

    @property
    def rows(self) -> dict[tuple[str, int], Row]:
        return {
            (e.raw_id, i): r for e in (*self.first, *self.second) for i, r in enumerate(e.rows, 1)
        }


def build(dataset: str, folder: Path) -> Batches:
    contract = contracts.get(dataset)
    first, second = FIXTURES[dataset]()
    return Batches(
        contract,
        first,
        second,
        [write_raw(contract, e, folder / "raw") for e in first],
        [write_raw(contract, e, folder / "raw") for e in second],
    )


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark")
    from glue.engine.spark_engine import local_session

    session = local_session("peak-parity", cores=2, shuffle_partitions=2)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def engines(spark) -> dict[str, Any]:
    from glue.engine.spark_engine import SparkEngine

    return {"duckdb": DuckDBEngine(memory_limit="1GB"), "spark": SparkEngine(spark)}


# ---------------------------------------------------------------------------------------------
# The fixture is what it claims to be.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_fixture_breaks_every_rule_of_the_contract(dataset):
    contract = contracts.get(dataset)
    first, second = FIXTURES[dataset]()
    claimed = {code for e in (*first, *second) for r in e.rows for code in r.expect}
    assert claimed == {rule.code for rule in contract.rules()}
    assert sum(not r.expect for e in (*first, *second) for r in e.rows) >= 10  # valid rows too


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_reference_engine_rejects_each_row_for_exactly_its_reasons(dataset, tmp_path):
    batches = build(dataset, tmp_path)
    engine = DuckDBEngine(memory_limit="1GB")
    results = [
        engine.process(batches.contract, EngineJob(raw, [], str(tmp_path / name), ids))
        for name, raw, ids in (
            ("b1", batches.raw_first, batches.ids_first),
            ("b2", batches.raw_second, batches.ids_second),
        )
    ]
    rejected: dict[tuple[str, int], frozenset[str]] = {}
    for name in ("b1", "b2"):
        for table in staged(tmp_path / name)["quarantine"].values():
            for r in table.to_pylist():
                key = (r[contracts.RAW_ID], r[contracts.SOURCE_ROW])
                rejected[key] = frozenset(r[contracts.REASONS].split(";"))
    claimed = {k: r.expect for k, r in batches.rows.items() if r.expect}
    assert rejected == claimed
    seen = {code for result in results for code in result.reasons}
    assert seen == {rule.code for rule in batches.contract.rules()}


# ---------------------------------------------------------------------------------------------
# The engines agree.
# ---------------------------------------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.parametrize("timezone", TIMEZONES)
@pytest.mark.parametrize("dataset", DATASETS)
def test_spark_and_duckdb_give_identical_results(dataset, timezone, engines, tmp_path):
    # Given two batches of raw exports
    batches = build(dataset, tmp_path)
    contract = batches.contract

    def run(engine: str, name: str, raw, existing, ids) -> EngineResult:
        job = EngineJob(raw, existing, str(tmp_path / engine / name), ids, timezone)
        job.export_dates = batches.export_dates
        return engines[engine].process(contract, job)

    def both(name: str, raw, ids, existing: dict[str, list[str]]) -> EngineResult:
        ref = run("duckdb", name, raw, existing["duckdb"], ids)
        other = run("spark", name, raw, existing["spark"], ids)
        assert other == ref
        assert_same_output(contract, tmp_path / "duckdb" / name, tmp_path / "spark" / name)
        return ref

    # When each engine runs the first batch on an empty zone, then Then they agree
    first = both("b1", batches.raw_first, batches.ids_first, {"duckdb": [], "spark": []})
    assert first.rows_quarantined and first.rows_deduplicated and first.rows_valid
    lakes = {e: tmp_path / e / "lake" for e in engines}
    live = {e: publish(tmp_path / e / "b1", first, lakes[e], contract.dataset) for e in engines}

    # When each runs the second batch against its own published output, then they agree
    second = both("b2", batches.raw_second, batches.ids_second, live)
    assert second.rows_deduplicated or second.rows_superseded
    if dataset == "attendance":  # the late export empties 21 November
        assert "2026-11-21" in second.affected_partitions
        assert "2026-11-21" not in staged_partitions(tmp_path / "spark" / "b2")

    if timezone != "UTC":
        return
    if dataset == "attendance":  # reads every partition: the whole zone takes part
        # When Spark reads partitions DuckDB wrote (the engine can change between runs)
        cross = run("spark", "cross", batches.raw_second, live["duckdb"], batches.ids_second)
        assert cross == second
        assert_same_output(contract, tmp_path / "duckdb" / "b2", tmp_path / "spark" / "cross")

    # When the second batch runs again after a crash that published its partitions but not
    # the ledger (the engines ignore the rows the batch itself left behind), they agree
    live = {e: publish(tmp_path / e / "b2", second, lakes[e], contract.dataset) for e in engines}
    again = both("rerun", batches.raw_second, batches.ids_second, live)
    assert (again.rows_in, again.rows_valid) == (second.rows_in, second.rows_valid)


@pytest.mark.spark
def test_the_engines_agree_on_an_empty_export_and_an_all_rejected_one(engines, tmp_path):
    contract = contracts.get("members")
    exports = [
        Export("members_2026-11-24.csv", DAY1_EARLY, []),  # a header-only export
        Export("members_2026-11-25.csv", DAY2, [malformed("members"), blank("members", " ")]),
    ]
    raw = [write_raw(contract, e, tmp_path / "raw") for e in exports]
    ids = [e.raw_id for e in exports]
    results = {
        name: engine.process(contract, EngineJob(raw, [], str(tmp_path / name), ids))
        for name, engine in engines.items()
    }
    assert results["spark"] == results["duckdb"]
    assert (results["spark"].rows_in, results["spark"].rows_quarantined) == (2, 2)
    assert results["spark"].affected_partitions == []
    assert_same_output(contract, tmp_path / "duckdb", tmp_path / "spark")
    assert not (tmp_path / "spark" / "processed").exists()


# ---------------------------------------------------------------------------------------------
# Where the engines still disagree (see the module's docstring).
# ---------------------------------------------------------------------------------------------

# The built-in behaviours that differ, which glue.rules spells out identically for both engines.
TRIM = "TRIM: DuckDB strips every Unicode space separator (NBSP included), Spark only U+0020"
DOLLAR = "RLIKE is a Java regex: '$' also matches before a final line terminator; RE2's does not"
LOWER = "LOWER: DuckDB maps case per character (İ -> i, Σ -> σ), Java in context (İ -> i̇, -ς)"
NO_SECONDS = "Spark's cast needs seconds before a zone (07:25Z); DuckDB's does not"
HOUR_24 = "DuckDB reads T24:00:00 as the next midnight; Spark rejects it"
OFFSET = "Java offsets stop at ±18:00; DuckDB takes any ±HH:MM the pattern allows"
FOLD = "the repeated hour when BST ends: Java takes the first (BST), ICU the second (GMT)"

DIVERGENCES = [
    ("members", "UTC", {"location": "\u00a0Peak Camden\u00a0"}, TRIM),
    ("attendance", "UTC", {"user_id": "\u00a0U1"}, TRIM),
    ("attendance", "UTC", {"user_id": "U1\n"}, DOLLAR),
    ("attendance", "UTC", {"checked_in_at": "2026-11-23T07:25:00Z\r\n"}, DOLLAR),
    ("classes", "UTC", {"capacity": "20\n"}, DOLLAR),
    ("classes", "UTC", {"start_time": "07:30\u2028"}, DOLLAR),
    ("members", "UTC", {"email": "İNFO@EXAMPLE.COM"}, LOWER),
    ("members", "UTC", {"status": "ACTİVE"}, LOWER),
    ("members", "UTC", {"plan": "ΑΣ"}, LOWER),
    ("attendance", "UTC", {"checked_in_at": "2026-11-23T07:25Z"}, NO_SECONDS),
    ("members", "UTC", {"updated_at": "2026-11-20 10:00+01:00"}, NO_SECONDS),
    ("attendance", "UTC", {"checked_in_at": "2026-11-23T24:00:00"}, HOUR_24),
    ("attendance", "UTC", {"checked_in_at": "2026-11-23T07:25:00+19:00"}, OFFSET),
    ("attendance", "UTC", {"checked_in_at": "2026-11-23T07:25:00+00:60"}, OFFSET),
    ("attendance", "Europe/London", {"checked_in_at": "2026-10-25T01:30:00"}, FOLD),
]


def _case_id(case: tuple) -> str:
    dataset, timezone, values, _why = case
    return f"{dataset}-{timezone}-{json.dumps(values, ensure_ascii=True)}"


@pytest.fixture(scope="module")
def divergence_outcomes(engines, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Each case as one row of one export per (dataset, zone), run once by each engine; the
    outcome of a row is its reasons if rejected, else its processed values."""
    folder = tmp_path_factory.mktemp("divergences")
    outcomes: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[str, str], list[tuple]] = {}
    for case in DIVERGENCES:
        groups.setdefault(case[:2], []).append(case)
    for (dataset, timezone), cases in groups.items():
        contract = contracts.get(dataset)
        export = Export(
            f"{dataset}_2026-11-24.csv",
            DAY1_EARLY,
            [row(dataset, f"K{i}", **case[2]) for i, case in enumerate(cases, 1)],
        )
        raw = write_raw(contract, export, folder / dataset / timezone)
        for name, engine in engines.items():
            staging = folder / dataset / timezone / name
            engine.process(contract, EngineJob([raw], [], str(staging), [export.raw_id], timezone))
            out = staged(staging)
            by_row: dict[int, Any] = {}
            for table in out["quarantine"].values():
                for r in table.to_pylist():
                    by_row[r[contracts.SOURCE_ROW]] = ("rejected", r[contracts.REASONS])
            for table in out["processed"].values():
                for r in table.to_pylist():
                    values = {c: r[c] for c in contract.column_names}
                    by_row[r[contracts.SOURCE_ROW]] = ("valid", values)
            for i, case in enumerate(cases, 1):
                outcomes.setdefault(_case_id(case), {})[name] = by_row[i]
    return outcomes


@pytest.mark.spark
@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=_case_id(c)) for c in DIVERGENCES],
)
def test_edge_case_agrees(case, divergence_outcomes):
    outcome = divergence_outcomes[_case_id(case)]
    assert outcome["spark"] == outcome["duckdb"]


# ---------------------------------------------------------------------------------------------
# The Glue job script, end to end on a local lake.
# ---------------------------------------------------------------------------------------------


def _quality_args() -> list[str]:
    """Great Expectations runs when glue.quality exists (it is being written alongside)."""
    available = importlib.util.find_spec("glue.quality") is not None
    return ["--quality", "true" if available else "false"]


def _land(lake_root: Path, write_export) -> None:
    from ingestion.land import land_many
    from peak.core.lake import Lake

    members = [
        {**BASE["members"], "user_id": "U1"},
        {**BASE["members"], "user_id": "U2", "email": " Bob@Example.com "},
        {**BASE["members"], "user_id": "U3", "status": "sleeping"},
    ]
    checkins = [
        {**BASE["attendance"], "attendance_id": "A1"},
        {**BASE["attendance"], "attendance_id": "A2", "checked_in_at": "2026-11-22T18:00:00"},
        {**BASE["attendance"], "attendance_id": "A2", "checked_in_at": "2026-11-22T18:00:00"},
    ]
    files = [
        str(write_export("members_2026-11-24.csv", members)),
        str(write_export("attendance_2026-11-24.json", checkins)),
    ]
    results = land_many(Lake.from_uri(str(lake_root)), files, ingested_at=DAY1_EARLY)
    assert [r.status for r in results] == ["landed", "landed"]


@pytest.mark.spark
def test_the_glue_job_runs_the_transform_on_a_local_lake(spark, tmp_path, write_export):
    from glue import job
    from peak.core.lake import Lake
    from tests.conftest import read_zone

    # Given exports landed in two identical lakes
    roots = {e: tmp_path / f"lake-{e}" for e in ("spark", "duckdb")}
    for root in roots.values():
        _land(root, write_export)

    # When the job runs as the Glue job definition would start it, once per engine
    reports = {}
    for engine, root in roots.items():
        argv = ["--JOB_NAME", "peak-transform", "--lake", str(root), "--engine", engine]
        argv += ["--gym_timezone", "Europe/London", "--reprocess", "false", *_quality_args()]
        argv += ["--job-bookmark-option", "job-bookmark-disable"]  # Glue's own: ignored
        reports[engine] = job.main(argv)

    # Then the processed partitions are published and the run report saved under _runs/
    lake = Lake.from_uri(str(roots["spark"]))
    report = reports["spark"]
    assert report.status == "ok"
    assert lake.list("processed/members/") == ["processed/members/dt=2026-11-24/data.parquet"]
    assert lake.list("processed/attendance/") == [
        "processed/attendance/dt=2026-11-22/data.parquet",
        "processed/attendance/dt=2026-11-23/data.parquet",
    ]
    saved = lake.read_json(layout.run_report_key(report.run_id))
    assert saved["status"] == "ok"
    assert saved["options"]["engine"] == "spark"
    members = saved["datasets"]["members"]
    assert (members["rows_in"], members["rows_valid"], members["rows_quarantined"]) == (3, 2, 1)
    assert members["reasons"] == {"status.allowed": 1}
    attendance = saved["datasets"]["attendance"]
    assert (attendance["rows_in"], attendance["rows_deduplicated"]) == (3, 1)
    assert lake.list("_runs/") == [layout.run_report_key(report.run_id)]

    # And the lake holds what the DuckDB engine makes of the same exports
    for prefix in ("processed/members/", "processed/attendance/", "quarantine/members/rows/"):
        assert read_zone(lake, prefix) == read_zone(Lake.from_uri(str(roots["duckdb"])), prefix)
    london = read_zone(lake, "processed/attendance/", "attendance_id")
    assert london[1]["checked_in_at"] == dt.datetime(2026, 11, 22, 18, 0)  # GMT in November

    # When the job runs again, nothing is new (the transform ledger is the bookmark)
    again = job.main(["--lake", str(roots["spark"]), *_quality_args()])
    assert again.status == "ok"
    assert all(s.rows_in == 0 for s in again.datasets.values())


def test_job_arguments_parse_like_glue_resolves_them():
    from glue import job

    args = job.parse_args(["job.py", "--lake", "s3://peak-lake/prod", "--TempDir", "s3://t/"])
    assert (args.job_name, args.engine, args.gym_timezone) == ("peak-transform", "spark", "UTC")
    assert (args.reprocess, args.quality, args.datasets) == (False, True, None)
    argv = ["job.py", "--lake=/tmp/lake", "--engine", "DuckDB", "--reprocess", "TRUE"]
    argv += ["--datasets", " members, attendance ", "--gym_timezone", "Europe/London"]
    args = job.parse_args(argv)
    assert (args.engine, args.reprocess) == ("duckdb", True)
    assert args.datasets == ["members", "attendance"]
    with pytest.raises(job.JobArgumentError, match="--lake"):
        job.parse_args(["job.py", "--engine", "spark"])
    with pytest.raises(job.JobArgumentError, match="reprocess"):
        job.parse_args(["job.py", "--lake", "x", "--reprocess", "maybe"])
    with pytest.raises(job.JobArgumentError, match="unknown dataset"):
        job.parse_args(["job.py", "--lake", "x", "--datasets", "payments"])
    with pytest.raises(job.JobArgumentError, match="engine"):
        job.parse_args(["job.py", "--lake", "x", "--engine", "pandas"])


class _FakeGlue:
    """Stand-ins for the ``awsglue`` modules of the Glue runtime, recording what the job does."""

    def __init__(self, spark) -> None:
        import argparse
        import types

        self.calls: list[tuple[str, Any]] = []
        calls = self.calls

        def get_resolved_options(args: list[str], options: list[str]) -> dict[str, Any]:
            parser = argparse.ArgumentParser()
            for name in options:
                parser.add_argument(f"--{name}", required=True)
            known, _extra = parser.parse_known_args(args[1:])  # Glue ignores the rest too
            calls.append(("getResolvedOptions", sorted(options)))
            return vars(known)

        class GlueContext:
            def __init__(self, sc) -> None:
                self.spark_session = spark

        class Job:
            def __init__(self, glue_context) -> None:
                pass

            def init(self, name: str, args: dict[str, Any]) -> None:
                calls.append(("init", name))

            def commit(self) -> None:
                calls.append(("commit", None))

        self.modules = {
            "awsglue": types.ModuleType("awsglue"),
            "awsglue.utils": types.SimpleNamespace(getResolvedOptions=get_resolved_options),
            "awsglue.context": types.SimpleNamespace(GlueContext=GlueContext),
            "awsglue.job": types.SimpleNamespace(Job=Job),
        }


@pytest.mark.spark
def test_inside_glue_the_job_resolves_its_arguments_and_commits(spark, tmp_path, monkeypatch):
    from glue import job

    fake = _FakeGlue(spark)
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    argv = ["--JOB_NAME", "peak-transform", "--lake", str(tmp_path / "lake")]
    argv += ["--JOB_RUN_ID", "jr_1", "--job-bookmark-option", "job-bookmark-disable"]

    report = job.main(argv)

    assert report.status == "ok"
    assert fake.calls == [
        ("getResolvedOptions", ["JOB_NAME", "lake"]),
        ("init", "peak-transform"),
        ("commit", None),
    ]


def test_a_failed_run_saves_its_report_and_fails_the_job(tmp_path, monkeypatch):
    from glue import job, transform
    from peak.core.lake import Lake

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(transform, "transform", broken)
    lake_root = tmp_path / "lake"
    with pytest.raises(RuntimeError, match="disk full"):
        job.main(["--lake", str(lake_root), "--engine", "duckdb"])
    lake = Lake.from_uri(str(lake_root))
    [key] = lake.list("_runs/")
    saved = lake.read_json(key)
    assert (saved["status"], saved["error"]) == ("failed", "RuntimeError: disk full")
