"""peak.model.manifest: the columns a public dbt model publishes, from its YAML or dbt's manifest,
and, on a built warehouse, that what the YAML declares is what the tables hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from generator.generate import generate
from peak.core.errors import ModelError
from peak.model import dbt, manifest
from tests.test_dbt import AS_OF, END, peak, query, target_dir

#: The models code reads (activation/, dashboard/data/): public, with enforced contracts.
PUBLIC = {
    "fct_attendance",
    "dim_users",
    "dim_classes",
    "mart_churn",
    "mart_location_daily",
    "mart_class_sessions",
    "mart_cohort_retention",
    "mart_leaderboard_weekly",
    "mart_hubspot_contacts",
    "mart_email_targets",
}


def test_the_models_code_reads_are_the_public_ones():
    assert set(manifest.public_models(None)) == PUBLIC


def test_the_sinks_columns_are_the_public_columns_today():
    # What the e-mail sink (activation/email/mart.py) and the HubSpot sink
    # (activation/hubspot/properties.py, in its properties' order) read, and the columns the
    # leaderboard sink (activation/leaderboard/mart.py) selects.
    assert manifest.public_columns("mart_email_targets", None) == [
        "user_id", "email", "segment", "churn_reason", "churn_date", "home_location", "plan",
        "join_date", "last_visit_date", "days_since_last_visit", "visits_30d", "visits_90d",
        "longest_streak_weeks", "favourite_class", "favourite_instructor",
    ]  # fmt: skip
    assert set(manifest.public_columns("mart_hubspot_contacts", None)) == {
        "user_id", "email", "churn_status", "churn_reason", "churn_date", "last_visit_date",
        "visits_30d", "home_location", "plan", "join_date", "marketing_opt_in",
    }  # fmt: skip
    leaderboard = manifest.public_columns("mart_leaderboard_weekly", None)
    plan = ["week_start", "iso_week", "board", "user_id", "handle", "visits"]
    assert [c for c in leaderboard if c in plan] == plan and leaderboard[-1] == "rank"


@pytest.mark.parametrize("model", ["mart_member_activity", "int_churn_status", "no_such_model"])
def test_a_model_that_is_not_public_has_no_public_columns(model):
    with pytest.raises(ModelError, match=f"{model} is not a public dbt model"):
        manifest.public_columns(model, None)


def test_every_public_model_declares_a_type_for_every_column():
    for path in sorted(manifest.MODELS_DIR.rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models") or []:
            if model["name"] in PUBLIC:
                untyped = [c["name"] for c in model["columns"] if not c.get("data_type")]
                assert untyped == [], f"{model['name']}: {untyped}"


def fake_manifest(path: Path, columns: list[str]) -> Path:
    node = {
        "resource_type": "model",
        "package_name": manifest.PROJECT_NAME,
        "name": "mart_email_targets",
        "access": "public",
        "config": {"contract": {"enforced": True}},
        "columns": {name: {"name": name} for name in columns},
    }
    path.write_text(json.dumps({"nodes": {"model.peak_fitness.mart_email_targets": node}}))
    return path


def test_a_current_manifest_is_read_and_a_stale_one_is_not(tmp_path):
    path = fake_manifest(tmp_path / "manifest.json", ["user_id", "from_the_manifest"])
    newest = max(p.stat().st_mtime for p in manifest.project_files())
    os.utime(path, (newest + 10, newest + 10))
    assert manifest.is_current(path)
    assert manifest.public_columns("mart_email_targets", path) == ["user_id", "from_the_manifest"]
    # Older than a models YAML file: the YAML is read instead.
    os.utime(path, (newest - 10, newest - 10))
    assert not manifest.is_current(path)
    from_yaml = manifest.public_columns("mart_email_targets", None)
    assert manifest.public_columns("mart_email_targets", path) == from_yaml
    assert not manifest.is_current(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------
# On a built warehouse (the sample tests/test_dbt.py builds)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    generate(out, members=250, days=70, seed=5, dirty_rate=0.0, end_date=END)
    lake = tmp_path_factory.mktemp("manifest") / "lake"
    peak(lake, "ingest", str(out), "--date", AS_OF)
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", AS_OF)
    return lake


def built_columns(lake: Path, table: str) -> list[str]:
    rows = query(
        lake,
        "select column_name from information_schema.columns where table_schema = 'main' "
        f"and table_name = '{table}' order by ordinal_position",
    )
    return [name for (name,) in rows]


@pytest.mark.slow
@pytest.mark.xdist_group("dbt")
def test_every_public_models_yaml_columns_are_the_built_models_columns(built):
    for model, columns in manifest.public_models(None).items():
        assert columns == built_columns(built, model), model


@pytest.mark.slow
@pytest.mark.xdist_group("dbt")
def test_the_manifest_a_build_writes_gives_the_yamls_columns(built):
    written = target_dir(built, "local") / "manifest.json"
    assert manifest.is_current(written)
    assert manifest.public_models(written) == manifest.public_models(None)


@pytest.mark.slow
@pytest.mark.xdist_group("dbt")
def test_every_snapshot_column_is_documented_in_order(built):
    document = yaml.safe_load((dbt.PROJECT_DIR / "snapshots" / "snapshots.yml").read_text())
    for snapshot in document["snapshots"]:
        columns = [c["name"] for c in snapshot["columns"]]
        assert columns == built_columns(built, snapshot["name"]), snapshot["name"]
        undescribed = [c["name"] for c in snapshot["columns"] if not c.get("description")]
        assert undescribed == [], snapshot["name"]


def test_what_each_sink_reads_is_what_its_mart_publishes():
    """The sinks take their columns from the marts' contracts, or read only contracted ones."""
    from activation.email import mart as email_mart
    from activation.hubspot import properties as hubspot
    from activation.leaderboard import boards
    from activation.leaderboard import mart as leaderboard_mart

    assert list(email_mart.MART_COLUMNS) == manifest.public_columns(email_mart.MART)
    assert set(email_mart.REQUIRED_COLUMNS) <= set(email_mart.MART_COLUMNS)
    assert set(hubspot.MART_COLUMNS) <= set(manifest.public_columns("mart_hubspot_contacts"))
    assert set(leaderboard_mart.READ_COLUMNS) <= set(manifest.public_columns(boards.MART))
