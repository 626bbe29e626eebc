"""Snapshots keep history within a declared retention, and `peak prune` applies it.

`snap_member_status` keeps a version per change of a member's record, e-mail included: without a
limit every address a member ever had stays forever. A closed version (a newer one replaced it,
or the member left) is kept `prune.SNAPSHOT_RETENTION_DAYS` after it was closed; the current
version is never removed. The warehouse files are rewritten, so no removed value lingers in
DuckDB's free blocks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from peak.core.lake import Lake
from peak.core.layout import SERVING_WAREHOUSE_KEY, WAREHOUSE_KEY
from peak.ops import prune
from tests.test_ops import peak_cli  # noqa: F401 (a fixture)

AS_OF = dt.date(2026, 11, 24)
OLD = AS_OF - dt.timedelta(days=prune.SNAPSHOT_RETENTION_DAYS + 1)  # closed too long ago
RECENT = AS_OF - dt.timedelta(days=prune.SNAPSHOT_RETENTION_DAYS - 1)


def warehouse(path: Path) -> None:
    """A warehouse file holding both snapshots: U1's old address closed long ago, U2's recently,
    and each member's current version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(
        "create table snap_member_status (user_id varchar, email varchar, status varchar,"
        " dbt_valid_from timestamp, dbt_valid_to timestamp)"
    )
    con.executemany(
        "insert into snap_member_status values (?, ?, ?, ?, ?)",
        [
            ("U1", "u1.old-address@example.com", "active", dt.datetime(2024, 1, 1), OLD),
            ("U1", "u1@example.com", "active", OLD, None),
            ("U2", "u2.previous@example.com", "active", dt.datetime(2024, 1, 1), RECENT),
            ("U2", "u2@example.com", "frozen", RECENT, None),
        ],
    )
    con.execute(
        "create table snap_churn_status (user_id varchar, churn_status varchar,"
        " dbt_valid_from timestamp, dbt_valid_to timestamp)"
    )
    con.executemany(
        "insert into snap_churn_status values (?, ?, ?, ?)",
        [("U1", "active", dt.datetime(2024, 1, 1), OLD), ("U1", "churned", OLD, None)],
    )
    con.execute("create view current_members as select * from snap_member_status")
    con.close()


@pytest.fixture
def lake_with_snapshots(lake: Lake) -> Lake:
    for key in (WAREHOUSE_KEY, SERVING_WAREHOUSE_KEY):
        warehouse(lake.path(key))
    return lake


def rows(path: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            f"select * exclude (dbt_valid_from) from {table} order by all"
        ).fetchall()
    finally:
        con.close()


def test_the_snapshot_retention_is_declared_once():
    assert prune.RETENTION_DAYS["processed"] == prune.SNAPSHOT_RETENTION_DAYS
    assert set(prune.snapshot_names()) == {"snap_member_status", "snap_churn_status"}


def test_prune_removes_snapshot_versions_closed_before_the_retention(lake_with_snapshots):
    lake = lake_with_snapshots
    result = prune.prune(lake, as_of=AS_OF)
    assert result.zones["snapshots"].rows == 2
    assert result.zones["snapshots"].datasets == {"snap_member_status": 1, "snap_churn_status": 1}
    for key in (WAREHOUSE_KEY, SERVING_WAREHOUSE_KEY):
        path = lake.path(key)
        assert rows(path, "snap_member_status") == [
            ("U1", "u1@example.com", "active", None),
            ("U2", "u2.previous@example.com", "active", dt.datetime.combine(RECENT, dt.time())),
            ("U2", "u2@example.com", "frozen", None),
        ]
        assert rows(path, "snap_churn_status") == [("U1", "churned", None)]
        # The file was rewritten: the removed address is not in its bytes either.
        assert b"u1.old-address" not in path.read_bytes()
        con = duckdb.connect(str(path), read_only=True)
        assert con.execute("select count(*) from current_members").fetchone() == (3,)
        con.close()
    again = prune.prune(lake, as_of=AS_OF)
    assert again.zones["snapshots"].rows == 0


def test_a_dry_run_counts_the_versions_and_removes_none(lake_with_snapshots):
    lake = lake_with_snapshots
    before = lake.path(WAREHOUSE_KEY).read_bytes()
    result = prune.prune(lake, as_of=AS_OF, dry_run=True, zones=["snapshots"])
    assert list(result.zones) == ["snapshots"]
    assert result.zones["snapshots"].rows == 2
    assert lake.path(WAREHOUSE_KEY).read_bytes() == before


def test_prune_command_reports_snapshot_rows(peak_cli, lake_with_snapshots):  # noqa: F811
    out = peak_cli("prune", "--as-of", AS_OF.isoformat(), "--zone", "snapshots",
                   lake=lake_with_snapshots)  # fmt: skip
    assert out.exit_code == 0, out.output
    line = next(row for row in out.output.splitlines() if "snapshots" in row)
    assert "2" in line.split("│")[-3]  # the rows column
    assert rows(lake_with_snapshots.path(WAREHOUSE_KEY), "snap_churn_status") == [
        ("U1", "churned", None)
    ]


def test_a_lake_without_a_warehouse_prunes_its_zones(lake):
    result = prune.prune(lake, as_of=AS_OF)
    assert result.zones["snapshots"].rows == 0
