"""The Glue catalog over the processed zone (peak/model/catalog.py), against moto's Glue: tables
created from the contracts, partition projection, idempotent sync, repair of hand edits, contract
changes, orphans, dry runs, and Glue columns that match the Parquet the transform really writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import contracts
from contracts import Column
from peak.core.lake import Lake
from peak.core.layout import processed_prefix
from peak.model import catalog
from tests.conftest import CHECKIN, CLASS, INGESTED_AT, MEMBER

DB = "peak_processed"
WRITES = {"CreateDatabase", "CreateTable", "UpdateTable", "DeleteTable", "BatchDeleteTable"}
#: What the transform's Parquet types are called in Athena (the test's own reading, kept
#: independent of catalog.ATHENA_TYPES so the two can check each other).
ARROW_TO_ATHENA = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.bool_(): "boolean",
    pa.date32(): "date",
    pa.timestamp("us"): "timestamp",
}


@pytest.fixture
def s3_uri_lake() -> Lake:
    return Lake.from_uri("s3://peak-lake/prod")


class Calls:
    """The Glue operations a client made, recorded through botocore's event hooks."""

    def __init__(self, client: Any):
        self.names: list[str] = []
        client.meta.events.register("before-call.glue.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    @property
    def writes(self) -> list[str]:
        return [n for n in self.names if n in WRITES]

    def clear(self) -> None:
        self.names.clear()


@pytest.fixture
def glue(aws_env) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.session.Session(region_name="eu-west-1").client("glue")


def get(glue: Any, name: str) -> dict[str, Any]:
    return glue.get_table(DatabaseName=DB, Name=name)["Table"]


def expected_columns(contract: contracts.Contract) -> list[tuple[str, str]]:
    athena = {"string": "string", "integer": "bigint", "boolean": "boolean", "date": "date"}
    athena |= {"time": "string", "timestamp": "timestamp", "int64": "bigint"}
    out = [(c.name, athena[c.type]) for c in contract.columns]
    for name in contracts.PROCESSED_LINEAGE:
        out.append((name, athena[contracts.LINEAGE_COLUMNS[name][0]]))
    return out


# -- creation --------------------------------------------------------------------------------


def test_sync_creates_the_database_and_one_table_per_contract(glue, s3_uri_lake):
    result = catalog.sync(glue, DB, s3_uri_lake)
    assert result.database_created
    assert sorted(result.created) == ["attendance", "classes", "members"]
    assert result.updated == result.unchanged == result.orphaned == []
    assert glue.get_database(Name=DB)["Database"]["Description"]

    for name, contract in contracts.load_all().items():
        table = get(glue, name)
        sd = table["StorageDescriptor"]
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["Description"] == " ".join(contract.description.split())
        assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == expected_columns(contract)
        assert sd["Columns"][0]["Comment"] == contract.columns[0].description
        assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [("dt", "date")]
        assert sd["Location"] == f"s3://peak-lake/prod/processed/{name}/"
        assert sd["Location"] == s3_uri_lake.uri(processed_prefix(name))
        assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        assert sd["InputFormat"].endswith("MapredParquetInputFormat")
        assert sd["OutputFormat"].endswith("MapredParquetOutputFormat")
        params = table["Parameters"]
        assert params["classification"] == "parquet"
        assert params["peak.contract"] == name
        assert len(params["peak.fingerprint"]) == 64
        assert {k: v for k, v in params.items() if k.startswith("projection.")} == {
            "projection.enabled": "true",
            "projection.dt.type": "date",
            "projection.dt.format": "yyyy-MM-dd",
            "projection.dt.range": "2000-01-01,NOW",
            "projection.dt.interval": "1",
            "projection.dt.interval.unit": "DAYS",
        }
        template = params["storage.location.template"]
        assert template == f"s3://peak-lake/prod/processed/{name}/dt=${{dt}}/"


def test_the_partition_template_is_the_folder_of_a_processed_key(s3_uri_lake):
    from peak.core.layout import processed_key

    for contract in contracts.load_all().values():
        template = catalog.table_input(contract, s3_uri_lake)["Parameters"][
            "storage.location.template"
        ]
        key = processed_key(contract.dataset, "2026-11-23")
        assert s3_uri_lake.uri(key).startswith(template.replace("${dt}", "2026-11-23"))
        assert template.startswith(catalog.location(contract, s3_uri_lake))


# -- idempotency, repair, contract changes, orphans ------------------------------------------


def test_a_second_sync_changes_nothing_and_writes_nothing(glue, s3_uri_lake):
    catalog.sync(glue, DB, s3_uri_lake)
    calls = Calls(glue)
    again = catalog.sync(glue, DB, s3_uri_lake)
    assert sorted(again.unchanged) == ["attendance", "classes", "members"]
    assert again.created == again.updated == again.orphaned == []
    assert not again.database_created and not again.changed
    assert calls.names and calls.writes == []


def test_a_hand_edited_table_is_repaired(glue, s3_uri_lake):
    catalog.sync(glue, DB, s3_uri_lake)
    edited = catalog.table_input(contracts.get("members"), s3_uri_lake)
    edited["StorageDescriptor"]["Columns"] = edited["StorageDescriptor"]["Columns"][:-1]
    edited["Parameters"]["projection.dt.range"] = "2020-01-01,NOW"  # fingerprint kept as is
    glue.update_table(DatabaseName=DB, TableInput=edited)

    calls = Calls(glue)
    result = catalog.sync(glue, DB, s3_uri_lake)
    assert result.updated == ["members"]
    assert sorted(result.unchanged) == ["attendance", "classes"]
    assert calls.writes == ["UpdateTable"]
    table = get(glue, "members")
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][-1] == "_raw_id"
    assert table["Parameters"]["projection.dt.range"] == "2000-01-01,NOW"
    assert catalog.sync(glue, DB, s3_uri_lake).updated == []


