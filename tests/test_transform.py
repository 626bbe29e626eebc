"""The transform on the DuckDB engine: incremental batches, de-duplication across runs,
reprocessing, the nothing-lost invariant, S3 lakes, and crash safety."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest

from glue.engine.duckdb_engine import DuckDBEngine
from glue.transform import TransformOptions, transform
from ingestion.land import land_file
from peak.core.lake import Lake
from peak.core.report import RunReport
from tests.conftest import CHECKIN, CLASS, INGESTED_AT, MEMBER, read_zone

NO_GE = TransformOptions(quality=False)


def run_transform(lake: Lake, options: TransformOptions = NO_GE) -> RunReport:
    report = RunReport("transform")
    transform(lake, engine=DuckDBEngine(memory_limit="1GB"), report=report, options=options)
    return report


def land(lake, path, when=INGESTED_AT, **kw):
    return land_file(lake, str(path), ingested_at=when, **kw)


def checkins(*ids_and_times):
    return [{**CHECKIN, "attendance_id": i, "checked_in_at": t} for i, t in ids_and_times]


def test_only_new_raw_files_are_processed(lake, write_export):
    land(lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))))
    first = run_transform(lake)
    assert first.datasets["attendance"].rows_in == 1
    second = run_transform(lake)
    assert all(s.files_in == s.rows_in == 0 for s in second.datasets.values())  # bookmark held
    land(lake, write_export("attendance_2026-11-24.csv", checkins(("A2", "2026-11-24T07:00Z"))))
    third = run_transform(lake)
    assert third.datasets["attendance"].rows_in == 1
    assert third.datasets["attendance"].partitions_written == ["2026-11-24"]
    assert [r["attendance_id"] for r in read_zone(lake, "processed/attendance/")] == ["A1", "A2"]


def test_an_overlapping_export_adds_no_duplicate_check_in(lake, write_export):
    land(
        lake,
        write_export(
            "attendance_2026-11-23.csv",
            checkins(("A1", "2026-11-23T07:00Z"), ("A2", "2026-11-23T08:00Z")),
        ),
    )
    run_transform(lake)
    later = INGESTED_AT + dt.timedelta(days=1)
    land(
        lake,
        write_export(
            "attendance_2026-11-24.csv",
            checkins(
                ("A2", "2026-11-23T08:00Z"),
                ("A3", "2026-11-23T09:00Z"),
                ("A3", "2026-11-23T09:00Z"),
                ("A4", "2026-11-24T07:00Z"),
            ),
        ),
        when=later,
    )
    stats = run_transform(lake).datasets["attendance"]
    assert (stats.rows_in, stats.rows_valid, stats.rows_deduplicated) == (4, 2, 2)
    rows = read_zone(lake, "processed/attendance/", "attendance_id")
    assert [r["attendance_id"] for r in rows] == ["A1", "A2", "A3", "A4"]
    a2 = next(r for r in rows if r["attendance_id"] == "A2")
    assert a2["_source_file"] == "attendance_2026-11-23.csv"  # the first one seen wins
    assert sorted(stats.partitions_written) == ["2026-11-23", "2026-11-24"]
    files = lake.list("processed/attendance/dt=2026-11-23/")
    assert files == ["processed/attendance/dt=2026-11-23/data.parquet"]  # rewritten whole


def test_a_partition_whose_every_row_is_superseded_is_removed(lake, write_export):
    # An earlier day's export arrives late: its copy of A1 was seen first, and it moves the
    # check-in to another day.
    land(lake, write_export("attendance_2026-11-24.csv", checkins(("A1", "2026-11-24T07:00Z"))))
    run_transform(lake)
    later = INGESTED_AT + dt.timedelta(hours=1)
    land(
        lake,
        write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))),
        when=later,
    )
    stats = run_transform(lake).datasets["attendance"]
    assert (stats.rows_valid, stats.rows_superseded) == (1, 1)
    assert sorted(stats.partitions_written) == ["2026-11-23", "2026-11-24"]
    assert lake.list("processed/attendance/") == ["processed/attendance/dt=2026-11-23/data.parquet"]
    rows = read_zone(lake, "processed/attendance/")
    assert [(r["attendance_id"], r["_source_file"]) for r in rows] == [
        ("A1", "attendance_2026-11-23.csv")
    ]


def test_the_newest_member_record_wins_within_an_export_date(lake, write_export):
    old = {**MEMBER, "plan": "basic", "updated_at": "2026-11-20T10:00:00Z"}
    new = {**MEMBER, "plan": "premium", "updated_at": "2026-11-22T10:00:00Z"}
    land(lake, write_export("members_2026-11-24.csv", [new]))
    land(
        lake,
        write_export("members_2026-11-24_resend.csv", [old]),
        when=INGESTED_AT + dt.timedelta(hours=1),
    )
    run_transform(lake)
    rows = read_zone(lake, "processed/members/")
    assert [(r["plan"], r["dt"]) for r in rows] == [("premium", dt.date(2026, 11, 24))]
    even_newer = {**MEMBER, "plan": "plus", "updated_at": "2026-11-23T10:00:00Z"}
    land(
        lake,
        write_export("members_2026-11-24_fix.csv", [even_newer]),
        when=INGESTED_AT + dt.timedelta(hours=2),
    )
    stats = run_transform(lake).datasets["members"]
    assert (stats.rows_valid, stats.rows_superseded) == (1, 1)
    assert [r["plan"] for r in read_zone(lake, "processed/members/")] == ["plus"]


def test_each_export_date_keeps_its_own_member_snapshot(lake, write_export):
    land(lake, write_export("members_2026-11-23.csv", [MEMBER]))
    land(lake, write_export("members_2026-11-24.csv", [{**MEMBER, "status": "frozen"}]))
    run_transform(lake)
    rows = read_zone(lake, "processed/members/", "dt")
    assert [(r["dt"].isoformat(), r["status"]) for r in rows] == [
        ("2026-11-23", "active"),
        ("2026-11-24", "frozen"),
    ]


def test_nothing_is_lost_and_bad_rows_are_quarantined_with_lineage(lake, write_export):
    rows = checkins(("A1", "2026-11-23T07:00Z"), ("A2", "not a time"), ("A1", "2026-11-23T07:00Z"))
    rows.append({**CHECKIN, "attendance_id": "A3", "user_id": "", "checked_in_at": "2099-01-01"})
    land(lake, write_export("attendance_2026-11-23.csv", rows))
    stats = run_transform(lake).datasets["attendance"]
    assert stats.rows_in == stats.rows_valid + stats.rows_quarantined + stats.rows_deduplicated
    assert (stats.rows_in, stats.rows_valid, stats.rows_quarantined) == (4, 1, 2)
    assert stats.reasons == {"checked_in_at.type": 2, "user_id.required": 1}
    quarantined = read_zone(lake, "quarantine/attendance/rows/", "_source_row")
    assert [(r["_source_file"], r["_source_row"], r["_reasons"]) for r in quarantined] == [
        ("attendance_2026-11-23.csv", 2, "checked_in_at.type"),
        ("attendance_2026-11-23.csv", 4, "user_id.required;checked_in_at.type"),
    ]
    assert quarantined[0]["checked_in_at"] == "not a time"  # the original value is kept


def test_only_contract_columns_reach_the_processed_zone(lake, write_export):
    land(lake, write_export("members_2026-11-24.csv", [{**MEMBER, "phone": "07700 900123"}]))
    run_transform(lake)
    row = read_zone(lake, "processed/members/")[0]
    assert "phone" not in row
    assert set(row) == {*MEMBER, "_source_file", "_source_row", "_ingested_at", "_raw_id", "dt"}


def test_unknown_members_and_classes_flow_on_to_dbt(lake, write_export):
    land(
        lake,
        write_export(
            "attendance_2026-11-23.csv", [{**CHECKIN, "user_id": "U999", "class_id": "C999"}]
        ),
    )
    assert run_transform(lake).datasets["attendance"].rows_valid == 1


def test_reprocess_rebuilds_exactly_what_the_incremental_runs_built(lake, write_export):
    for day in (21, 22, 23):
        when = INGESTED_AT + dt.timedelta(days=day - 21)
        land(
            lake,
            write_export(
                f"attendance_2026-11-{day}.csv",
                checkins((f"A{day}", f"2026-11-{day}T07:00Z"), ("A21", "2026-11-21T07:00Z")),
            ),
            when=when,
        )
        land(
            lake,
            write_export(f"members_2026-11-{day}.csv", [{**MEMBER, "plan": f"p{day}"}]),
            when=when,
        )
        run_transform(lake)
    before = {
        ds: read_zone(lake, f"processed/{ds}/", "dt, _raw_id, _source_row")
        for ds in ("attendance", "members")
    }
    report = run_transform(lake, TransformOptions(quality=False, reprocess=True))
    assert report.datasets["attendance"].rows_in == 6
    for ds, rows in before.items():
        assert read_zone(lake, f"processed/{ds}/", "dt, _raw_id, _source_row") == rows


def test_an_s3_lake_runs_the_duckdb_engine_through_local_staging(s3_lake, write_export):
    land(s3_lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))))
    report = run_transform(s3_lake)
    assert report.datasets["attendance"].rows_valid == 1
    assert s3_lake.list("processed/attendance/") == [
        "processed/attendance/dt=2026-11-23/data.parquet"
    ]
    assert s3_lake.list("_staging/") == []


# ---------------------------------------------------------------------------------------------
# Crash safety: kill the transform mid-write, run it again, compare with an uninterrupted run.
# ---------------------------------------------------------------------------------------------


def _seed(lake: Lake, write_export) -> None:
    for day in range(1, 8):
        rows = checkins(
            *[(f"A{day}-{i}", f"2026-11-{day:02d}T{7 + i % 12:02d}:00Z") for i in range(30)]
        )
        rows += checkins((f"A{day - 1}-0", f"2026-11-{max(day - 1, 1):02d}T07:00Z"))  # overlap
        rows.append({**CHECKIN, "attendance_id": f"B{day}", "checked_in_at": "garbage"})
        land(
            lake,
            write_export(f"attendance_2026-11-{day:02d}.csv", rows),
            when=dt.datetime(2026, 11, day, 23),
        )


def _peak(lake: Lake, *args: str, **env: str) -> subprocess.Popen:
    environ = {**os.environ, "PEAK_LAKE": lake.root, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "peak", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _state(lake: Lake) -> tuple:
    processed = read_zone(lake, "processed/attendance/", "attendance_id")
    quarantine = read_zone(lake, "quarantine/attendance/rows/", "_raw_id, _source_row")
    return processed, quarantine, lake.read_json("_state/transform/attendance.json")["raw_ids"]


@pytest.fixture
def reference(tmp_path_factory, write_export):
    lake = Lake.from_uri(str(tmp_path_factory.mktemp("reference") / "lake"))
    _seed(lake, write_export)
    run_transform(lake)
    return _state(lake)


@pytest.mark.parametrize(
    "failpoint", ["transform.publish:1", "transform.publish:4", "transform.ledger"]
)
def test_a_transform_killed_mid_publish_reruns_to_the_same_output(
    tmp_path, write_export, reference, failpoint
):
    lake = Lake.from_uri(str(tmp_path / "lake"))
    _seed(lake, write_export)
    crashed = _peak(
        lake, "transform", "--no-quality", "--dataset", "attendance", PEAK_FAILPOINT=failpoint
    )
    assert crashed.wait(timeout=120) == 137
    # readers never see a partial partition: every visible partition is one whole file
    for key in lake.list("processed/attendance/"):
        assert key.endswith("/data.parquet")
    rerun = _peak(lake, "transform", "--no-quality", "--dataset", "attendance")
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read().decode()
    assert _state(lake) == reference
    assert lake.list("_staging/") == []


def test_a_transform_killed_at_random_moments_reruns_to_the_same_output(
    tmp_path, write_export, reference
):
    # The kills land at fractions of an uninterrupted run's duration measured here, under
    # the same load, so they fall inside the run rather than after it.
    timed = Lake.from_uri(str(tmp_path / "timed"))
    _seed(timed, write_export)
    start = time.monotonic()
    assert _peak(timed, "transform", "--no-quality", "--dataset", "attendance").wait(120) == 0
    duration = time.monotonic() - start
    killed = 0
    for attempt, fraction in enumerate((0.3, 0.55, 0.8)):
        lake = Lake.from_uri(str(tmp_path / f"lake{attempt}"))
        _seed(lake, write_export)
        proc = _peak(lake, "transform", "--no-quality", "--dataset", "attendance")
        time.sleep(fraction * duration)
        proc.send_signal(signal.SIGKILL)
        killed += proc.wait(timeout=60) == -signal.SIGKILL
        rerun = _peak(lake, "transform", "--no-quality", "--dataset", "attendance")
        assert rerun.wait(timeout=120) == 0, rerun.stderr.read().decode()
        assert _state(lake) == reference
    assert killed >= 2, "the kills came after the runs had ended: the test tested nothing"


# ---------------------------------------------------------------------------------------------
# Great Expectations gate
# ---------------------------------------------------------------------------------------------


def test_quality_results_and_data_docs_are_kept_in_the_lake(lake, write_export):
    land(lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))))
    report = run_transform(lake, TransformOptions())
    assert "attendance: 25 expectations on 1 rows" in report.stages["quality"]["attendance"]
    result = lake.read_json(f"quality/results/attendance/{report.run_id}.json")
    assert result["success"] is True and result["rows_checked"] == 1
    index = lake.path("quality/data_docs/index.html").read_text()
    assert "attendance_processed" in index


def test_a_failing_suite_fails_the_stage_and_publishes_nothing(lake, write_export):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from glue.quality import QualityError

    land(lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))))
    run_transform(lake)
    # Someone edits the processed zone by hand and moves a check-in to another day.
    part = lake.path("processed/attendance/dt=2026-11-23/data.parquet")
    table = pq.read_table(part)
    moved = table.set_column(
        table.schema.get_field_index("checked_in_at"),
        "checked_in_at",
        pa.array([dt.datetime(2026, 11, 20, 7)], pa.timestamp("us")),
    )
    pq.write_table(moved, part)
    before = part.read_bytes()
    land(lake, write_export("attendance_2026-11-24.csv", checkins(("A2", "2026-11-23T09:00Z"))))
    with pytest.raises(QualityError, match="attendance"):
        run_transform(lake, TransformOptions())
    assert part.read_bytes() == before  # nothing published
    assert len(lake.read_json("_state/transform/attendance.json")["raw_ids"]) == 1


def test_an_s3_lake_keeps_quality_results_and_docs_in_s3(s3_lake, write_export):
    land(s3_lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))))
    land(s3_lake, write_export("members_2026-11-23.csv", [MEMBER]))
    report = run_transform(s3_lake, TransformOptions())
    keys = s3_lake.list("quality/")
    assert "quality/data_docs/index.html" in keys
    assert f"quality/validations/{report.run_id}/attendance.json" in keys
    assert f"quality/validations/{report.run_id}/members.json" in keys
    index = s3_lake.read_bytes("quality/data_docs/index.html").decode()
    assert "attendance_processed" in index and "members_processed" in index


# -- one transform at a time ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "s3"])
def test_lake_create_is_a_test_and_set(where, lake, s3_lake):
    target = lake if where == "local" else s3_lake
    assert target.create("_state/x.lock", b"first") is True
    assert target.create("_state/x.lock", b"second") is False
    assert target.read_bytes("_state/x.lock") == b"first"


def test_an_s3_lake_runs_one_transform_at_a_time(s3_lake, write_export):
    """The Spark and the Python-shell job may both be started on one lake: the second waits
    for nothing and fails, naming the run that holds the lock; the lock goes with the run."""
    import json

    from peak.core.errors import TransformError
    from peak.core.layout import TRANSFORM_LOCK_KEY as LOCK_KEY
    from peak.core.locks import transform_lock as exclusive

    land(s3_lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))))
    with exclusive(s3_lake, "run-a"):
        assert json.loads(s3_lake.read_bytes(LOCK_KEY))["run_id"] == "run-a"
        with pytest.raises(TransformError, match=r"another transform \(run-a"):
            run_transform(s3_lake)
        assert s3_lake.list("processed/") == []  # the refused run did nothing
    assert not s3_lake.exists(LOCK_KEY)
    report = run_transform(s3_lake)  # free again
    assert report.datasets["attendance"].rows_valid == 1
    assert not s3_lake.exists(LOCK_KEY)


def test_a_killed_runs_stale_s3_lock_is_taken_over(s3_lake, write_export):
    from peak.core.errors import TransformError
    from peak.core.layout import TRANSFORM_LOCK_KEY as LOCK_KEY
    from peak.core.locks import TRANSFORM_STALE_AFTER as STALE_LOCK

    land(s3_lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z"))))
    now = dt.datetime.now(dt.UTC)
    fresh = {"run_id": "killed", "since": (now - STALE_LOCK / 2).isoformat()}
    s3_lake.write_json(LOCK_KEY, fresh)
    with pytest.raises(TransformError, match="killed"):
        run_transform(s3_lake)
    stale = {"run_id": "killed", "since": (now - STALE_LOCK * 1.1).isoformat()}
    s3_lake.write_json(LOCK_KEY, stale)
    report = run_transform(s3_lake)
    assert report.datasets["attendance"].rows_valid == 1
    assert not s3_lake.exists(LOCK_KEY)


def test_a_raw_file_that_lost_rows_after_landing_fails_before_publishing(lake, write_export):
    """Given a landed export whose raw Parquet was later cut short (2 of its 3 rows left),
    when the transform runs, then it fails naming both counts and publishes nothing: rows_in is
    checked against the rows ingestion counted, not only against the engine's own sums."""
    import pyarrow.parquet as pq

    from glue.transform import TransformError

    rows = checkins(("A1", "2026-11-23T07:00Z"), ("A2", "2026-11-23T08:00Z"))
    rows.append({**CHECKIN, "attendance_id": "A3", "checked_in_at": "2026-11-23T09:00Z"})
    landed = land(lake, write_export("attendance_2026-11-23.csv", rows))
    raw = lake.path(landed.parquet_key)
    pq.write_table(pq.read_table(raw).slice(0, 2), raw)
    with pytest.raises(TransformError, match=r"read 2 rows .* ingestion landed 3"):
        run_transform(lake)
    assert not lake.list("processed/attendance/")
    assert not lake.list("quarantine/attendance/")


