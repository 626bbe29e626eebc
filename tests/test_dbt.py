"""The dbt project through `peak`: sources from the contracts, the build on DuckDB, incremental
days, warnings and failures, snapshots, docs, and the Athena compile-only check.

One module-scoped lake (generated sample, ingested and transformed, then `peak build`) serves
the read-only tests; tests that change data work on a copy of it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

import contracts
from generator.generate import generate
from peak.core.lake import Lake
from peak.core.layout import SERVING_WAREHOUSE_KEY, WAREHOUSE_KEY
from peak.model import dbt
from tests.conftest import csv_bytes, run_peak

END = dt.date(2026, 11, 24)
AS_OF = END.isoformat()
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]


def peak(lake: Path, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
    return run_peak(lake, *args, check=ok, **env)


def last_report(lake: Path, command: str) -> dict:
    found = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    return sorted((r for r in found if r["command"] == command), key=lambda r: r["started_at"])[-1]


def query(lake: Path, sql: str, key: str = SERVING_WAREHOUSE_KEY) -> list[tuple]:
    con = duckdb.connect(str(lake / key), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def target_dir(lake: Path, target: str) -> Path:
    return dbt.target_path(Lake.from_uri(str(lake)), target)


def compiled_days(lake: Path) -> list[str]:
    """The dt literals the last run of fct_attendance rebuilt."""
    path = target_dir(lake, "local") / "compiled/peak_fitness/models/core"
    text = (path / "fct_attendance.sql").read_text()
    return re.findall(r"date '(\d{4}-\d{2}-\d{2})'", text.split("where dt in", 1)[1])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    generate(out, members=250, days=70, seed=5, dirty_rate=0.0, end_date=END)
    lake = tmp_path_factory.mktemp("dbt") / "lake"
    peak(lake, "ingest", str(out), "--date", AS_OF)
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", AS_OF)
    return lake


def copy_lake(lake: Path, to: Path) -> Path:
    """A built lake copied to ``to``, without dbt's compiled target (absolute paths inside)."""
    shutil.copytree(lake, to)
    shutil.rmtree(to / "_dbt" / "target-local", ignore_errors=True)
    return to


@pytest.fixture
def lake_copy(built, tmp_path) -> Path:
    return copy_lake(built, tmp_path / "lake")


def ingest_and_transform(lake: Path, tmp_path: Path, name: str, rows: list[dict]) -> None:
    inbox = tmp_path / f"inbox-{name}"
    inbox.mkdir()
    (inbox / name).write_bytes(csv_bytes(rows))
    peak(lake, "ingest", str(inbox))  # landed now: after everything the fixture landed
    peak(lake, "transform", "--no-quality")


# ---------------------------------------------------------------------------------------------
# Sources and documentation (no build needed)
# ---------------------------------------------------------------------------------------------


def test_the_sources_file_is_generated_from_the_contracts():
    assert dbt.SOURCES_FILE.read_text(encoding="utf-8") == dbt.sources_yaml(), (
        "dbt_project/models/staging/_sources.yml is stale: run `peak dbt-sources`"
    )
    document = yaml.safe_load(dbt.SOURCES_FILE.read_text(encoding="utf-8"))
    tables = {t["name"]: t for t in document["sources"][0]["tables"]}
    assert set(tables) == set(contracts.load_all())
    for name, contract in contracts.load_all().items():
        columns = [c["name"] for c in tables[name]["columns"]]
        expected = [*contract.column_names, *contracts.PROCESSED_LINEAGE, "dt"]
        assert columns == expected
        fresh = tables[name]["freshness"]
        assert fresh["warn_after"]["count"] == contract.freshness.warn_after_hours
        assert tables[name]["loaded_at_field"] == contracts.INGESTED_AT


def test_a_stale_sources_file_is_reported(monkeypatch, tmp_path):
    stale = tmp_path / "_sources.yml"
    stale.write_text("version: 2\n")
    assert dbt.write_sources(stale) is True
    assert stale.read_text() == dbt.sources_yaml()
    assert dbt.write_sources(stale) is False


# ---------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------


