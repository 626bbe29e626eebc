"""The Glue Data Catalog over the processed zone: one table per data contract, kept in sync.

Athena (and dbt's ``athena`` target) reads the processed zone through a Glue database (setting
``glue_database``, default ``peak_processed``) holding one external Parquet table per dataset at
``processed/<dataset>/``, partitioned by the Hive folder ``dt=YYYY-MM-DD``. Everything in a table's
definition is derived from the contract and the lake layout (:mod:`peak.core.lake`), so
:func:`sync` can create, repair and update the tables without anyone writing DDL by hand.

Why partition projection: Athena computes the partitions from the table's properties (every day
from 2000-01-01 to today, each under ``storage.location.template``) instead of looking them up in
the catalog. So a partition the transform writes is queryable the moment its file lands: no Glue
crawler (which costs money, guesses types and lags behind), no ``MSCK REPAIR TABLE`` or
``ALTER TABLE ADD PARTITION`` after every run, and no partition metadata that can drift from the
files. A day without a folder simply reads as empty. The catalog changes only when a contract
does, which is exactly when :func:`sync` has work to do.

Each table carries the parameters ``"peak.contract"`` (the dataset it serves) and
``"peak.fingerprint"`` (a sha256 of
the contract-derived definition). :func:`sync` compares both the fingerprint and the table's actual
columns, partition keys, location and parameters, so a table edited by hand is repaired too.
Tables tagged ``"peak.contract"`` whose contract is gone are reported as orphaned, never dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import contracts
from contracts import Contract
from peak.core.lake import Lake
from peak.core.layout import processed_key, processed_prefix

#: Athena (Hive DDL) type of each contract column type, matching what the transform writes to
#: Parquet: integer -> int64, date -> date32, timestamp -> naive UTC timestamp[us], time -> the
#: "HH:MM" text (Athena tables have no time type).
ATHENA_TYPES: dict[str, str] = {
    "string": "string",
    "integer": "bigint",
    "boolean": "boolean",
    "date": "date",
    "time": "string",
    "timestamp": "timestamp",
}
#: The Arrow type names of ``contracts.LINEAGE_COLUMNS``, as contract column types.
_ARROW_AS_CONTRACT_TYPE: dict[str, str] = {
    "string": "string",
    "int64": "integer",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
}

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

#: Table parameters owned by this module: the contract a table serves and its fingerprint.
CONTRACT_PARAM = "peak.contract"
FINGERPRINT_PARAM = "peak.fingerprint"
#: Parameter names (prefixes) this module owns: an extra one on a table is a hand edit to undo.
#: Others (Athena's ``transient_lastDdlTime``, Lake Formation's) are left alone.
_OWNED_PARAMS = ("peak.", "projection.", "storage.location.template", "classification")
#: The first day partition projection enumerates (the contracts' earliest valid date).
PROJECTION_START = "2000-01-01"
#: Glue's limit on a column comment.
_MAX_COMMENT = 255


# ---------------------------------------------------------------------------------------------
# The definition: contract -> Glue TableInput (pure, no AWS calls).
# ---------------------------------------------------------------------------------------------


def _require_s3(lake: Lake) -> None:
    if lake.is_local:
        raise ValueError(
            f"the Glue catalog needs an s3:// lake, not the local folder {lake.root} "
            "(set PEAK_LAKE=s3://bucket/prefix)"
        )


def _text(description: str, limit: int | None = None) -> str:
    """A description on one line (YAML folded text ends in a newline), cut to ``limit``."""
    text = " ".join(description.split())
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _column(name: str, athena_type: str, description: str) -> dict[str, str]:
    return {"Name": name, "Type": athena_type, "Comment": _text(description, _MAX_COMMENT)}


def columns(contract: Contract) -> list[dict[str, str]]:
    """The processed files' columns in file order: the contract's, then the kept lineage."""
    out = [_column(c.name, ATHENA_TYPES[c.type], c.description) for c in contract.columns]
    for name in contracts.PROCESSED_LINEAGE:
        arrow_type, description = contracts.LINEAGE_COLUMNS[name]
        out.append(_column(name, ATHENA_TYPES[_ARROW_AS_CONTRACT_TYPE[arrow_type]], description))
    return out


def partition_keys(contract: Contract) -> list[dict[str, str]]:
    """The one Hive partition, ``dt`` (a date), described from the contract's partitioning."""
    if contract.partition.by == "column":
        what = f"The UTC date of {contract.partition.column}"
    else:
        what = "The export's date"
    return [_column(contracts.PARTITION_COLUMN, "date", f"{what}: the partition (dt=YYYY-MM-DD).")]