def test_a_lake_path_with_a_quote_transforms(tmp_path, write_export, monkeypatch):
    # The engine's spill folder and staged outputs sit in the lake, the quality step's spill
    # folder in the temporary folder: every one of these paths enters DuckDB's SQL.
    import tempfile

    quoted_tmp = tmp_path / "it's tmp"
    quoted_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(quoted_tmp))
    lake = Lake.from_uri(str(tmp_path / "o'brien's lake"))
    rows = checkins(("A1", "2026-11-23T07:00Z"), ("A2", "not a time"))
    land(lake, write_export("attendance_2026-11-23.csv", rows))
    stats = run_transform(lake, TransformOptions()).datasets["attendance"]
    assert (stats.rows_valid, stats.rows_quarantined) == (1, 1)
    assert [r["attendance_id"] for r in read_zone(lake, "processed/attendance/")] == ["A1"]
    assert len(read_zone(lake, "quarantine/attendance/rows/")) == 1


# ---------------------------------------------------------------------------------------------
# One bad raw file stops its own dataset only
# ---------------------------------------------------------------------------------------------


def _land_three_datasets(lake, write_export):
    attendance = land(
        lake, write_export("attendance_2026-11-23.csv", checkins(("A1", "2026-11-23T07:00Z")))
    )
    land(lake, write_export("members_2026-11-23.csv", [MEMBER]))
    land(lake, write_export("classes_2026-11-23.csv", [CLASS]))
    return attendance


