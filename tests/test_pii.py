"""One PII inventory: the contracts name the personal columns, column lineage finds them in
every model, and every model column that carries one is tagged ``meta: {pii: true}`` and stays
off the public surfaces (the leaderboard mart, the Redis leaderboard, the dashboard's
leaderboard), unless one of the masks of ``macros/privacy.sql`` hides it.

The lineage is derived from the SQL dbt compiles (``tests/pii_lineage.py``), so a column added
to any model is checked without anyone listing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest

import dashboard.data.leaderboard as dashboard_leaderboard
from activation.leaderboard import mart as leaderboard_mart
from activation.leaderboard.boards import MART as LEADERBOARD_MART
from peak.core.lake import Lake
from peak.model import dbt
from tests.pii_lineage import (
    PRIVACY_MACROS,
    Inventory,
    Relation,
    load_manifest,
    relation_columns,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]

#: Public surfaces: the relation everyone may see, and what reads it. The Redis leaderboard
#: publishes the columns its sink reads from the mart; the dashboard's leaderboard page shows
#: Redis, or the mart through its SQL when Redis is down.
PUBLIC_MARTS = (LEADERBOARD_MART,)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """The project compiled for DuckDB (no data needed): its manifest holds every model's SQL."""
    lake = Lake.from_uri(str(tmp_path_factory.mktemp("pii") / "lake"))
    result = dbt.invoke(lake, "compile", vars={"as_of_date": "2026-11-24"})
    assert result.success, result.error
    return dbt.target_path(lake, "local") / "manifest.json"


@pytest.fixture(scope="module")
def relations(manifest) -> dict[str, Relation]:
    return load_manifest(manifest)


@pytest.fixture(scope="module")
def inventory(relations) -> Inventory:
    return Inventory(relations)


def models() -> list[str]:
    """Every model and snapshot of the project, from its YAML files (known before compiling)."""
    import yaml

    names = []
    for path in sorted((dbt.PROJECT_DIR / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names += [m["name"] for m in document.get("models") or []]
    for path in sorted((dbt.PROJECT_DIR / "snapshots").rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names += [s["name"] for s in document.get("snapshots") or []]
    return sorted(names)


def public_violations(inventory: Inventory, relation: str) -> list[str]:
    """Personal values a public surface built on ``relation`` would show unmasked."""
    if relation not in PUBLIC_MARTS:
        return []
    found = [f"{relation}.{c}" for c in inventory.carried(relation)]
    found += [
        f"Redis (activation.leaderboard.mart.READ_COLUMNS): {relation}.{c}"
        for c in leaderboard_mart.READ_COLUMNS
        if inventory.carries(relation, c)
    ]
    schema = {name: inventory.outputs[name] for name in inventory.outputs}
    for name in dir(dashboard_leaderboard):
        if name.endswith("_SQL"):
            for table, column in sorted(
                relation_columns(getattr(dashboard_leaderboard, name), schema)
            ):
                if inventory.carries(table, column):
                    found.append(f"dashboard leaderboard ({name}): {table}.{column}")
    return found


@pytest.mark.parametrize("model", models())
def test_every_personal_column_is_tagged_and_no_public_surface_shows_one(inventory, model):
    assert model in inventory.outputs, f"{model} was not compiled"
    assert inventory.untagged(model) == [], (
        f"{model}: these columns carry personal data (e-mail or home gym) and lack "
        "`meta: {pii: true}` in their YAML"
    )
    assert public_violations(inventory, model) == []


def test_the_inventory_finds_the_personal_columns_it_must(inventory):
    """The analysis itself: the columns everyone knows are personal are found, masks and
    aggregates are not."""
    assert inventory.personal["processed__members"] == {"email": "carried", "location": "carried"}
    assert set(inventory.carried("stg_members")) == {"email", "home_location"}
    assert set(inventory.carried("dim_users")) == {"email", "home_location"}
    assert inventory.personal["dim_users"]["email_masked"] == "masked"
    assert inventory.personal["dim_users"]["handle"] == "masked"
    assert not inventory.carries("dim_users", "owns_email")  # only a window's partition key
    assert "home_location" in inventory.carried("mart_churn")
    assert "home_location" in inventory.carried("fct_attendance")
    assert "location" not in inventory.carried("fct_attendance")  # the class's gym
    # A gym as the group key of an aggregate is not personal.
    assert inventory.carried("mart_cohort_retention") == []
    assert inventory.carried("snap_member_status") == ["email", "home_location"]


# ---------------------------------------------------------------------------------------------
# The check fails where it must: fixture models added to the real project
# ---------------------------------------------------------------------------------------------


def render(sql: str) -> str:
    """A fixture model's SQL with the real masks of privacy.sql."""
    macros = PRIVACY_MACROS.read_text(encoding="utf-8")
    return jinja2.Environment().from_string(macros + sql).render()


def with_fixture(relations: dict[str, Relation], sql: str, columns: dict) -> Inventory:
    fixture = Relation(
        "fixture_model",
        "model",
        sql=render(sql),
        depends_on=("dim_users", "fct_attendance"),
        columns=columns,
    )
    return Inventory({**relations, fixture.name: fixture})


def test_an_untagged_personal_column_fails_the_check(relations):
    inventory = with_fixture(
        relations,
        "select users.user_id, lower(users.email) as contact_address, users.home_location"
        " as gym from dim_users as users",
        {"user_id": {}, "contact_address": {}, "gym": {"pii": True}},
    )
    assert inventory.untagged("fixture_model") == ["contact_address"]


def test_masked_counted_and_grouped_values_are_not_personal(relations):
    inventory = with_fixture(
        relations,
        """
        with members as (select * from dim_users),
        per_gym as (
            select home_location, count(*) as members, count(distinct email) as addresses
            from members group by home_location
        )
        select
            members.user_id,
            {{ mask_email('members.email') }} as masked,
            {{ member_handle('members.email', 'members.user_id') }} as shown_as,
            case when members.email like '%@example.com' then 'example' else 'other' end as kind,
            length(members.email) as address_length,
            per_gym.home_location as gym_of_the_aggregate,
            per_gym.members
        from members
        inner join per_gym on members.home_location = per_gym.home_location
        """,
        {},
    )
    assert inventory.personal["fixture_model"] == {"masked": "masked", "shown_as": "masked"}
    assert inventory.untagged("fixture_model") == []


def test_a_gym_on_a_members_row_is_personal_even_when_grouped(relations):
    inventory = with_fixture(
        relations,
        "select user_id, max(home_location) as gym, count(*) as visits from fct_attendance"
        " group by user_id",
        {},
    )
    assert inventory.untagged("fixture_model") == ["gym"]


def test_a_public_surface_showing_a_personal_column_fails(relations, monkeypatch):
    """The leaderboard mart rebuilt to show an e-mail (tagged, even): the public check fails."""
    inventory = Inventory(relations)
    monkeypatch.setattr("tests.test_pii.PUBLIC_MARTS", ("mart_churn", *PUBLIC_MARTS), raising=True)
    assert "mart_churn.email" in public_violations(inventory, "mart_churn")


def test_the_manifest_keeps_every_compiled_model(manifest):
    nodes = json.loads(manifest.read_text())["nodes"].values()
    compiled = {n["name"] for n in nodes if n["resource_type"] in ("model", "snapshot")}
    assert compiled == set(models())