def test_a_foreign_projection_parameter_is_removed_but_other_parameters_are_tolerated(
    glue, s3_uri_lake
):
    catalog.sync(glue, DB, s3_uri_lake)
    edited = catalog.table_input(contracts.get("classes"), s3_uri_lake)
    edited["Parameters"]["transient_lastDdlTime"] = "1700000000"  # Athena adds such things
    glue.update_table(DatabaseName=DB, TableInput=edited)
    assert catalog.sync(glue, DB, s3_uri_lake).updated == []

    edited["Parameters"]["projection.location.type"] = "enum"
    glue.update_table(DatabaseName=DB, TableInput=edited)
    assert catalog.sync(glue, DB, s3_uri_lake).updated == ["classes"]
    assert "projection.location.type" not in get(glue, "classes")["Parameters"]


def test_a_changed_contract_updates_its_table(glue, s3_uri_lake, monkeypatch):
    catalog.sync(glue, DB, s3_uri_lake)
    before = get(glue, "members")["Parameters"]["peak.fingerprint"]

    original = contracts.load_all()
    members = original["members"]
    referral = Column(name="referral_code", type="string", description="Who referred them.")
    changed = members.model_copy(update={"columns": (*members.columns, referral)})
    monkeypatch.setattr(contracts, "load_all", lambda: {**original, "members": changed})

    calls = Calls(glue)
    result = catalog.sync(glue, DB, s3_uri_lake)
    assert result.updated == ["members"]
    assert sorted(result.unchanged) == ["attendance", "classes"]
    assert calls.writes == ["UpdateTable"]
    table = get(glue, "members")
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert names[names.index("updated_at") + 1] == "referral_code"  # before the lineage
    assert table["Parameters"]["peak.fingerprint"] != before


def test_tables_of_vanished_contracts_are_reported_orphaned_not_dropped(
    glue, s3_uri_lake, monkeypatch
):
    catalog.sync(glue, DB, s3_uri_lake)
    glue.create_table(DatabaseName=DB, TableInput={"Name": "hand_made", "Parameters": {}})
    original = contracts.load_all()
    monkeypatch.setattr(
        contracts, "load_all", lambda: {k: v for k, v in original.items() if k != "classes"}
    )
    calls = Calls(glue)
    result = catalog.sync(glue, DB, s3_uri_lake)
    assert result.orphaned == ["classes"]  # the untagged table is none of our business
    assert sorted(result.unchanged) == ["attendance", "members"]
    assert calls.writes == []
    assert get(glue, "classes")["Name"] == "classes"


def test_sync_can_be_limited_to_named_datasets(glue, s3_uri_lake):
    result = catalog.sync(glue, DB, s3_uri_lake, datasets=["classes"])
    assert result.created == ["classes"]
    names = {t["Name"] for t in glue.get_tables(DatabaseName=DB)["TableList"]}
    assert names == {"classes"}
    with pytest.raises(KeyError, match="unknown dataset"):
        catalog.sync(glue, DB, s3_uri_lake, datasets=["nope"])


# -- dry runs and bad lakes ------------------------------------------------------------------