def test_the_build_passes_and_publishes_every_mart(built):
    report = last_report(built, "build")
    stage = report["stages"]["build"]
    assert report["status"] == "ok" and stage["success"]
    assert stage["by_status"].get("error", 0) == 0 and stage["by_status"].get("fail", 0) == 0
    assert stage["by_status"]["pass"] >= 80  # data tests and the unit tests all ran
    assert Path(stage["published"]) == built / SERVING_WAREHOUSE_KEY
    # Source freshness ran with the contracts' thresholds (the sample was landed on END).
    fresh = {f["source"]: f for f in report["stages"]["freshness"]}
    assert set(fresh) == set(contracts.load_all())
    for row in fresh.values():
        assert row["status"] in ("pass", "warn", "error") and row["age_hours"] > 0
        assert row["max_loaded_at"].startswith(AS_OF)
    tables = {r[0] for r in query(built, "select table_name from information_schema.tables")}
    for name in (
        "fct_attendance",
        "dim_users",
        "dim_classes",
        "snap_member_status",
        "mart_member_activity",
        "mart_churn",
        "mart_leaderboard_weekly",
        "mart_hubspot_contacts",
        "mart_email_targets",
        "mart_location_daily",
        "mart_class_utilisation",
        "mart_cohort_retention",
    ):
        assert name in tables, name
        assert query(built, f"select count(*) from {name}")[0][0] > 0, name


def test_no_check_in_is_lost_between_the_processed_zone_and_the_fact(built):
    processed = duckdb.sql(
        f"select count(*), count(distinct attendance_id) from read_parquet("
        f"'{built}/processed/attendance/*/*.parquet')"
    ).fetchall()[0]
    fact = query(built, "select count(*), count(distinct attendance_id) from fct_attendance")[0]
    assert fact == processed and fact[0] > 1_000


def test_every_model_and_column_is_described(built):
    manifest = json.loads((target_dir(built, "local") / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] in ("model",)}
    assert len(models) >= 20
    columns = query(
        built,
        "select table_name, column_name from information_schema.columns "
        "where table_schema = 'main'",
    )
    for table, column in columns:
        if table not in models:
            continue
        node = models[table]
        assert node["description"].strip(), f"{table} has no description"
        described = node["columns"].get(column, {}).get("description", "").strip()
        assert described, f"{table}.{column} has no description"
    exposures = {e["name"] for e in manifest["exposures"].values()}
    assert exposures == {"dashboard", "redis_leaderboard", "hubspot_sync", "retention_emails"}


def test_marts_agree_with_the_fact(built):
    # Leaderboard: per week and board, a rank is one plus the members with more visits (tied
    # members share it), and visits equal the fact's counts.
    wrong = query(
        built,
        "select count(*) from mart_leaderboard_weekly m where m.rank <> 1 + ("
        "select count(*) from mart_leaderboard_weekly o where o.week_start = m.week_start "
        "and o.board = m.board and o.visits > m.visits)",
    )
    assert wrong == [(0,)]
    top = query(
        built,
        "select user_id, visits, week_start from mart_leaderboard_weekly "
        "where board = 'overall' and rank = 1 order by week_start desc limit 1",
    )[0]
    visits = query(
        built,
        f"select count(*) from fct_attendance where user_id = '{top[0]}' "
        f"and week_start = date '{top[2]}'",
    )[0][0]
    assert visits == top[1]
    # Activity: 30-day visits equal the fact's for every member.
    mismatched = query(
        built,
        f"""select count(*) from mart_member_activity a left join (
              select user_id, count(*) n from fct_attendance
              where local_date > date '{AS_OF}' - 30 and local_date <= date '{AS_OF}'
              group by user_id) f using (user_id)
            where a.visits_30d <> coalesce(f.n, 0)""",
    )[0][0]
    assert mismatched == 0
    # The CRM mart holds every current member with their status (the HubSpot sink's config
    # chooses its audience); the email mart only opted-in, at-risk or churned ones.
    crm = query(built, "select churn_status, count(*) from mart_hubspot_contacts group by 1")
    assert {status for status, _ in crm} == {"active", "at_risk", "churned"}
    owners = query(built, "select count(*) from dim_users where owns_email")[0][0]
    assert sum(n for _, n in crm) == owners
    segments = {r[0] for r in query(built, "select distinct segment from mart_email_targets")}
    assert segments <= {"churned", "at_risk"} and segments
    opted_out = query(
        built,
        "select count(*) from mart_email_targets t join dim_users u using (user_id) "
        "where not u.marketing_opt_in",
    )[0][0]
    assert opted_out == 0
    # No email reaches the leaderboard.
    assert (
        query(built, "select count(*) from mart_leaderboard_weekly where handle like '%@%'")[0][0]
        == 0
    )


# ---------------------------------------------------------------------------------------------
# Incremental days, unknown references, failures, snapshots
# ---------------------------------------------------------------------------------------------


