"""Athena parity on a small generated lake: the project compiled for Athena in both forms, typed,
checked for hazards, and each model's Athena SQL run on DuckDB against the local build.

One module-scoped lake (the dbt tests' sample: 250 members, 70 days, built as of END) is
compiled once in-process; the command (``peak build --target athena --compare``) runs on a copy
whose local warehouse was tampered with, to see a difference reported.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from generator.generate import generate
from peak.core.lake import Lake
from peak.core.layout import SERVING_WAREHOUSE_KEY
from peak.model.athena import check, compare_rows, project
from tests.conftest import run_peak

END = dt.date(2026, 11, 24)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]
INCREMENTAL = {
    "fct_attendance",
    "int_location_daily_visits",
    "int_member_months",
    "int_member_weeks",
}


def peak(lake: Path, *args: str, ok: bool = True):
    return run_peak(lake, *args, check=ok, AWS_ENDPOINT_URL="")


def last_report(lake: Path, command: str) -> dict:
    found = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    return sorted((r for r in found if r["command"] == command), key=lambda r: r["started_at"])[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    generate(out, members=250, days=70, seed=5, dirty_rate=0.0, end_date=END)
    lake = tmp_path_factory.mktemp("athena") / "lake"
    peak(lake, "ingest", str(out), "--date", END.isoformat())
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", END.isoformat())
    return lake


@pytest.fixture(scope="module")
def compiled(built):
    lake = Lake.from_uri(str(built))
    assert compare_rows.built_as_of(lake) == END.isoformat()
    result = project.compile_project(lake, vars={"as_of_date": END.isoformat()})
    yield result
    result.close()


def test_every_incremental_model_is_compiled_in_both_forms(compiled):
    incremental = {n.name for n in compiled.nodes.values() if n.incremental}
    assert incremental == INCREMENTAL
    for name in incremental:
        forms = compiled.nodes[name].sql
        assert set(forms) == {"full-refresh", "incremental"}
        assert forms["incremental"] != forms["full-refresh"]
    # Compiled as on the day after the local build: the newest day is rebuilt, by partition.
    daily = compiled.nodes["fct_attendance"].sql["incremental"]
    assert re.search(rf"where dt in \((date '[0-9-]+', )+date '{END.isoformat()}'\)", daily), daily
    senders = {q.node_id.rsplit(".", 1)[-1] for q in compiled.queries if q.node_id}
    assert senders == INCREMENTAL  # every incremental model's macros asked the emulator


def test_ratios_are_doubles_on_athena(compiled):
    """Athena computed `n * 1.0 / d` as a decimal rounded to one place: members at risk on DuckDB
    were not at risk on Athena, and utilisation and retention rates were rounded."""
    types = compiled.schema["awsdatacatalog"]["peak_analytics"]
    assert types["int_churn_status"]["recent_weekly_rate"] == "double"
    assert types["int_churn_status"]["baseline_weekly_rate"] == "double"
    assert types["mart_class_utilisation"]["avg_attendees"] == "double"
    assert types["mart_class_utilisation"]["utilisation"] == "double"
    assert types["mart_cohort_retention"]["retention_rate"] == "double"
    assert types["int_member_weeks"]["week_number"] == "bigint"


def test_the_project_has_no_hazard_outside_the_accepted_scans(compiled):
    result = check.check_project(compiled)
    assert [f.to_dict() for f in result.failures] == []
    assert result.errors == {} and result.stale == []
    checked = {form for _, form in result.checked}
    assert {"full-refresh", "incremental", "introspective", "snapshot"} <= checked
    # Every accepted scan is one a query really makes, read from the file.
    assert {a for _, a in result.accepted} == set(check.load_accepted())


def test_every_models_athena_sql_gives_the_local_builds_rows(compiled):
    results = compare_rows.compare_project(compiled)
    by_status: dict[str, list[str]] = {}
    for item in results:
        by_status.setdefault(item.status, []).append(f"{item.model} ({item.form})")
    assert compare_rows.DIFFERENT not in by_status, [
        r.to_dict() for r in results if r.status == "different"
    ]
    assert sorted(by_status[compare_rows.NOT_COMPARABLE]) == [
        "snap_churn_status (snapshot)",
        "snap_member_status (snapshot)",
    ]
    models = {n.name for n in compiled.nodes.values() if n.resource_type == "model"}
    identical = {r.model for r in results if r.status == compare_rows.IDENTICAL}
    assert identical == models
    for item in results:
        if item.form == "incremental":
            assert item.partitions and item.athena_rows, item.to_dict()
        if item.status == compare_rows.IDENTICAL and item.form == "full-refresh":
            assert item.athena_rows == item.duckdb_rows


def test_the_command_reports_a_difference_with_example_rows(built, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(built, lake)
    con = duckdb.connect(str(lake / SERVING_WAREHOUSE_KEY))
    try:
        (class_id,) = con.execute("select min(class_id) from mart_class_utilisation").fetchone()
        con.execute(
            "update mart_class_utilisation set check_ins = check_ins + 1 where class_id = ?",
            [class_id],
        )
    finally:
        con.close()
    result = peak(lake, "build", "--target", "athena", "--compare", ok=False)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "differs from the local build: mart_class_utilisation" in result.stderr
    stages = last_report(lake, "build")["stages"]
    assert stages["athena_check"]["findings"] == []
    compared = {(m["model"], m["form"]): m for m in stages["compare"]["models"]}
    different = compared[("mart_class_utilisation", "full-refresh")]
    assert different["status"] == "different"
    assert different["only_athena"][0][0] == different["only_duckdb"][0][0] == class_id
    assert compared[("dim_classes", "full-refresh")]["status"] == "identical"
    assert stages["compare"]["as_of"] == END.isoformat()
