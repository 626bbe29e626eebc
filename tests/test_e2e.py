"""End to end through the `peak` CLI on generated data, with both engines.

Given a dirty sample from `peak generate` (every kind of bad row and bad file), when `peak run`
lands and transforms it with DuckDB and, in another lake, `peak ingest` + `peak transform
--engine spark` do the same, then every bad file is rejected, every injected rule violation is
quarantined under its own reason code, nothing is lost, both engines build the same zones, and
running everything again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from generator.generate import generate
from peak.core.lake import Lake
from tests.conftest import read_zone, run_peak

END = dt.date(2026, 11, 24)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


def peak(lake: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return run_peak(lake, *args, check=True, **extra)


def reports(lake: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    return sorted(found, key=lambda r: r["started_at"])


def last_report(lake: Path) -> dict:
    return reports(lake)[-1]


def first_run(lake: Path) -> dict:
    return next(r for r in reports(lake) if r["command"] == "run")


def zones(lake: Path) -> dict[str, list[dict]]:
    """Both zones' rows, without ``_ingested_at`` (two lakes land at different moments)."""
    store = Lake.from_uri(str(lake))
    out = {}
    for ds in ("members", "classes", "attendance"):
        out[f"processed/{ds}"] = read_zone(store, f"processed/{ds}/", "_raw_id, _source_row")
        out[f"quarantine/{ds}"] = read_zone(store, f"quarantine/{ds}/rows/", "_raw_id, _source_row")
    return {
        zone: [{k: v for k, v in row.items() if k != "_ingested_at"} for row in rows]
        for zone, rows in out.items()
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    return generate(out, members=300, days=21, seed=11, dirty_rate=0.03, end_date=END)


@pytest.fixture(scope="module")
def redis_env(redis_url):
    """The real Redis of the test session under a key prefix of this module's own."""
    import redis

    from tests.redis_server import delete_prefix

    prefix = f"peak-test:e2e:{os.getpid()}"
    yield {"REDIS_URL": redis_url, "PEAK_LEADERBOARD_PREFIX": prefix}
    delete_prefix(redis.Redis.from_url(redis_url), prefix)


@pytest.fixture(scope="module")
def duckdb_lake(sample, tmp_path_factory, redis_env):
    lake = tmp_path_factory.mktemp("duckdb") / "lake"
    peak(lake, "run", "--input", str(sample.out), **redis_env)
    return lake


def test_every_bad_file_is_rejected_and_every_injected_violation_quarantined(sample, duckdb_lake):
    report = first_run(duckdb_lake)
    assert report["status"] == "ok"
    rejected = {
        Path(f["file"]).name
        for f in (item for stats in report["datasets"].values() for item in stats["rejected_files"])
    }
    assert rejected == {p.name for p in sample.bad_files}
    for dataset, injected in sample.injected.items():
        stats = report["datasets"][dataset]
        assert stats["balanced"]
        assert stats["rows_in"] == stats["rows_landed"] == sample.rows[dataset]
        assert stats["reasons"] == injected, dataset
    assert report["datasets"]["attendance"]["rows_valid"] == sample.check_ins
    assert {"phone", "device"} <= {
        c for s in report["datasets"].values() for c in s["extra_columns_dropped"]
    }
    assert "quality" in report["stages"] and len(report["stages"]["quality"]) == 3


def test_the_processed_zone_holds_only_contract_columns_and_no_duplicates(duckdb_lake):
    rows = zones(duckdb_lake)
    checkins = rows["processed/attendance"]
    assert len({r["attendance_id"] for r in checkins}) == len(checkins)
    assert "device" not in checkins[0] and "phone" not in rows["processed/members"][0]
    members = rows["processed/members"]
    assert len({(r["user_id"], r["dt"]) for r in members}) == len(members)
    assert all(r["email"] == r["email"].strip().lower() for r in members)


def test_the_run_builds_the_marts_then_activates_them(duckdb_lake):
    report = first_run(duckdb_lake)
    build = report["stages"]["build"]
    assert build["success"] and Path(build["published"]).exists()
    sinks = report["stages"]["activation"]
    board = sinks["leaderboard"]
    assert board["status"] == "ok" and board["sent"] > 0 and board["balanced"]
    crm = sinks["hubspot"]  # no HUBSPOT_ACCESS_TOKEN: a dry run into the outbox
    assert crm["dry_run"] and crm["status"] == "ok" and crm["outbox"]


def test_running_again_changes_nothing(sample, duckdb_lake, redis_env):
    before = zones(duckdb_lake)
    peak(duckdb_lake, "run", "--input", str(sample.out), **redis_env)
    report = last_report(duckdb_lake)
    assert all(s["files_landed"] == 0 and s["rows_in"] == 0 for s in report["datasets"].values())
    assert zones(duckdb_lake) == before
    board = report["stages"]["activation"]["leaderboard"]
    assert board["sent"] == 0 and board["unchanged"] == board["records"] > 0


@pytest.mark.spark
def test_the_spark_engine_builds_the_same_zones_through_the_cli(sample, duckdb_lake, tmp_path):
    lake = tmp_path / "lake"
    peak(lake, "ingest", str(sample.out))
    peak(lake, "transform", "--engine", "spark")
    spark_report, duck_report = last_report(lake), first_run(duckdb_lake)
    for dataset in ("members", "classes", "attendance"):
        for key in ("rows_in", "rows_valid", "rows_quarantined", "rows_deduplicated", "reasons"):
            assert spark_report["datasets"][dataset][key] == duck_report["datasets"][dataset][key]
    assert zones(lake) == zones(duckdb_lake)
