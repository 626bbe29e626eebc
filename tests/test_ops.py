"""Operating the platform: `peak prune` (the zones' retention, the same rules as the S3
lifecycle), `peak cost` (the monthly estimate against the design's budget) and `peak deploy
package` (the artefacts), on local lakes and moto's S3."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glue.engine import build_engine
from glue.transform import TransformOptions, transform
from ingestion.land import land_many
from peak.core import layout, ledger
from peak.core.lake import Lake
from peak.core.report import RunReport
from peak.core.settings import Settings
from peak.ops import cost, deploy, prune
from tests.conftest import CHECKIN, CLASS, MEMBER, csv_bytes, pip_install_wheel

DAY0 = dt.datetime(2026, 1, 1, 6, 0, 0)


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def peak_cli(monkeypatch):
    """Run `peak` in-process with cli_ops registered (as peak/cli/__init__.py registers it)."""
    from peak.cli import app
    from peak.cli import ops as cli_ops

    cli_ops.register(app)
    monkeypatch.setenv("PEAK_PROGRESS", "")

    def run(*args: str, lake: Lake | Path | str):
        root = lake.root if isinstance(lake, Lake) else str(lake)
        result = CliRunner().invoke(app, list(args), env={"PEAK_LAKE": root})
        return result

    return run


def land(lake: Lake, inbox: Path, name: str, rows: list[dict], when: dt.datetime):
    inbox.mkdir(exist_ok=True)
    path = inbox / name
    path.write_bytes(csv_bytes(rows))
    return land_many(lake, [str(path)], ingested_at=when)[0]


def run_transform(lake: Lake, reprocess: bool = False) -> RunReport:
    report = RunReport("transform")
    settings = Settings(lake=lake.root)
    transform(
        lake,
        engine=build_engine("duckdb", settings),
        report=report,
        options=TransformOptions.from_settings(settings, reprocess=reprocess, quality=False),
    )
    return report


def snapshot(lake: Lake, prefix: str) -> dict[str, bytes]:
    return {key: lake.read_bytes(key) for key in lake.list(prefix)}


def put(lake: Lake, key: str, data: bytes = b"x" * 10) -> str:
    lake.write_bytes(key, data)
    return key


@pytest.fixture
def old_and_new(tmp_path, lake):
    """A lake with a day landed and transformed on 2026-01-01 and one on 2026-03-01."""
    inbox = tmp_path / "inbox"
    land(lake, inbox, "members_2026-01-01.csv", [MEMBER], DAY0)
    land(lake, inbox, "classes_2026-01-01.csv", [CLASS], DAY0)
    old = dict(CHECKIN, checked_in_at="2026-01-01T07:00:00Z")
    land(lake, inbox, "attendance_2026-01-01.csv", [old], DAY0)
    new = dict(CHECKIN, attendance_id="A2", checked_in_at="2026-03-01T07:00:00Z")
    land(lake, inbox, "attendance_2026-03-01.csv", [new], dt.datetime(2026, 3, 1, 6))
    run_transform(lake)
    return lake


# -- retention, one source of truth -----------------------------------------------------------


def test_retention_is_the_designs():
    assert prune.RETENTION_DAYS == {"raw": 30, "processed": 365, "quarantine": 90}
    assert prune.ATHENA_RESULTS_RETENTION_DAYS == 7
    assert prune.RETENTION_DAYS["raw"] == prune.INBOX_RETENTION_DAYS


def test_zone_prefixes_are_derived_from_the_lake_layout():
    first = lambda key: key.split("/", 1)[0] + "/"  # noqa: E731
    zones = prune.zone_prefixes()
    assert zones["raw"] == (
        first(layout.raw_key("m", "d", "i", "csv")),
        first(layout.raw_parquet_key("m", "d", "i")),
    )
    assert zones["processed"] == (first(layout.processed_key("m", "d")),)
    assert zones["quarantine"] == (first(layout.quarantine_rows_key("m", "d", "i")),)
    assert first(layout.quarantine_file_key("m", "d", "i", "csv")) in zones["quarantine"]


def test_lifecycle_rules_are_the_retention_per_prefix():
    rules = prune.lifecycle_rules("lake/")
    days = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "Prefix" in r}
    assert days == {
        "lake/raw/": 30,
        "lake/raw_parquet/": 30,
        "lake/processed/": 365,
        "lake/quarantine/": 90,
    }
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("raw/members/ingest_date=2026-01-02/abc.csv", dt.date(2026, 1, 2)),
        ("processed/attendance/dt=2025-12-31/data.parquet", dt.date(2025, 12, 31)),
        ("quarantine/members/rows/ingest_date=2026-02-30/x.parquet", None),
        ("quarantine/_unknown/files/x.csv", None),
    ],
)
def test_a_files_date_is_the_date_in_its_key(key, expected):
    assert prune.key_date(key) == expected


def test_expiry_matches_s3_lifecycle_days():
    # S3 expires an object created on D at the first midnight after D + days.
    day = dt.date(2026, 1, 1)
    assert not prune.expired(day, 30, dt.date(2026, 1, 31))
    assert prune.expired(day, 30, dt.date(2026, 2, 1))


# -- prune ------------------------------------------------------------------------------------


def test_prune_removes_each_zone_after_its_retention(lake):
    d = "2026-01-01"
    raw = put(lake, layout.raw_key("members", d, "r1", "csv"))
    raw_pq = put(lake, layout.raw_parquet_key("members", d, "r1"))
    part = put(lake, layout.processed_key("attendance", d))
    q_rows = put(lake, layout.quarantine_rows_key("members", d, "r1"))
    q_file = put(lake, layout.quarantine_file_key("members", d, "r2", "json"))
    ledger.mark_processed(lake, "members", {"r1"}, "run")

    assert prune.prune(lake, as_of=dt.date(2026, 1, 31)).files == 0
    first = prune.prune(lake, as_of=dt.date(2026, 2, 1))
    assert set(first.keys) == {raw, raw_pq}
    assert first.zones["raw"].files == 2 and first.zones["raw"].bytes == 20
    assert prune.prune(lake, as_of=dt.date(2026, 4, 1)).files == 0  # 90 days old
    second = prune.prune(lake, as_of=dt.date(2026, 4, 2))
    assert set(second.keys) == {q_rows, q_file}
    third = prune.prune(lake, as_of=dt.date(2027, 1, 2))
    assert third.keys == [part]
    assert lake.list("raw/") == lake.list("processed/") == lake.list("quarantine/") == []
    assert not (Path(lake.root) / "raw" / "members" / f"ingest_date={d}").exists()
    assert (Path(lake.root) / "raw").is_dir()  # zone folders stay


def test_an_undated_key_ages_by_its_modification_time(lake):
    key = put(lake, "quarantine/_unknown/files/upload.bin")
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    os.utime(lake.path(key), (old, old))
    assert prune.prune(lake, as_of=dt.date(2026, 4, 1)).keys == []
    assert prune.prune(lake, as_of=dt.date(2026, 4, 2)).keys == [key]


def test_dry_run_lists_and_removes_nothing(lake):
    key = put(lake, layout.processed_key("members", "2024-01-01"))
    result = prune.prune(lake, as_of=dt.date(2026, 1, 1), dry_run=True)
    assert result.dry_run and result.keys == [key] and lake.exists(key)


def test_raw_files_the_transform_has_not_processed_are_kept(tmp_path, lake):
    landed = land(lake, tmp_path / "inbox", "members_2026-01-01.csv", [MEMBER], DAY0)
    result = prune.prune(lake, as_of=dt.date(2026, 6, 1))
    assert result.files == 0
    assert result.zones["raw"].kept_unprocessed == 2  # the raw bytes and the raw Parquet
    assert lake.exists(landed.raw_key) and lake.exists(landed.parquet_key)


def test_prune_keeps_the_ledgers_consistent(tmp_path, old_and_new):
    """Given a lake transformed twice, when the old day's raw files are pruned, then the
    ledgers are untouched, the next transform finds nothing new, a re-delivered old file is
    already landed, and --reprocess fails loudly instead of rebuilding from 30 days."""
    lake = old_and_new
    ledgers = snapshot(lake, "_state/")
    processed = snapshot(lake, "processed/")
    result = prune.prune(lake, as_of=dt.date(2026, 3, 5))
    assert result.zones["raw"].files == 6  # 3 files x (raw bytes + raw Parquet)
    assert all("ingest_date=2026-01-01" in key for key in result.keys)
    assert (
        lake.list("raw/attendance/")
        == [k for k in lake.list("raw/attendance/") if "ingest_date=2026-03-01" in k]
        != []
    )
    assert snapshot(lake, "_state/") == ledgers

    again = run_transform(lake)
    assert {name: s.files_in for name, s in again.datasets.items()} == {
        "members": 0,
        "classes": 0,
        "attendance": 0,
    }
    assert snapshot(lake, "processed/") == processed
    redelivered = land(
        lake,
        tmp_path / "inbox2",
        "attendance_2026-01-01.csv",
        [dict(CHECKIN, checked_in_at="2026-01-01T07:00:00Z")],
        dt.datetime(2026, 3, 5, 6),
    )
    assert redelivered.status == "already_landed"
    with pytest.raises(Exception, match="raw_parquet"):
        run_transform(lake, reprocess=True)
    assert snapshot(lake, "processed/") == processed


def test_prune_on_an_s3_lake(s3_lake):
    d = "2025-01-01"
    key = put(s3_lake, layout.processed_key("attendance", d))
    keep = put(s3_lake, layout.processed_key("attendance", "2026-11-01"))
    from peak.core.errors import TransformError
    from peak.core.locks import transform_lock as exclusive

    with exclusive(s3_lake, "transform-run"), pytest.raises(TransformError, match="transform-run"):
        prune.prune(s3_lake, as_of=dt.date(2026, 11, 25))  # never beside a transform
    assert sorted(s3_lake.list("processed/")) == sorted([key, keep])
    result = prune.prune(s3_lake, as_of=dt.date(2026, 11, 25))
    assert result.keys == [key]
    assert s3_lake.list("processed/") == [keep]
    assert not s3_lake.exists(layout.TRANSFORM_LOCK_KEY)


def test_prune_command_reports_per_zone(peak_cli, lake):
    put(lake, layout.processed_key("members", "2024-01-01"), b"y" * 100)
    dry = peak_cli("prune", "--dry-run", "--as-of", "2026-01-01", lake=lake)
    assert dry.exit_code == 0, dry.output
    assert "would remove" in dry.stdout and "processed/members/dt=2024-01-01" in dry.stdout
    assert lake.list("processed/")
    done = peak_cli("prune", "--as-of", "2026-01-01", lake=lake)
    assert done.exit_code == 0, done.output
    assert "removed" in done.stdout and lake.list("processed/") == []
    reports = [json.loads(lake.read_bytes(k)) for k in lake.list("_runs/")]
    stages = [r["stages"]["prune"] for r in sorted(reports, key=lambda r: r["started_at"])]
    assert [s["dry_run"] for s in stages] == [True, False]
    assert stages[1]["zones"]["processed"]["files"] == 1
    assert stages[1]["zones"]["processed"]["bytes"] == 100
    bad = peak_cli("prune", "--zone", "warehouse", lake=lake)
    assert bad.exit_code == 1 and "unknown zone" in bad.output


# -- cost -------------------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 25, 12, 0, 0)


def save_report(lake: Lake, command: str, start: dt.datetime, seconds: float, **extra) -> None:
    report = RunReport(command, run_id=f"{start:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}")
    report.started_at = start
    report.finished_at = start + dt.timedelta(seconds=seconds)
    report.options = extra.pop("options", {})
    report.stages = extra.pop("stages", {})
    report.status = "ok"
    report.save(lake)


def test_zone_bytes_sum_the_files_in_each_zone(lake):
    put(lake, layout.raw_key("members", "2026-01-01", "a", "csv"), b"1" * 100)
    put(lake, layout.raw_parquet_key("members", "2026-01-01", "a"), b"2" * 50)
    put(lake, layout.processed_key("members", "2026-01-01"), b"3" * 7)
    put(lake, layout.run_report_key("r1"), b"{}")
    zones = cost.zone_bytes(lake)
    assert zones["raw"] == {"files": 2, "bytes": 150}
    assert zones["processed"] == {"files": 1, "bytes": 7}
    assert zones["quarantine"] == {"files": 0, "bytes": 0}
    assert zones["other"] == {"files": 1, "bytes": 2}


def test_zone_bytes_on_s3_list_object_sizes(s3_lake):
    put(s3_lake, layout.processed_key("members", "2026-01-01"), b"3" * 70)
    assert cost.zone_bytes(s3_lake)["processed"] == {"files": 1, "bytes": 70}


def test_glue_cost_from_transform_run_reports(lake):
    """Given a month of daily DuckDB runs of 2 minutes and one Spark backfill of 30 minutes
    on the Glue job, the DPU-hours follow Glue's billing."""
    for day in range(30):
        start = NOW - dt.timedelta(days=29 - day, hours=2)
        save_report(lake, "transform", start, 120, options={"engine": "duckdb", "job_name": "j"})
    save_report(
        lake,
        "transform",
        NOW - dt.timedelta(hours=1),
        1800,
        options={"engine": "spark", "job_name": "j"},
    )
    save_report(lake, "transform", NOW - dt.timedelta(hours=1), 5, options={"engine": "duckdb"})
    result = cost.estimate(lake, days=30, now=NOW, workers=4, worker_type="G.2X")
    glue = next(line for line in result.lines if line.service == "Glue")
    # DuckDB runs: the Python-shell job, 1 DPU at its price (no FLEX); Spark: 4 x G.2X.
    duckdb_dpu_h = 30 * 1 * (120 + cost.GLUE_START_SECONDS) / 3600
    spark_dpu_h = 4 * 2 * (1800 + cost.GLUE_START_SECONDS) / 3600
    scale = 30 / result.observed_days
    shell_usd = duckdb_dpu_h * cost.PRICES["glue_pyshell_dpu_hour"].usd
    expected = (shell_usd + spark_dpu_h * cost.PRICES["glue_flex_dpu_hour"].usd) * scale
    assert glue.basis == "measured"  # the local run without a job name is not counted
    assert glue.billed_usd == pytest.approx(expected)
    assert "30 duckdb" in glue.usage and "1 spark" in glue.usage
    standard = cost.estimate(
        lake, days=30, now=NOW, workers=4, worker_type="G.2X", execution_class="STANDARD"
    )
    glue_std = next(line for line in standard.lines if line.service == "Glue")
    expected_std = (shell_usd + spark_dpu_h * cost.PRICES["glue_dpu_hour"].usd) * scale
    assert glue_std.billed_usd == pytest.approx(expected_std)
    assert glue_std.budget_usd == 1.20
    assert glue_std.status == ("within budget" if glue_std.billed_usd <= 1.2 else "over budget")