def test_a_truncated_raw_file_stops_its_dataset_only_and_is_named(lake, write_export):
    from glue.transform import TransformError

    attendance = _land_three_datasets(lake, write_export)
    raw = lake.path(attendance.parquet_key)
    raw.write_bytes(raw.read_bytes()[:-100])  # cut short: no Parquet footer
    with pytest.raises(TransformError) as failed:
        run_transform(lake)
    message = str(failed.value)
    assert attendance.parquet_key in message and "attendance_2026-11-23.csv" in message
    assert "\n" not in message
    assert [r["user_id"] for r in read_zone(lake, "processed/members/")] == ["U1"]
    assert [r["class_id"] for r in read_zone(lake, "processed/classes/")] == ["C1"]
    assert not lake.list("processed/attendance/")
    assert lake.read_json("_state/transform/attendance.json") is None  # retried next run
    assert len(lake.read_json("_state/transform/members.json")["raw_ids"]) == 1


def test_reprocess_after_raw_retention_names_the_missing_file(lake, write_export):
    from glue.transform import TransformError

    attendance = _land_three_datasets(lake, write_export)
    run_transform(lake)
    before = read_zone(lake, "processed/attendance/")
    lake.delete(attendance.parquet_key)  # raw retention
    with pytest.raises(TransformError, match="missing") as failed:
        run_transform(lake, TransformOptions(quality=False, reprocess=True))
    assert attendance.parquet_key in str(failed.value)
    assert "attendance_2026-11-23.csv" in str(failed.value)
    assert read_zone(lake, "processed/attendance/") == before  # nothing of it was touched