def test_a_daily_run_rebuilds_only_changed_days_and_keeps_unknown_members(lake_copy, tmp_path):
    peak(lake_copy, "build", "--as-of", AS_OF, "--select", "fct_attendance")
    lookback = compiled_days(lake_copy)
    assert lookback == ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"]

    member, klass = query(lake_copy, "select user_id, class_id from fct_attendance limit 1")[0]
    late = [
        {"attendance_id": "LATE1", "user_id": member, "class_id": klass,
         "checked_in_at": "2026-10-01T09:00:00Z"},
        {"attendance_id": "GHOST1", "user_id": "U999999", "class_id": klass,
         "checked_in_at": "2026-11-24T18:00:00Z"},
    ]  # fmt: skip
    ingest_and_transform(lake_copy, tmp_path, "attendance_2026-11-24_late.csv", late)
    before = query(lake_copy, "select count(*) from fct_attendance")[0][0]
    result = peak(lake_copy, "build", "--as-of", AS_OF)
    assert compiled_days(lake_copy) == ["2026-10-01", *lookback]
    after = query(lake_copy, "select count(*) from fct_attendance")[0][0]
    assert after == before + 2
    ghost = query(
        lake_copy, "select is_known_member from fct_attendance where attendance_id = 'GHOST1'"
    )
    assert ghost == [(False,)]  # kept, flagged
    warnings = {
        w["name"]: w["failures"]
        for w in last_report(lake_copy, "build")["stages"]["build"]["warnings"]
    }
    assert warnings.get("relationships_fct_attendance_user_id__user_id__ref_dim_users_") == 1
    assert any(w.startswith("is_known_fct_attendance_is_known_member") for w in warnings)
    assert "warn" in result.stdout

    # Every incremental model equals a rebuild from scratch.
    tables = {
        "int_member_weeks": "user_id, week_start",
        "int_location_daily_visits": "location, activity_date",
        "int_member_months": "user_id, activity_month",
        "fct_attendance": "attendance_id",
    }
    sql = "select * exclude (ingested_at) from {} order by {}"
    incremental = {t: query(lake_copy, sql.format(t, order)) for t, order in tables.items()}
    peak(lake_copy, "build", "--as-of", AS_OF, "--full-refresh", "--select", " ".join(tables))
    for table, order in tables.items():
        assert query(lake_copy, sql.format(table, order)) == incremental[table], table


def test_a_failing_test_fails_the_build_and_keeps_the_last_good_warehouse(lake_copy):
    serving = lake_copy / SERVING_WAREHOUSE_KEY
    before = serving.read_bytes()
    # An upstream bug (or a hand edit of the lake) duplicates a check-in in the processed zone.
    partition = lake_copy / "processed/attendance/dt=2026-11-24"
    duckdb.sql(
        f"copy (select * from read_parquet('{partition}/data.parquet') limit 1) "
        f"to '{partition}/duplicate.parquet' (format parquet)"
    )
    result = peak(lake_copy, "build", "--as-of", AS_OF, ok=False)
    assert result.returncode == 1
    assert "unique_fct_attendance_attendance_id" in result.stdout
    stage = last_report(lake_copy, "build")["stages"]["build"]
    assert not stage["success"] and "published" not in stage
    assert "unique_fct_attendance_attendance_id" in {f["name"] for f in stage["failed"]}
    assert serving.read_bytes() == before


def test_members_sharing_an_email_reach_the_crm_once(lake_copy, tmp_path):
    members = query(lake_copy, "select user_id from dim_users order by user_id limit 2")
    rows = [
        {"user_id": uid, "email": "shared@example.com", "location": "Peak Camden",
         "join_date": "2025-01-01", "plan": "basic", "status": "cancelled",
         "marketing_opt_in": "true", "updated_at": f"2026-11-24T0{i}:00:00Z"}
        for i, (uid,) in enumerate(members)
    ]  # fmt: skip
    ingest_and_transform(lake_copy, tmp_path, "members_2026-11-24_fix.csv", rows)
    peak(lake_copy, "build", "--as-of", AS_OF)
    crm = query(
        lake_copy, "select user_id from mart_hubspot_contacts where email = 'shared@example.com'"
    )
    assert crm == [(members[1][0],)]  # the most recently updated member
    warnings = last_report(lake_copy, "build")["stages"]["build"]["warnings"]
    assert {"name": "unique_dim_users_email", "failures": 1} in [
        {"name": w["name"], "failures": w["failures"]} for w in warnings
    ]


def test_the_snapshot_keeps_member_status_history(lake_copy, tmp_path):
    uid, email = query(
        lake_copy,
        "select user_id, email from dim_users where status = 'active' limit 1",
    )[0]
    row = {"user_id": uid, "email": email, "location": "Peak Camden", "join_date": "2025-01-01",
           "plan": "basic", "status": "frozen", "marketing_opt_in": "false",
           "updated_at": "2026-11-24T20:00:00Z"}  # fmt: skip
    ingest_and_transform(lake_copy, tmp_path, "members_2026-11-24_change.csv", [row])
    peak(lake_copy, "build", "--as-of", AS_OF)
    history = query(
        lake_copy,
        f"select status, dbt_valid_to is null from snap_member_status "
        f"where user_id = '{uid}' order by dbt_valid_from",
    )
    assert history == [("active", False), ("frozen", True)]