def location(contract: Contract, lake: Lake) -> str:
    """The table's root: the lake URI of the dataset's processed prefix (ends with '/')."""
    return lake.uri(processed_prefix(contract.dataset))


def location_template(contract: Contract, lake: Lake) -> str:
    """Where partition ``${dt}`` lives: the folder of :func:`peak.core.layout.processed_key`."""
    folder = processed_key(contract.dataset, "${dt}").rsplit("/", 1)[0] + "/"
    return lake.uri(folder)


def _projection(contract: Contract, lake: Lake) -> dict[str, str]:
    dt = contracts.PARTITION_COLUMN
    return {
        "projection.enabled": "true",
        f"projection.{dt}.type": "date",
        f"projection.{dt}.format": "yyyy-MM-dd",
        f"projection.{dt}.range": f"{PROJECTION_START},NOW",
        f"projection.{dt}.interval": "1",
        f"projection.{dt}.interval.unit": "DAYS",
        "storage.location.template": location_template(contract, lake),
    }


def fingerprint(definition: dict[str, Any]) -> str:
    """sha256 of a TableInput without its fingerprint parameter (canonical JSON)."""
    params = {k: v for k, v in definition.get("Parameters", {}).items() if k != FINGERPRINT_PARAM}
    canonical = json.dumps({**definition, "Parameters": params}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def table_input(contract: Contract, lake: Lake) -> dict[str, Any]:
    """The Glue ``TableInput`` of one dataset's processed table."""
    _require_s3(lake)
    definition: dict[str, Any] = {
        "Name": contract.dataset,
        "Description": _text(contract.description),
        "TableType": "EXTERNAL_TABLE",
        "StorageDescriptor": {
            "Columns": columns(contract),
            "Location": location(contract, lake),
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
        },
        "PartitionKeys": partition_keys(contract),
        "Parameters": {
            "classification": "parquet",
            CONTRACT_PARAM: contract.dataset,
            **_projection(contract, lake),
        },
    }
    definition["Parameters"][FINGERPRINT_PARAM] = fingerprint(definition)
    return definition


# ---------------------------------------------------------------------------------------------
# The same definition as Athena DDL (for docs and infrastructure).
# ---------------------------------------------------------------------------------------------


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _string(text: str) -> str:
    """A Hive DDL string literal (Hive escapes with backslashes, not doubled quotes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _column_ddl(col: dict[str, str]) -> str:
    return f"  {_ident(col['Name'])} {col['Type']} COMMENT {_string(col['Comment'])}"


def athena_ddl(contract: Contract, lake: Lake, database: str) -> str:
    """``CREATE EXTERNAL TABLE IF NOT EXISTS`` equivalent to :func:`table_input`."""
    table = table_input(contract, lake)
    sd = table["StorageDescriptor"]
    cols = ",\n".join(_column_ddl(c) for c in sd["Columns"])
    parts = ", ".join(_column_ddl(c).strip() for c in table["PartitionKeys"])
    props = ",\n".join(
        f"  {_string(k)}={_string(v)}" for k, v in sorted(table["Parameters"].items())
    )
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {_ident(database)}.{_ident(table['Name'])} (\n"
        f"{cols}\n)\n"
        f"COMMENT {_string(table['Description'])}\n"
        f"PARTITIONED BY ({parts})\n"
        "STORED AS PARQUET\n"
        f"LOCATION {_string(sd['Location'])}\n"
        f"TBLPROPERTIES (\n{props}\n)"
    )


# ---------------------------------------------------------------------------------------------
# Sync: make the catalog match the contracts.
# ---------------------------------------------------------------------------------------------


@dataclass
class CatalogSyncResult:
    """What :func:`sync` did (or, on a dry run, would do), per table."""

    database: str
    dry_run: bool = False
    database_created: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.database_created or self.created or self.updated)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def client_for(lake: Lake) -> Any:
    """A Glue client from the lake's boto3 session (or the default credential chain)."""
    import boto3

    return (lake.boto3_session or boto3.session.Session()).client("glue")


def _database_exists(glue: Any, database: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        glue.get_database(Name=database)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "EntityNotFoundException":
            return False
        raise
    return True


def _existing_tables(glue: Any, database: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
        for table in page.get("TableList", []):
            out[table["Name"]] = table
    return out


def _comparable(table: dict[str, Any]) -> dict[str, Any]:
    """The parts of a table (as Glue returns it, or a TableInput) that this module defines."""
    sd = table.get("StorageDescriptor", {})
    serde = sd.get("SerdeInfo", {})

    def cols(items: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(c["Name"], c["Type"].lower(), c.get("Comment", "")) for c in items]

    params = table.get("Parameters", {})
    return {
        "Description": table.get("Description", ""),
        "TableType": table.get("TableType"),
        "Columns": cols(sd.get("Columns", [])),
        "PartitionKeys": cols(table.get("PartitionKeys", [])),
        "Location": sd.get("Location"),
        "InputFormat": sd.get("InputFormat"),
        "OutputFormat": sd.get("OutputFormat"),
        "SerializationLibrary": serde.get("SerializationLibrary"),
        "SerdeParameters": serde.get("Parameters", {}),
        "Parameters": {k: v for k, v in params.items() if k.startswith(_OWNED_PARAMS)},
    }


def differs(existing: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when a catalog table does not match its desired TableInput.

    The fingerprint catches contract changes; the field comparison catches hand edits (which
    usually keep the old fingerprint). Parameters this module does not own are ignored.
    """
    return _comparable(existing) != _comparable(desired)


def _orphans(existing: dict[str, dict[str, Any]], known: set[str]) -> list[str]:
    return sorted(
        name
        for name, table in existing.items()
        if CONTRACT_PARAM in table.get("Parameters", {})
        and table["Parameters"][CONTRACT_PARAM] not in known
    )


def _ensure_database(glue: Any, database: str, result: CatalogSyncResult) -> bool:
    """Create the database if missing; True when it existed before."""
    if _database_exists(glue, database):
        return True
    result.database_created = True
    if not result.dry_run:
        glue.create_database(
            DatabaseInput={
                "Name": database,
                "Description": "Peak Fitness processed zone: one table per data contract "
                "(managed by `peak catalog sync`; partitions by projection).",
            }
        )
    return False


def sync(
    glue_client: Any,
    database: str,
    lake: Lake,
    datasets: list[str] | None = None,
    dry_run: bool = False,
) -> CatalogSyncResult:
    """Make the Glue database's tables match the contracts (all, or the ``datasets`` named).

    Creates the database and missing tables, updates tables that differ, leaves equal ones alone
    and reports tables of vanished contracts as orphaned. Idempotent: a second run makes no write
    call. ``dry_run`` reports the same without any write call.
    """
    _require_s3(lake)
    known = contracts.load_all()
    selected = [contracts.get(name) for name in (datasets or list(known))]
    result = CatalogSyncResult(database=database, dry_run=dry_run)
    existed = _ensure_database(glue_client, database, result)
    existing = _existing_tables(glue_client, database) if existed else {}
    for contract in selected:
        desired = table_input(contract, lake)
        name = desired["Name"]
        if name not in existing:
            result.created.append(name)
            if not dry_run:
                glue_client.create_table(DatabaseName=database, TableInput=desired)
        elif differs(existing[name], desired):
            result.updated.append(name)
            if not dry_run:
                glue_client.update_table(DatabaseName=database, TableInput=desired)
        else:
            result.unchanged.append(name)
    result.orphaned = _orphans(existing, set(known))
    return result