def test_athena_cost_is_measured_when_reports_record_it_else_estimated(lake):
    put(lake, layout.processed_key("members", "2026-11-01"), b"p" * 1000)
    save_report(
        lake,
        "build",
        NOW - dt.timedelta(days=1),
        60,
        stages={"build": {"target": "athena", "nodes": 50}},
    )
    estimated = cost.estimate(lake, days=30, now=NOW)
    athena = next(line for line in estimated.lines if line.service == "Athena")
    assert athena.basis == "estimated"
    per_build = 1000 + 50 * cost.ATHENA_MIN_BYTES
    builds_per_day = 1 / estimated.observed_days
    expected = per_build * builds_per_day * 30 / cost.TB * cost.PRICES["athena_tb"].usd
    assert athena.billed_usd == pytest.approx(expected)
    assert athena.budget_usd == 0.50 and athena.status == "within budget"

    save_report(
        lake,
        "build",
        NOW - dt.timedelta(hours=3),
        60,
        stages={"build": {"target": "athena", "athena_bytes_scanned": 2 * cost.TB}},
    )
    measured = cost.estimate(lake, days=30, now=NOW)
    athena = next(line for line in measured.lines if line.service == "Athena")
    assert athena.basis == "measured"
    assert athena.billed_usd == pytest.approx(2 * 5.00 * 30 / measured.observed_days)
    assert athena.status == "over budget" and measured.status == "over budget"


