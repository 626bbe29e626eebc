"""Landing exports: the raw zone, raw Parquet, the ledger, rejections, S3 and the Lambda handler."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from ingestion import handler
from ingestion.land import land_file, sha256_file
from peak.core import layout
from peak.core.ledger import committed_files
from tests.conftest import CHECKIN, INGESTED_AT, MEMBER, csv_bytes


def test_an_export_lands_byte_for_byte_with_its_parquet_and_ledger_entry(lake, write_export):
    path = write_export("attendance_2026-11-23.csv", [CHECKIN])
    result = land_file(lake, str(path), ingested_at=INGESTED_AT)
    sha = sha256_file(path)
    assert result.status == "landed" and result.raw_id == sha and result.rows == 1
    assert result.raw_key == f"raw/attendance/ingest_date=2026-11-24/{sha}.csv"
    assert lake.read_bytes(result.raw_key) == path.read_bytes()
    table = pq.read_table(lake.path(result.parquet_key))
    assert table.column("attendance_id").to_pylist() == ["A1"]
    assert result.export_date == "2026-11-23"
    assert [e["raw_id"] for e in committed_files(lake, "attendance")] == [sha]


def test_the_same_bytes_under_another_name_land_once(lake, write_export):
    first = write_export("attendance_2026-11-23.csv", [CHECKIN])
    again = write_export("attendance_copy.csv", first.read_bytes())
    land_file(lake, str(first), ingested_at=INGESTED_AT)
    result = land_file(lake, str(again), ingested_at=INGESTED_AT.replace(day=25))
    assert result.status == "already_landed"
    assert len(lake.list("raw/attendance/")) == 1
    assert len(committed_files(lake, "attendance")) == 1


def test_a_bad_file_is_quarantined_byte_for_byte_with_its_reason(lake, write_export):
    bad = write_export("members_2026-11-24.csv", "user_id,email\nU1,caf\xe9\n".encode("latin-1"))
    good = write_export("members_2026-11-25.csv", [MEMBER])
    results = [land_file(lake, str(p), ingested_at=INGESTED_AT) for p in (bad, good)]
    assert [r.status for r in results] == ["rejected", "landed"]  # it never stops the others
    rejected = results[0]
    assert rejected.code == "file.encoding"
    assert lake.read_bytes(rejected.quarantine_key) == bad.read_bytes()
    reason = lake.read_json(rejected.quarantine_key.rsplit(".", 1)[0] + ".reason.json")
    assert reason["code"] == "file.encoding" and reason["source"].endswith("members_2026-11-24.csv")
    assert not lake.list("raw_parquet/members/ingest_date=2026-11-24/" + rejected.raw_id)
    assert [e["raw_id"] for e in committed_files(lake, "members")] == [results[1].raw_id]


def test_an_unknown_dataset_is_quarantined_under_unknown(lake, write_export):
    path = write_export("payments_2026-11-24.csv", b"id,amount\n1,10\n")
    result = land_file(lake, str(path), ingested_at=INGESTED_AT)
    assert result.status == "rejected" and result.code == "file.unknown_dataset"
    assert result.quarantine_key.startswith("quarantine/_unknown/files/")
    assert "members" in result.reason


def test_an_explicit_dataset_overrides_the_file_name(lake, write_export):
    path = write_export("export.csv", [CHECKIN])
    result = land_file(lake, str(path), ingested_at=INGESTED_AT, dataset="attendance")
    assert result.status == "landed" and result.dataset == "attendance"
    assert result.export_date == "2026-11-24"  # no date in the name: the ingest date


def test_a_crash_before_the_ledger_entry_leaves_nothing_committed(lake, write_export, monkeypatch):
    path = write_export("attendance_2026-11-23.csv", [CHECKIN])

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(lake.__class__, "write_json", boom)
    monkeypatch.setattr(lake.__class__, "create", boom)
    with contextlib.suppress(OSError):
        land_file(lake, str(path), ingested_at=INGESTED_AT)
    monkeypatch.undo()
    assert committed_files(lake, "attendance") == []  # invisible to the transform
    assert land_file(lake, str(path), ingested_at=INGESTED_AT).status == "landed"


def test_an_s3_lake_and_s3_sources_use_the_same_code_path(s3, s3_lake):
    s3.client("s3").put_object(
        Bucket="peak-inbox", Key="exports/attendance_2026-11-23.csv", Body=csv_bytes([CHECKIN])
    )
    result = land_file(
        s3_lake,
        "s3://peak-inbox/exports/attendance_2026-11-23.csv",
        ingested_at=INGESTED_AT,
        boto3_session=s3,
    )
    assert result.status == "landed"
    keys = {o["Key"] for o in s3.client("s3").list_objects_v2(Bucket="peak-lake")["Contents"]}
    assert f"prod/{result.raw_key}" in keys and f"prod/{result.parquet_key}" in keys
    assert f"prod/{layout.ingest_ledger_key('attendance', result.raw_id)}" in keys
    assert committed_files(s3_lake, "attendance")[0]["rows"] == 1


def test_the_lambda_handler_lands_the_objects_of_a_real_s3_event(s3, s3_lake):
    event = json.loads((Path(__file__).parent / "events" / "s3_object_created.json").read_text())
    client = s3.client("s3")
    # keys in the event are URL-encoded: "Camden+gym" is "Camden gym", "%2B" is "+"
    client.put_object(
        Bucket="peak-inbox",
        Key="exports/Camden gym/attendance_2026-11-24.csv",
        Body=csv_bytes([CHECKIN]),
    )
    client.put_object(
        Bucket="peak-inbox", Key="exports/members+2026-11-24.json", Body=b'[{"user_id": "U1"'
    )
    outcome = handler.handle(event, s3_lake)
    assert outcome["landed"] == 1 and outcome["rejected"] == 1
    report = s3_lake.read_json(layout.run_report_key(outcome["run_id"]))
    assert report["datasets"]["members"]["rejected_files"][0]["code"] == "file.unreadable"
    assert handler.handle(event, s3_lake)["already_landed"] == 1  # S3 may deliver twice


def test_the_lambda_entry_point_reads_the_lake_from_the_environment(s3, monkeypatch):
    monkeypatch.setenv("PEAK_LAKE", "s3://peak-lake/env")
    s3.client("s3").put_object(
        Bucket="peak-inbox", Key="attendance_2026-11-24.csv", Body=csv_bytes([CHECKIN])
    )
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "peak-inbox"},
                    "object": {"key": "attendance_2026-11-24.csv"},
                },
            }
        ]
    }
    assert handler.handler(event, None)["landed"] == 1
    listed = s3.client("s3").list_objects_v2(Bucket="peak-lake", Prefix="env/raw/")
    assert listed["KeyCount"] == 1


def test_non_creation_events_and_folder_markers_are_ignored():
    event = {
        "Records": [
            {
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "a.csv"}},
            },
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "dir/"}},
            },
        ]
    }
    assert handler.sources_from_event(event) == []


def test_a_parallel_batch_lands_the_same_bytes_once(lake, write_export):
    from ingestion.land import land_many

    paths = [write_export(f"attendance_copy{i}.csv", csv_bytes([CHECKIN])) for i in range(6)]
    results = land_many(lake, [str(p) for p in paths], ingested_at=INGESTED_AT, workers=4)
    assert [r.source for r in results] == [str(p) for p in paths]  # input order kept
    assert sorted(r.status for r in results) == ["already_landed"] * 5 + ["landed"]
    assert len(committed_files(lake, "attendance")) == 1


def test_a_file_rejected_for_its_name_lands_once_renamed(lake, write_export):
    """An unsupported extension is about the name, not the bytes: the same bytes renamed to
    .csv land (a rejection of the bytes themselves is remembered; this one is not)."""
    body = csv_bytes([CHECKIN])
    wrong = write_export("attendance_2026-11-23.txt", body)
    rejected = land_file(lake, str(wrong), ingested_at=INGESTED_AT)
    assert rejected.status == "rejected" and rejected.code == "file.format"
    assert lake.read_bytes(rejected.quarantine_key) == body
    right = write_export("attendance_2026-11-23.csv", body)
    landed = land_file(lake, str(right), ingested_at=INGESTED_AT)
    assert landed.status == "landed" and landed.rows == 1
    assert [e["raw_id"] for e in committed_files(lake, "attendance")] == [landed.raw_id]


def test_two_runs_landing_one_file_at_once_count_it_landed_once(lake, write_export, monkeypatch):
    """Two `peak ingest` processes (the second on the next day): the second reads "no ledger
    entry", then the first lands the file before the second commits. Exactly one run lands it;
    the other counts it as landed before and leaves no second copy in the raw zone."""
    from ingestion.land import _land, record_landing
    from peak.core.lake import Lake
    from peak.core.report import RunReport

    path = write_export("attendance_2026-11-23.csv", [CHECKIN])
    sha = sha256_file(path)
    ledger_key = layout.ingest_ledger_key("attendance", sha)
    real_read_json = Lake.read_json
    first: list = []

    def read_json(self, key, default=None):
        seen = real_read_json(self, key, default)
        if key == ledger_key and not first:  # the second run has read "no entry": the first lands
            first.append(None)
            first[0] = _land(lake, str(path), path, sha, path.name, INGESTED_AT, None, None)
        return seen

    monkeypatch.setattr(Lake, "read_json", read_json)
    second = land_file(lake, str(path), ingested_at=INGESTED_AT.replace(day=25))
    report = RunReport("ingest")
    for result in (first[0], second):
        record_landing(report, result)
    stats = report.dataset("attendance")
    assert (first[0].status, second.status) == ("landed", "already_landed")
    assert (stats.files_landed, stats.files_already_landed, stats.rows_landed) == (1, 1, 1)
    assert [e["ingest_date"] for e in committed_files(lake, "attendance")] == ["2026-11-24"]
    assert lake.list("raw_parquet/attendance/") == [first[0].parquet_key]
    assert len(lake.list("raw/attendance/")) == 1


def test_an_identical_snapshot_resent_a_year_later_outlives_the_processed_retention(
    lake, write_export
):
    """An unchanged timetable re-sent on day 400 is a new delivery of the snapshot (its export
    date), not the file of day 1: pruned as of day 400, the processed zone still has it."""
    import datetime as dt

    from glue.engine.duckdb_engine import DuckDBEngine
    from glue.transform import TransformOptions, transform
    from peak.core.report import RunReport
    from peak.ops import prune
    from tests.conftest import CLASS, read_zone

    body = csv_bytes([CLASS])
    day1, day400 = dt.date(2025, 1, 1), dt.date(2025, 1, 1) + dt.timedelta(days=399)
    for day in (day1, day400):
        path = write_export(f"classes_{day.isoformat()}.csv", body)
        at = dt.datetime.combine(day, dt.time(6))
        result = land_file(lake, str(path), ingested_at=at)
        assert result.status == "landed" and result.export_date == day.isoformat()
        report = RunReport("transform")
        options = TransformOptions(quality=False)
        transform(lake, engine=DuckDBEngine(memory_limit="1GB"), report=report, options=options)
    again = land_file(lake, str(path), ingested_at=dt.datetime.combine(day400, dt.time(7)))
    assert again.status == "already_landed"  # the same delivery again lands once
    prune.prune(lake, as_of=day400, zones=["processed"])
    rows = read_zone(lake, "processed/classes/")
    assert [(r["class_id"], str(r["dt"])) for r in rows] == [("C1", day400.isoformat())]