# ---------------------------------------------------------------------------------------------
# First seen: the earliest export, whatever the batching
# ---------------------------------------------------------------------------------------------


def _pairs(write_export) -> list[tuple]:
    """Six pairs of exports a day apart, each pair sharing one check-in id with other times."""
    pairs = []
    for n in range(6):
        early = write_export(
            f"attendance_2026-11-{10 + n:02d}.csv",
            checkins((f"A{n}", f"2026-11-{10 + n:02d}T07:00Z"), (f"E{n}", "2026-11-01T06:00Z")),
        )
        late = write_export(
            f"attendance_2026-11-{11 + n:02d}_b.csv",
            checkins((f"A{n}", f"2026-11-{11 + n:02d}T08:00Z"), (f"L{n}", "2026-11-02T06:00Z")),
        )
        pairs.append((early, late))
    return pairs


@pytest.mark.parametrize("batching", ["one ingest", "early then late", "late then early"])
def test_first_seen_is_the_earliest_export_whatever_the_batching(tmp_path, write_export, batching):
    lake = Lake.from_uri(str(tmp_path / batching.replace(" ", "_")))
    pairs = _pairs(write_export)
    early, late = [p[0] for p in pairs], [p[1] for p in pairs]
    if batching == "one ingest":
        for path in early + late:
            land(lake, path)
        run_transform(lake)
    else:
        first, second = (early, late) if batching == "early then late" else (late, early)
        for path in first:
            land(lake, path)
        run_transform(lake)
        for path in second:
            land(lake, path, when=INGESTED_AT + dt.timedelta(days=1))
        run_transform(lake)
    rows = read_zone(lake, "processed/attendance/", "attendance_id")
    winners = {r["attendance_id"]: r["_source_file"] for r in rows if r["attendance_id"][0] == "A"}
    assert winners == {f"A{n}": f"attendance_2026-11-{10 + n:02d}.csv" for n in range(6)}
    assert len(rows) == 18