def test_a_dry_run_reports_the_same_and_writes_nothing(glue, s3_uri_lake):
    calls = Calls(glue)
    dry = catalog.sync(glue, DB, s3_uri_lake, dry_run=True)
    assert dry.dry_run and dry.database_created
    assert sorted(dry.created) == ["attendance", "classes", "members"]
    assert calls.writes == []
    assert glue.get_databases()["DatabaseList"] == []

    real = catalog.sync(glue, DB, s3_uri_lake)
    assert real.to_dict() == {**dry.to_dict(), "dry_run": False}

    edited = catalog.table_input(contracts.get("attendance"), s3_uri_lake)
    edited["Description"] = "edited by hand"
    glue.update_table(DatabaseName=DB, TableInput=edited)
    calls.clear()
    dry = catalog.sync(glue, DB, s3_uri_lake, dry_run=True)
    assert dry.updated == ["attendance"] and calls.writes == []
    assert get(glue, "attendance")["Description"] == "edited by hand"


def test_a_local_lake_is_refused(glue, lake):
    calls = Calls(glue)
    with pytest.raises(ValueError, match="s3:// lake"):
        catalog.sync(glue, DB, lake)
    with pytest.raises(ValueError, match="s3:// lake"):
        catalog.table_input(contracts.get("members"), lake)
    assert calls.names == []


def test_result_to_dict():
    result = catalog.CatalogSyncResult(database=DB, created=["members"], orphaned=["old"])
    assert result.to_dict() == {
        "database": DB,
        "dry_run": False,
        "database_created": False,
        "created": ["members"],
        "updated": [],
        "unchanged": [],
        "orphaned": ["old"],
    }


# -- Athena DDL ------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", sorted(contracts.load_all()))
def test_the_athena_ddl_parses_and_matches_the_table_input(dataset, s3_uri_lake):
    import sqlglot
    from sqlglot import exp

    contract = contracts.get(dataset)
    sql = catalog.athena_ddl(contract, s3_uri_lake, DB)
    assert sql.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS `{DB}`.`{dataset}` (")
    # sqlglot's athena dialect routes CREATE EXTERNAL TABLE to its Hive parser, TBLPROPERTIES
    # included, so read="athena" works as is.
    tree = sqlglot.parse_one(sql, read="athena")
    assert isinstance(tree, exp.Create)
    table = tree.find(exp.Table)
    assert (table.db, table.name) == (DB, dataset)

    defs = tree.this.expressions  # the columns of the schema, in order
    assert [(d.name, d.args["kind"].sql("hive").lower()) for d in defs] == expected_columns(
        contract
    )
    desired = catalog.table_input(contract, s3_uri_lake)
    sd = desired["StorageDescriptor"]
    comments = [d.find(exp.CommentColumnConstraint).this.this for d in defs]
    assert comments == [c["Comment"] for c in sd["Columns"]]  # quotes escaped and read back
    assert tree.find(exp.SchemaCommentProperty).this.this == desired["Description"]
    partition = tree.find(exp.PartitionedByProperty).find(exp.ColumnDef)
    assert (partition.name, partition.args["kind"].sql("hive").lower()) == ("dt", "date")
    assert tree.find(exp.FileFormatProperty).name.upper() == "PARQUET"
    assert tree.find(exp.LocationProperty).this.this == sd["Location"]
    props = {
        p.name: p.text("value")
        for p in tree.find_all(exp.Property)
        if type(p) is exp.Property  # TBLPROPERTIES entries (not LOCATION, COMMENT, ...)
    }
    assert props == desired["Parameters"]


# -- the Glue columns are the Parquet the transform writes -----------------------------------


def test_glue_columns_match_the_processed_parquet_schema(lake, write_export, s3_uri_lake):
    from glue.engine.duckdb_engine import DuckDBEngine
    from glue.transform import TransformOptions, transform
    from ingestion.land import land_file
    from peak.core.report import RunReport

    for name, row in (
        ("members_2026-11-23.csv", MEMBER),
        ("classes_2026-11-23.csv", CLASS),
        ("attendance_2026-11-23.csv", CHECKIN),
    ):
        land_file(lake, str(write_export(name, [row])), ingested_at=INGESTED_AT)
    transform(
        lake,
        engine=DuckDBEngine(memory_limit="1GB"),
        report=RunReport("transform"),
        options=TransformOptions(quality=False),
    )

    for dataset, contract in contracts.load_all().items():
        keys = [k for k in lake.list(processed_prefix(dataset)) if k.endswith(".parquet")]
        assert keys, dataset
        schema = pq.read_schema(lake.path(keys[0]))
        parquet = [(f.name, ARROW_TO_ATHENA[f.type]) for f in schema]
        desired = catalog.table_input(contract, s3_uri_lake)
        glue_cols = [(c["Name"], c["Type"]) for c in desired["StorageDescriptor"]["Columns"]]
        assert glue_cols == parquet, dataset
        # dt is the Hive folder, not a column in the file, and the folder matches the template
        template = desired["Parameters"]["storage.location.template"]
        folder = template.removeprefix(s3_uri_lake.root + "/").replace("${dt}", "2026-11-23")
        assert keys[0].startswith(folder)
        assert "dt" not in schema.names