def test_cost_command_prints_a_table_with_totals_and_json(peak_cli, lake):
    save_report(
        lake,
        "transform",
        dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1),
        30,
        options={"engine": "duckdb"},
    )
    table = peak_cli("cost", lake=lake)
    assert table.exit_code == 0, table.output
    for text in ("Glue", "Athena", "total", "budget", "estimated"):
        assert text in table.stdout
    as_json = peak_cli("cost", "--json", lake=lake)
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["budget_usd"] == 1.70 and data["status"] in ("within budget", "over budget")
    assert {line["service"] for line in data["lines"]} >= {"Glue", "Athena", "S3 raw"}
    assert data["prices"]["date"] == cost.PRICES_DATE
    reports = [json.loads(lake.read_bytes(k)) for k in lake.list("_runs/")]
    assert any(r["command"] == "cost" and "cost" in r["stages"] for r in reports)


# -- deploy package ---------------------------------------------------------------------------


def test_lambda_wheel_tags():
    assert deploy.runs_on_lambda("cp311-cp311-manylinux_2_17_x86_64")
    assert deploy.runs_on_lambda("cp311-cp311-manylinux2014_x86_64")
    assert deploy.runs_on_lambda("py3-none-any")
    assert not deploy.runs_on_lambda("cp311-cp311-manylinux_2_28_x86_64")  # newer glibc
    assert not deploy.runs_on_lambda("cp311-cp311-manylinux_2_17_aarch64")
    assert not deploy.runs_on_lambda("cp312-cp312-manylinux_2_17_x86_64")
    assert not deploy.runs_on_lambda("cp311-cp311-macosx_11_0_arm64")


