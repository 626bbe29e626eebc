"""The Great Expectations step (glue/quality/) on small staged processed partitions.

Each test writes its own tiny processed-zone fixtures with pyarrow, typed as the transform
writes them (hive layout: ``dt`` is the folder, not a column of the file).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import contracts
from glue import quality

ARROW_TYPES = {
    "string": pa.string(),
    "time": pa.string(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}
LINEAGE_TYPES = {
    contracts.SOURCE_FILE: pa.string(),
    contracts.SOURCE_ROW: pa.int64(),
    contracts.INGESTED_AT: pa.timestamp("us"),
    contracts.RAW_ID: pa.string(),
}
EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+", re.I)


def _value(col: contracts.Column, i: int, day: dt.date) -> object:
    """A valid value of a contract column for row ``i`` of partition ``day``."""
    if col.allowed:
        return col.allowed[i % len(col.allowed)]
    if col.type == "string":
        if col.pattern and "@" in col.pattern:
            return f"member{i}@example.com"
        return f"{col.name[:3]}-{i}"
    if col.type == "integer":
        return int(col.min) if col.min is not None else i + 1
    if col.type == "boolean":
        return i % 2 == 0
    if col.type == "date":
        return day
    if col.type == "time":
        return "07:30"
    return dt.datetime.combine(day, dt.time(6)) + dt.timedelta(minutes=i)


def _rows(contract: contracts.Contract, day: dt.date, n: int, start: int = 0) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        row = {c.name: _value(c, i, day) for c in contract.columns}
        row.update(
            {
                contracts.SOURCE_FILE: f"{contract.dataset}_{day}.csv",
                contracts.SOURCE_ROW: i + 1,
                contracts.INGESTED_AT: dt.datetime.combine(day, dt.time(23)),
                contracts.RAW_ID: "ab" * 32,
            }
        )
        rows.append(row)
    return rows


def _schema(contract: contracts.Contract) -> pa.Schema:
    fields = [pa.field(c.name, ARROW_TYPES[c.type]) for c in contract.columns]
    return pa.schema(fields + [pa.field(n, t) for n, t in LINEAGE_TYPES.items()])


def _write(
    root: Path, contract: contracts.Contract, parts: dict[str, list[dict]], schema=None
) -> dict[str, list[Path]]:
    """Write staged partitions ``<root>/<dataset>/dt=<day>/data.parquet``; dt -> files."""
    out = {}
    for day, rows in parts.items():
        path = root / contract.dataset / f"dt={day}" / "data.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table_schema = schema or _schema(contract)
        pq.write_table(pa.Table.from_pylist(rows, schema=table_schema), path)
        out[day] = [path]
    return out


def _clean(contract: contracts.Contract, days: int = 2, n: int = 5) -> dict[str, list[dict]]:
    first = dt.date(2026, 11, 20)
    parts = {}
    for d in range(days):
        day = first + dt.timedelta(days=d)
        # members and classes repeat their keys in every partition (daily snapshots);
        # attendance ids are unique across the dataset.
        start = d * n if contract.dedup.scope == "dataset" else 0
        parts[day.isoformat()] = _rows(contract, day, n, start)
    return parts


def _validate(
    tmp_path: Path,
    contract,
    parts,
    *,
    schema=None,
    batch_rows=1000,
    run_id="r1",
    sample_rows=100_000,
):
    files = _write(tmp_path / "staging", contract, parts, schema)
    return quality.validate_partitions(
        contract,
        files,
        run_id=run_id,
        docs_dir=tmp_path / "quality" / "docs",
        batch_rows=batch_rows,
        sample_rows=sample_rows,
        memory_limit="256MB",
    )


def _failures(result: quality.QualityResult) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f["column"]) for f in result.failed}


@pytest.fixture(scope="module")
def members() -> contracts.Contract:
    return contracts.get("members")


@pytest.fixture(scope="module")
def attendance() -> contracts.Contract:
    return contracts.get("attendance")


@pytest.fixture(scope="module")
def classes() -> contracts.Contract:
    return contracts.get("classes")


# -- the suite ------------------------------------------------------------------------------


def test_suite_is_generated_from_the_contract(members):
    # Given the members contract
    # When its suite is built
    suite = quality.build_suite(members)
    # Then it is named after the dataset and holds one expectation per contract rule
    assert suite.name == "members_processed"
    kinds = {(e.expectation_type, e.configuration.kwargs.get("column")) for e in suite.expectations}
    for col in members.required_columns:
        assert ("expect_column_values_to_not_be_null", col) in kinds
    for col in contracts.PROCESSED_LINEAGE:
        assert ("expect_column_values_to_not_be_null", col) in kinds
    assert ("expect_column_values_to_be_in_set", "status") in kinds
    assert ("expect_column_values_to_match_regex", "email") in kinds
    assert ("expect_column_values_to_match_regex", "user_id") in kinds
    assert ("expect_column_value_lengths_to_be_between", "email") in kinds
    assert ("expect_column_values_to_be_between", "join_date") in kinds
    column_set = next(
        e for e in suite.expectations if e.expectation_type == "expect_table_columns_to_match_set"
    )
    expected = {*members.column_names, *contracts.PROCESSED_LINEAGE}
    assert set(column_set.configuration.kwargs["column_set"]) == expected
    unique = [e for e in suite.expectations if (e.meta or {}).get("check") == "unique"]
    assert len(unique) == 1 and unique[0].meta["scope"] == "partition"
    assert not [e for e in suite.expectations if (e.meta or {}).get("check") == "partition"]


def test_attendance_suite_checks_dataset_uniqueness_and_partition_dates(attendance):
    # Given the attendance contract (partitioned by checked_in_at, keys unique dataset-wide)
    # When its suite is built
    suite = quality.build_suite(attendance)
    checks = {(e.meta or {}).get("check"): e for e in suite.expectations}
    # Then it checks the key across all rows and each row's day against its dt
    assert checks["unique"].meta["scope"] == "dataset"
    assert '"dt"' not in checks["unique"].unexpected_rows_query
    assert 'CAST("checked_in_at" AS DATE)' in checks["partition"].unexpected_rows_query


# -- passing ---------------------------------------------------------------------------------


def test_clean_partitions_pass_and_docs_are_rendered(tmp_path, members):
    # Given two clean members partitions (the same user ids in both: daily snapshots)
    parts = _clean(members, days=2, n=5)
    # When they are validated
    result = _validate(tmp_path, members, parts)
    # Then the suite passes on every row, in one batch
    assert result.success, result.failed
    assert result.failed == []
    assert result.rows_checked == 10
    assert result.batches == 1
    assert result.expectations == len(quality.build_suite(members).expectations)
    assert quality.check(result) is result
    assert result.summary() == (
        f"members: {result.expectations} expectations on 10 rows in 1 batches: passed"
    )
    # And the combined result is kept as GX JSON
    assert result.results_path == tmp_path / "quality" / "validations" / "r1" / "members.json"
    kept = json.loads(result.results_path.read_text())
    assert kept["success"] is True
    assert kept["suite_name"] == "members_processed"
    assert len(kept["results"]) == result.expectations
    # And Data Docs were rendered for the run, as static pages usable offline
    assert result.docs_index == tmp_path / "quality" / "docs" / "index.html"
    index = result.docs_index.read_text()
    assert "members_processed" in index
    assert 'id="peak-offline-index"' in index
    pages = list((tmp_path / "quality" / "docs").rglob("*.html"))
    assert len(pages) >= 3  # index, suite page, validation page
    for page in pages:
        text = page.read_text()
        assert not re.search(r"<script[^>]*src=\"https?://", text), page
        assert not re.search(r"<link[^>]*href=\"https?://", text), page


def test_several_chunks_when_rows_exceed_batch_rows(tmp_path, attendance):
    # Given 3 attendance partitions of 5 rows
    parts = _clean(attendance, days=3, n=5)
    # When validated with chunks of 4 rows
    result = _validate(tmp_path, attendance, parts, batch_rows=4)
    # Then every row is checked, in ceil(15 / 4) = 4 GX batches, and passes
    assert result.success, result.failed
    assert result.rows_checked == 15
    assert result.batches == 4
    assert "15 rows in 4 batches: passed" in result.summary()


def test_counts_are_summed_across_chunks(tmp_path, classes):
    # Given classes rows with an out-of-range capacity in the first and last chunk
    parts = _clean(classes, days=1, n=7)
    rows = next(iter(parts.values()))
    rows[0]["capacity"] = 0
    rows[6]["capacity"] = 5000
    # When validated in chunks of 3 rows
    result = _validate(tmp_path, classes, parts, batch_rows=3)
    # Then the one between-expectation reports both rows of all 7
    assert result.batches == 3
    assert _failures(result) == {("expect_column_values_to_be_between", "capacity")}
    observed = result.failed[0]["observed"]
    assert observed["unexpected_count"] == 2
    assert observed["element_count"] == 7
    assert result.failed[0]["rule"] == "capacity.min;capacity.max"


def test_row_checks_run_on_a_uniform_sample_and_set_checks_on_every_row(tmp_path, attendance):
    # Given 3 attendance partitions of 50 rows, every user id malformed, and one check-in id
    # repeated in two partitions
    parts = _clean(attendance, days=3, n=50)
    for rows in parts.values():
        for row in rows:
            row["user_id"] = "user id with spaces"
    days = sorted(parts)
    parts[days[2]][49]["attendance_id"] = parts[days[0]][0]["attendance_id"]
    # When validated with row checks on a sample of 40 rows, in chunks of 16
    result = _validate(tmp_path, attendance, parts, batch_rows=16, sample_rows=40)
    # Then the row check saw exactly the 40 sampled rows (and caught the bad ids in all of
    # them), the uniqueness check every one of the 150 rows
    assert (result.rows_checked, result.rows_sampled, result.batches) == (150, 40, 3)
    failed = {f["column"]: f["observed"] for f in result.failed}
    assert failed["user_id"]["unexpected_count"] == failed["user_id"]["element_count"] == 40
    assert failed["attendance_id"]["duplicate_rows"] == 1
    assert "150 rows (row checks on a sample of 40) in 3 batches" in result.summary()


def test_the_sample_is_uniform_and_repeatable():
    from glue.quality.chunks import _sample

    first = _sample(1_000_000, 10_000, "run/attendance")
    assert first is not None and len(set(first.tolist())) == 10_000
    assert (first == _sample(1_000_000, 10_000, "run/attendance")).all()
    assert not (first == _sample(1_000_000, 10_000, "other/attendance")).all()
    # every tenth of the rows holds about a tenth of the sample (binomial sd ~ 30)
    counts = [int(((first >= k * 100_000) & (first < (k + 1) * 100_000)).sum()) for k in range(10)]
    assert all(850 < c < 1150 for c in counts), counts
    assert _sample(100, 100, "run/attendance") is None  # small batches: every row


# -- each kind of defect ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "bad", "expectation"),
    [
        ("location", None, "expect_column_values_to_not_be_null"),
        ("status", "paused", "expect_column_values_to_be_in_set"),
        ("user_id", "user id with spaces", "expect_column_values_to_match_regex"),
        ("plan", "p" * 51, "expect_column_value_lengths_to_be_between"),
        ("join_date", dt.date(1999, 12, 31), "expect_column_values_to_be_between"),
        ("updated_at", dt.datetime(1999, 12, 31, 23, 59), "expect_column_values_to_be_between"),
        # Outside pandas' nanosecond range: must be compared, not wrapped around.
        ("join_date", dt.date(1500, 1, 1), "expect_column_values_to_be_between"),
    ],
)
def test_a_defect_fails_the_right_expectation_and_column(
    tmp_path, members, column, bad, expectation
):
    # Given clean members partitions with one bad value
    parts = _clean(members, days=2, n=4)
    next(iter(parts.values()))[2][column] = bad
    # When validated
    result = _validate(tmp_path, members, parts)
    # Then exactly that expectation fails, on that column, counting one row (a null also
    # fails the null-fraction check over every row, on the same column)
    assert not result.success
    also = {("unexpected_rows_expectation", column)} if bad is None else set()
    assert _failures(result) == {(expectation, column)} | also
    assert result.failed[0]["observed"]["unexpected_count"] == 1
    assert result.failed[0]["evaluated_by"] == "great_expectations"


def test_time_and_integer_columns_are_checked(tmp_path, classes):
    # Given classes with a start time that is not HH:MM and a duration below the minimum
    parts = _clean(classes, days=1, n=3)
    rows = next(iter(parts.values()))
    rows[0]["start_time"] = "7:5"
    rows[1]["duration_minutes"] = 4
    rows[2]["weekday"] = "Funday"
    result = _validate(tmp_path, classes, parts)
    # Then each fails on its column
    assert _failures(result) == {
        ("expect_column_values_to_match_regex", "start_time"),
        ("expect_column_values_to_be_between", "duration_minutes"),
        ("expect_column_values_to_be_in_set", "weekday"),
    }


def test_a_column_of_the_wrong_type_fails(tmp_path, classes):
    # Given classes whose capacity was written as text
    schema = _schema(classes)
    schema = schema.set(schema.get_field_index("capacity"), pa.field("capacity", pa.string()))
    parts = _clean(classes, days=1, n=3)
    for row in next(iter(parts.values())):
        row["capacity"] = str(row["capacity"])
    result = _validate(tmp_path, classes, parts, schema=schema)
    # Then the type expectation of capacity fails
    assert ("expect_column_values_to_be_of_type", "capacity") in _failures(result)


def test_duplicate_key_inside_a_partition_fails_for_members(tmp_path, members):
    # Given a members partition where one user appears twice (user ids repeat across days)
    parts = _clean(members, days=2, n=4)
    rows = next(iter(parts.values()))
    rows[3]["user_id"] = rows[0]["user_id"]
    # When validated
    result = _validate(tmp_path, members, parts)
    # Then the partition-scoped key check fails on user_id, seen by DuckDB
    assert _failures(result) == {("unexpected_rows_expectation", "user_id")}
    failure = result.failed[0]
    assert failure["evaluated_by"] == "duckdb"
    assert failure["observed"]["observed_value"] == 1
    assert failure["observed"]["duplicate_rows"] == 1


def test_duplicate_key_across_partitions_fails_for_attendance(tmp_path, attendance):
    # Given an attendance id in two partitions that fall in different chunks
    parts = _clean(attendance, days=3, n=4)
    days = sorted(parts)
    parts[days[2]][3]["attendance_id"] = parts[days[0]][0]["attendance_id"]
    # When validated in chunks of 4 rows (each partition its own chunk)
    result = _validate(tmp_path, attendance, parts, batch_rows=4)
    # Then the dataset-wide key check fails on attendance_id
    assert result.batches == 3
    assert _failures(result) == {("unexpected_rows_expectation", "attendance_id")}
    assert result.failed[0]["observed"]["duplicate_rows"] == 1


def test_a_row_in_the_wrong_partition_fails(tmp_path, attendance):
    # Given an attendance row whose check-in falls on the day before its partition
    parts = _clean(attendance, days=2, n=3)
    day = sorted(parts)[1]
    parts[day][1]["checked_in_at"] = dt.datetime.fromisoformat(day) - dt.timedelta(minutes=1)
    # When validated
    result = _validate(tmp_path, attendance, parts)
    # Then the partition check fails on checked_in_at, counting that row
    assert _failures(result) == {("unexpected_rows_expectation", "checked_in_at")}
    assert result.failed[0]["observed"]["observed_value"] == 1


def test_a_null_in_a_required_column_outside_the_sample_fails_the_null_fraction(
    tmp_path, attendance
):
    # Given 40 attendance rows of which one has no attendance_id (a required column)
    parts = _clean(attendance, days=2, n=20)
    parts[sorted(parts)[1]][7]["attendance_id"] = None
    # When the row checks see a sample of 1 row (they may well miss it)
    result = _validate(tmp_path, attendance, parts, sample_rows=1)
    # Then the null-fraction check, over every row, fails naming the column and its fraction
    nulls = [f for f in result.failed if f["evaluated_by"] == "duckdb"]
    assert [f["column"] for f in nulls] == ["attendance_id"]
    assert nulls[0]["observed"]["observed_value"] == 1
    assert nulls[0]["observed"]["null_fraction.attendance_id"] == 1 / 40
    # And the clean rows pass it
    assert _validate(tmp_path, attendance, _clean(attendance, days=2, n=20), run_id="r2").success


def test_a_partition_outside_the_expected_window_fails(tmp_path, attendance):
    # Given a clean batch plus a partition dated two days after today (UTC)
    parts = _clean(attendance, days=2, n=3)
    ahead = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
    parts[ahead.isoformat()] = _rows(attendance, ahead, 3, start=100)
    # When validated
    result = _validate(tmp_path, attendance, parts)
    # Then the partition-bounds check fails, giving the batch's dt min and max
    assert _failures(result) == {("unexpected_rows_expectation", "dt")}
    observed = result.failed[0]["observed"]
    assert observed["observed_value"] == 1
    assert (observed["dt_min"], observed["dt_max"]) == (min(parts), ahead.isoformat())
    # And the batch without it, and one dated tomorrow (time zones), pass
    del parts[ahead.isoformat()]
    tomorrow = ahead - dt.timedelta(days=1)
    parts[tomorrow.isoformat()] = _rows(attendance, tomorrow, 3, start=100)
    assert _validate(tmp_path / "ok", attendance, parts).success


def test_a_missing_column_fails(tmp_path, members):
    # Given members files without the status column
    schema = _schema(members)
    schema = schema.remove(schema.get_field_index("status"))
    parts = _clean(members, days=1, n=3)
    for row in next(iter(parts.values())):
        del row["status"]
    result = _validate(tmp_path, members, parts, schema=schema)
    # Then the column set fails naming status, and status's own checks cannot pass
    assert ("expect_table_columns_to_match_set", "status") in _failures(result)
    column_set = next(
        f for f in result.failed if f["expectation"] == "expect_table_columns_to_match_set"
    )
    assert column_set["observed"] == {"missing": ["status"], "unexpected": []}
    assert ("expect_column_values_to_not_be_null", "status") in _failures(result)


def test_an_extra_column_fails(tmp_path, members):
    # Given a members file carrying an undeclared column (and dt inside the file)
    schema = _schema(members).append(pa.field("phone", pa.string()))
    schema = schema.append(pa.field("dt", pa.string()))
    parts = _clean(members, days=1, n=3)
    for row in next(iter(parts.values())):
        row.update(phone="555-0100", dt="2026-11-20")
    result = _validate(tmp_path, members, parts, schema=schema)
    # Then only the column set fails, naming both extra columns
    assert _failures(result) == {("expect_table_columns_to_match_set", "dt,phone")}
    assert result.failed[0]["observed"] == {"missing": [], "unexpected": ["dt", "phone"]}


def test_one_bad_file_among_good_ones_is_its_own_batch(tmp_path, members):
    # Given two partitions, the second written without the plan column
    parts = _clean(members, days=2, n=3)
    good = _write(tmp_path / "staging", members, dict([next(iter(parts.items()))]))
    schema = _schema(members)
    schema = schema.remove(schema.get_field_index("plan"))
    day, rows = list(parts.items())[1]
    for row in rows:
        del row["plan"]
    bad = _write(tmp_path / "staging", members, {day: rows}, schema)
    # When validated together with big chunks
    result = quality.validate_partitions(
        members, {**good, **bad}, run_id="r1", docs_dir=tmp_path / "docs", batch_rows=1000
    )
    # Then the two schemas were validated as two batches, and the column set fails
    assert result.batches == 2
    assert result.rows_checked == 6
    assert ("expect_table_columns_to_match_set", "plan") in _failures(result)


# -- failing loudly, and privately ----------------------------------------------------------


def test_check_raises_naming_dataset_expectation_and_column(tmp_path, members):
    # Given a members partition with a bad status
    parts = _clean(members, days=1, n=3)
    next(iter(parts.values()))[0]["status"] = "paused"
    result = _validate(tmp_path, members, parts)
    # When the caller checks the result
    with pytest.raises(quality.QualityError) as raised:
        quality.check(result)
    # Then the message names the dataset, the expectation and the column
    message = str(raised.value)
    assert "members" in message
    assert "expect_column_values_to_be_in_set" in message
    assert "status" in message
    assert raised.value.result is result
    assert "FAILED 1 (expect_column_values_to_be_in_set(status))" in result.summary()


def test_no_email_value_appears_in_failures_results_or_docs(tmp_path, members):
    # Given members whose emails break the pattern and the length limit
    parts = _clean(members, days=1, n=3)
    rows = next(iter(parts.values()))
    rows[0]["email"] = "Secret.Person@Example.COM"
    rows[1]["email"] = "x" * 250 + "@example.com"
    rows[2]["status"] = "paused"
    # When validated and checked
    result = _validate(tmp_path, members, parts)
    assert ("expect_column_values_to_match_regex", "email") in _failures(result)
    assert ("expect_column_value_lengths_to_be_between", "email") in _failures(result)
    with pytest.raises(quality.QualityError) as raised:
        quality.check(result)
    # Then no email address, good or bad, is in the failures, the message, the JSON or the HTML
    assert not EMAIL.search(json.dumps(result.failed))
    assert not EMAIL.search(str(raised.value))
    assert not EMAIL.search(result.results_path.read_text())
    for page in (tmp_path / "quality" / "docs").rglob("*.html"):
        assert "example.com" not in page.read_text().lower(), page


def test_docs_of_several_datasets_share_one_site(tmp_path, members, attendance):
    # Given members and attendance validated in one run into the same docs folder
    docs = tmp_path / "quality" / "docs"
    for contract in (members, attendance):
        files = _write(tmp_path / "staging", contract, _clean(contract, days=1, n=2))
        quality.validate_partitions(contract, files, run_id="run-7", docs_dir=docs)
    # Then the offline index lists both suites' results
    index = (docs / "index.html").read_text()
    offline = index[index.index('id="peak-offline-index"') :]
    assert "members_processed" in offline
    assert "attendance_processed" in offline
    assert (tmp_path / "quality" / "validations" / "run-7" / "members.json").exists()
    assert (tmp_path / "quality" / "validations" / "run-7" / "attendance.json").exists()


def test_bad_arguments_are_refused(tmp_path, members):
    # Given no files, a bad dt key and a run id that is a path
    with pytest.raises(ValueError, match="no Parquet file"):
        quality.validate_partitions(members, {}, run_id="r", docs_dir=tmp_path)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        quality.validate_partitions(
            members, {"yesterday": [tmp_path / "x.parquet"]}, run_id="r", docs_dir=tmp_path
        )
    with pytest.raises(ValueError, match="run_id"):
        quality.validate_partitions(
            members, {"2026-11-20": [tmp_path / "x.parquet"]}, run_id="../up", docs_dir=tmp_path
        )


def test_gx_and_pandas_are_left_as_found(tmp_path, members):
    # Given GX's batch-fingerprint function and pandas' string option before a validation
    import pandas as pd
    from great_expectations.execution_engine import pandas_execution_engine as engine

    before = engine.hash_pandas_dataframe
    # When a validation runs
    _validate(tmp_path, members, _clean(members, days=1, n=2))
    # Then both are restored
    assert engine.hash_pandas_dataframe is before
    assert not pd.get_option("future.infer_string")
