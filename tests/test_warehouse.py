"""The warehouse reader: the published serving copy locally, Athena (UNLOAD) in production."""

from __future__ import annotations

import datetime as dt
import os
import stat
import warnings

import duckdb
import pandas as pd
import pytest

from peak.core.lake import Lake
from peak.core.settings import AthenaSettings, Settings
from peak.model.warehouse import (
    AthenaWarehouse,
    DuckDBWarehouse,
    WarehouseError,
    build_path,
    open_warehouse,
    publish,
    serving_path,
)


def test_publish_replaces_the_serving_copy_atomically_and_readers_never_lock(tmp_path):
    lake = Lake.from_uri(str(tmp_path / "lake"))
    lake.path("").mkdir(parents=True)
    con = duckdb.connect(str(build_path(lake)))
    con.execute("create table mart_x as select 1 as n")
    # dbt still holds its connection (and the rows may sit in the write-ahead log)
    published = publish(lake)
    assert published == serving_path(lake)
    reader = open_warehouse(lake, Settings(lake=str(tmp_path / "lake")))
    assert isinstance(reader, DuckDBWarehouse)
    assert reader.read("mart_x").to_pylist() == [{"n": 1}]
    con.execute("insert into mart_x values (2)")  # the next build writes; readers see the copy
    assert reader.query("select count(*) as c from mart_x").to_pylist() == [{"c": 1}]
    con.close()
    publish(lake)
    assert reader.query("select sum(n) as s from mart_x where n >= ?", [1]).to_pylist() == [
        {"s": 3}
    ]
    assert not list(serving_path(lake).parent.glob(".serving-*"))  # no temporary left behind


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_the_serving_copy_has_a_normal_files_mode(tmp_path, umask):
    """It was 0600 (mkstemp's): a dashboard under a service account could not read it."""
    lake = Lake.from_uri(str(tmp_path / "lake"))
    lake.path("").mkdir(parents=True)
    duckdb.connect(str(build_path(lake))).close()
    previous = os.umask(umask)
    try:
        published = publish(lake)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(published.stat().st_mode) == 0o666 & ~umask


def test_a_missing_warehouse_and_a_bad_relation_name_are_clear_errors(tmp_path):
    reader = DuckDBWarehouse(tmp_path / "nowhere.duckdb")
    with pytest.raises(WarehouseError, match="run `peak build`"):
        reader.read("mart_churn")
    with pytest.raises(WarehouseError, match="not a relation name"):
        reader.read("mart; drop table x")


def test_athena_reads_through_awswrangler_with_unload_and_literal_parameters(monkeypatch):
    import awswrangler as wr

    calls = []

    def read_sql_query(sql, **kwargs):
        calls.append((sql, kwargs))
        frame = pd.DataFrame({"user_id": ["U1"], "visits": [3]})
        # awswrangler attaches the QueryExecution it polled (its Statistics included), with
        # pandas' warning about attribute assignment silenced as awswrangler does
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            frame.query_metadata = {"Statistics": {"DataScannedInBytes": 1_000 * len(calls)}}
        return frame

    monkeypatch.setattr(wr.athena, "read_sql_query", read_sql_query)
    settings = Settings(athena=AthenaSettings(schema_name="peak_analytics", work_group="peak"))
    reader = open_warehouse(Lake.from_uri("s3://b/p"), settings, target="athena")
    assert isinstance(reader, AthenaWarehouse)
    table = reader.query(
        "select * from mart where d >= ? and loc in (?, ?) and n > ?",
        [dt.date(2026, 11, 1), "Peak Camden", "O'Neill's", 2],
    )
    assert table.to_pylist() == [{"user_id": "U1", "visits": 3}]
    sql, kwargs = calls[0]
    assert sql.startswith("select * from mart where d >= ?")
    assert kwargs["unload_approach"] is True and kwargs["ctas_approach"] is False
    assert kwargs["workgroup"] == "peak" and kwargs["database"] == "peak_analytics"
    assert kwargs["paramstyle"] == "qmark"
    assert kwargs["params"] == ["DATE '2026-11-01'", "'Peak Camden'", "'O''Neill''s'", "2"]
    reader.read("mart_churn", ["user_id"])
    assert calls[1][0] == 'select "user_id" from peak_analytics.mart_churn'
    assert reader.bytes_scanned == 1_000 + 2_000  # what peak activate records for peak cost