def test_deps_layer_carries_only_what_the_managed_layer_lacks():
    vendored = deploy.lambda_vendored()
    assert {"pydantic", "pydantic-core", "pydantic-settings", "pyyaml"} <= set(vendored)
    assert not {"numpy", "pyarrow", "pandas", "boto3", "botocore"} & set(vendored)


def test_deploy_package_builds_reproducible_artefacts(peak_cli, tmp_path):
    out = tmp_path / "dist"
    result = peak_cli("deploy", "package", "--out", str(out), lake="s3://peak-test-lake/lake")
    assert result.exit_code == 0, result.output
    for text in ("Lambda function", "Glue wheel", "CloudFormation template", "sha256"):
        assert text in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lake"] == "s3://peak-test-lake/lake"
    first = {a["name"]: a["sha256"] for a in manifest["artefacts"]}
    function = next(a for a in manifest["artefacts"] if a["name"] == "Lambda function")
    with zipfile.ZipFile(out / "artifacts" / function["key"]) as archive:
        names = archive.namelist()
    assert {n.split("/", 1)[0] for n in names} == {"peak", "ingestion", "contracts"}
    assert {"contracts/members.yml", "ingestion/handler.py"} <= set(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    again = peak_cli("deploy", "package", "--out", str(out), lake="s3://peak-test-lake/lake")
    assert again.exit_code == 0
    second = json.loads((out / "manifest.json").read_text())
    assert {a["name"]: a["sha256"] for a in second["artefacts"]} == first


def test_deploy_package_needs_an_s3_lake(peak_cli, tmp_path):
    result = peak_cli("deploy", "package", "--out", str(tmp_path / "d"), lake=tmp_path / "lake")
    assert result.exit_code == 1 and "S3 lake" in result.output


def test_the_glue_wheel_installs_with_pip(tmp_path):
    wheel = deploy.build_glue_wheel(tmp_path)
    target = pip_install_wheel(tmp_path / "artifacts" / wheel.key, tmp_path / "site")
    assert (target / "contracts" / "attendance.yml").exists()
    assert (target / "glue" / "job.py").exists()
    meta = next(target.glob("peak_glue-*.dist-info")) / "METADATA"
    requires = [line for line in meta.read_text().splitlines() if line.startswith("Requires-Dist")]
    assert any(r.startswith("Requires-Dist: sqlglot==") for r in requires)
    assert not any("pyspark" in r for r in requires)  # Glue's own


def test_the_overall_status_judges_only_the_budgeted_services():
    """Given Glue and Athena within their budgets and unbudgeted services (CodeBuild, the
    secret) that take the total above the budget's sum, the estimate is within budget; one
    budgeted service over its line makes it over budget."""
    lines = [
        cost.Line("Glue", "", "measured", 0.44, 0.44, budget_usd=1.20),
        cost.Line("Athena", "", "measured", 0.16, 0.16, budget_usd=0.50),
        cost.Line("CodeBuild", "", "measured", 0.85, 0.85),
        cost.Line("Secrets Manager", "", "assumed", 0.40, 0.40),
    ]
    estimate = cost.Estimate("lake", 30, 30.0, lines=lines)
    assert estimate.total_usd == pytest.approx(1.85)
    assert estimate.total_usd > estimate.budget_usd
    assert estimate.budgeted_usd == pytest.approx(0.60)
    assert estimate.status == "within budget"
    lines[1] = cost.Line("Athena", "", "measured", 0.60, 0.60, budget_usd=0.50)
    assert cost.Estimate("lake", 30, 30.0, lines=lines).status == "over budget"


def test_codebuild_pins_every_package_it_installs_to_the_locked_versions():
    """CodeBuild installs requirements-codebuild.txt: every package, dependencies included, at
    the version this (locked) environment holds, and nothing only the tests need."""
    from importlib import metadata

    lines = [ln for ln in deploy.codebuild_requirements().splitlines() if not ln.startswith("#")]
    pins = dict(line.split("==") for line in lines)
    assert all(version for version in pins.values())
    for name, version in pins.items():
        assert metadata.version(name) == version
    names = {n.lower() for n in pins}
    assert {"dbt-core", "dbt-athena", "hubspot-api-client", "awswrangler"} <= names
    assert {"botocore", "agate", "urllib3", "jinja2"} <= names  # dependencies, pinned too
    assert not {"moto", "pytest", "pyspark", "streamlit"} & names
