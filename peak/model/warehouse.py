"""The warehouse reader: the one way every consumer (activation sinks, the dashboard) reads marts.

Locally dbt builds ``<lake>/warehouse.duckdb``; after a passing ``dbt build`` :func:`publish` copies
it to ``<lake>/warehouse.serving.duckdb`` (a temporary file renamed over the old one), and readers
open only that copy, read-only. So a reader never meets dbt's write lock or a half-built mart, and
a failed build leaves consumers on the last good warehouse. On the ``athena`` target marts are read
through awswrangler (UNLOAD to Parquet, the fast path for large results).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from peak.core.errors import ModelError
from peak.core.lake import Lake
from peak.core.layout import SERVING_WAREHOUSE_KEY, WAREHOUSE_KEY
from peak.core.settings import Settings
from peak.core.sql import literal


class WarehouseError(ModelError):
    pass


class Warehouse(Protocol):
    name: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a read-only query with ``?`` placeholders bound to ``params``."""
        ...

    def read(self, relation: str, columns: Sequence[str] | None = None) -> pa.Table:
        """A whole mart (or the named columns of it)."""
        ...


def _columns(columns: Sequence[str] | None) -> str:
    if not columns:
        return "*"
    return ", ".join(f'"{c}"' for c in columns)


def _relation(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise WarehouseError(f"not a relation name: {name!r}")
    return name


@dataclass
class DuckDBWarehouse:
    """The published copy of the local warehouse, opened read-only per call."""

    path: Path
    schema: str = "main"
    name: str = "duckdb"

    def _connect(self) -> Any:
        import duckdb

        if not self.path.exists():
            raise WarehouseError(
                f"no warehouse at {self.path}: run `peak build` (or `peak run`) first"
            )
        return duckdb.connect(str(self.path), read_only=True)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        con = self._connect()
        try:
            return con.sql(sql, params=list(params) or None).to_arrow_table()
        finally:
            con.close()

    def read(self, relation: str, columns: Sequence[str] | None = None) -> pa.Table:
        return self.query(f"select {_columns(columns)} from {self.schema}.{_relation(relation)}")


@dataclass
class AthenaWarehouse:
    """Marts in the Athena schema dbt builds (read with awswrangler's UNLOAD)."""

    schema: str
    work_group: str
    s3_output: str | None = None
    name: str = "athena"
    #: What this reader's queries scanned so far (Athena's DataScannedInBytes): the run report
    #: records it, and `peak cost` bills Athena from it.
    bytes_scanned: int = 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        import awswrangler as wr

        # Athena's execution parameters are SQL literals: quote strings and dates.
        literals = [_athena_literal(p) for p in params]
        frame = wr.athena.read_sql_query(
            sql,
            database=self.schema,
            workgroup=self.work_group,
            s3_output=self.s3_output,
            ctas_approach=False,
            unload_approach=True,
            params=literals or None,
            paramstyle="qmark",
            dtype_backend="pyarrow",
        )
        execution = getattr(frame, "query_metadata", None) or {}  # awswrangler attaches it
        scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
        self.bytes_scanned += int(scanned or 0)
        return pa.Table.from_pandas(frame, preserve_index=False)

    def read(self, relation: str, columns: Sequence[str] | None = None) -> pa.Table:
        return self.query(f"select {_columns(columns)} from {self.schema}.{_relation(relation)}")


def _athena_literal(value: Any) -> str:
    """A query parameter as the SQL literal Athena's ExecutionParameters expect."""
    import datetime as dt

    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return literal(value)


def build_path(lake: Lake) -> Path:
    """The file dbt-duckdb builds into (the ``local`` target)."""
    if not lake.is_local:
        raise WarehouseError("the local dbt target needs a local lake (PEAK_LAKE is on S3)")
    return lake.path(WAREHOUSE_KEY)


def serving_path(lake: Lake) -> Path:
    return lake.path(SERVING_WAREHOUSE_KEY)


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def publish(lake: Lake) -> Path:
    """Atomically replace the serving copy with the warehouse dbt just built."""
    import duckdb

    src = build_path(lake)
    dst = serving_path(lake)
    con = duckdb.connect(str(src))  # fold the write-ahead log into the file before copying it
    try:
        con.execute("checkpoint")
    finally:
        con.close()
    fd, tmp = tempfile.mkstemp(prefix=".serving-", suffix=".duckdb", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        # mkstemp makes it 0600: the copy is for readers (a dashboard under its own account),
        # so it gets a normal new file's mode, the umask's.
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def open_warehouse(lake: Lake, settings: Settings, target: str | None = None) -> Warehouse:
    """The reader for a dbt target (default: ``PEAK_DBT_TARGET``)."""
    target = target or settings.dbt_target
    if target == "athena":
        return AthenaWarehouse(
            schema=settings.athena.schema_name,
            work_group=settings.athena.work_group,
            s3_output=settings.athena.s3_staging_dir,
        )
    return DuckDBWarehouse(serving_path(lake))