# ---------------------------------------------------------------------------------------------
# Athena compile-only, docs, analysts' plain dbt
# ---------------------------------------------------------------------------------------------


def test_every_model_compiles_for_athena_and_parses_as_athena_sql(built):
    env = {k: "" for k in ("AWS_ENDPOINT_URL",)}
    result = peak(built, "build", "--target", "athena", "--compile-only", **env)
    stages = last_report(built, "build")["stages"]
    stage = stages["compile"]
    assert stage["target"] == "athena" and stage["unparseable"] == []
    # Both forms, typed and checked for the Trino/DuckDB hazards (tests/test_athena_*.py).
    assert "fct_attendance" in stage["incremental_forms"]
    assert stages["athena_check"]["findings"] == []
    assert stage["models"] == len(list((dbt.PROJECT_DIR / "models").rglob("*.sql")))
    assert "Athena check:" in result.stdout
    compiled = (
        target_dir(built, "athena") / "compiled/peak_fitness/models/staging"
    ) / "stg_attendance.sql"
    assert '"awsdatacatalog"."peak_processed"."attendance"' in compiled.read_text()


def test_docs_are_generated_as_a_static_site(built):
    peak(built, "docs")
    site = target_dir(built, "local")
    static = (site / "static_index.html").read_text()
    assert (site / "index.html").exists() and (site / "catalog.json").exists()
    for name in ("mart_churn", "redis_leaderboard", "weekly streak"):
        assert name in static


def test_docs_are_served(built):
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PEAK_LAKE": str(built)}
    server = subprocess.Popen(
        [sys.executable, "-m", "peak", "docs", "--serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html") as resp:
                    assert resp.status == 200 and b"dbt" in resp.read()
                break
            except OSError:
                assert server.poll() is None, "peak docs --serve exited"
                assert time.monotonic() < deadline, "the docs server never answered"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/manifest.json") as resp:
            assert "mart_churn" in resp.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_analysts_can_run_plain_dbt(built, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copyfile(dbt.PROFILES_EXAMPLE, profiles / "profiles.yml")
    env = {**os.environ, "PEAK_LAKE": str(built), "DO_NOT_TRACK": "1"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "test", "--select", "test_type:unit",
         "--project-dir", str(dbt.PROJECT_DIR), "--profiles-dir", str(profiles),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    # The unit tests sit beside their models, in each folder's _<folder>__models.yml.
    documents = [yaml.safe_load(p.read_text()) for p in (dbt.PROJECT_DIR / "models").rglob("*.yml")]
    unit_tests = {"unit_tests": [t for d in documents for t in d.get("unit_tests", [])]}
    assert f"PASS={len(unit_tests['unit_tests'])}" in result.stdout
    assert (built / WAREHOUSE_KEY).exists()


def test_athena_bytes_scanned_reach_the_build_stage_of_the_run_report():
    """dbt-athena reports each statement's DataScannedInBytes in its adapter response: the
    build stage sums them as ``athena_bytes_scanned`` (what `peak cost` bills Athena from);
    engines that report none (DuckDB) add no such key."""
    from types import SimpleNamespace

    from dbt.artifacts.schemas.results import RunStatus
    from dbt.artifacts.schemas.run import RunResult

    def item(name: str, response: dict) -> RunResult:
        node = SimpleNamespace(name=name, resource_type="model", compiled_code=None)
        return RunResult(
            status=RunStatus.Success,
            timing=[],
            thread_id="Thread-1",
            execution_time=1.5,
            adapter_response=response,
            message="OK",
            failures=None,
            node=node,
            agate_table=None,
            batch_results=None,
        )

    athena = [
        item("fct_attendance", {"_message": "OK 10", "data_scanned_in_bytes": 1_000}),
        item("dim_users", {"_message": "OK 5", "data_scanned_in_bytes": 234}),
        item("not_null_x", {"_message": "OK"}),
    ]
    nodes = [dbt.node_result(i) for i in athena]
    assert [n.bytes_scanned for n in nodes] == [1_000, 234, None]
    stage = dbt.DbtResult("build", True, nodes).to_dict()
    assert stage["athena_bytes_scanned"] == 1_234
    duckdb_nodes = [dbt.node_result(item("fct_attendance", {"_message": "OK"}))]
    assert "athena_bytes_scanned" not in dbt.DbtResult("build", True, duckdb_nodes).to_dict()
