"""The single-node engine: DuckDB runs the contract's SQL (the local default; on AWS the cheap
Glue Python-shell job for small days). It reads and writes local files only: for an S3 lake the
caller stages inputs and uploads outputs (DuckDB's httpfs extension is not used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

import contracts
from contracts import Contract
from glue import rules
from glue.engine.base import (
    QUARANTINE_PART,
    EngineJob,
    EngineResult,
    exports_rows,
    reason_counts_sql,
)
from peak.core.layout import PARTITION_FILE


def _one(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The one row an aggregate query returns."""
    row = result.fetchone()
    if row is None:
        raise RuntimeError("the query returned no row")
    return row


class DuckDBEngine:
    name = "duckdb"
    dialect = "duckdb"
    reads_uris = False  # no httpfs here: local files only

    def __init__(self, memory_limit: str = "3GB", threads: int | None = None):
        self.memory_limit = memory_limit
        self.threads = threads

    def _connect(self, temp_dir: Path) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"memory_limit": self.memory_limit})
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET temp_directory = {rules.lit(str(temp_dir))}")
        con.execute("SET preserve_insertion_order = false")
        # The allocator keeps freed memory up to the cap instead of returning it to the OS and
        # faulting it back in on the next statement (about 1 s of kernel time per 10M rows).
        for setting in ("allocator_flush_threshold", "allocator_bulk_deallocation_flush_threshold"):
            con.execute(f"SET {setting} = {rules.lit(self.memory_limit)}")
        if self.threads:
            con.execute(f"SET threads = {int(self.threads)}")
        return con

    def _write_partitions(self, con: duckdb.DuckDBPyConnection, folder: Path) -> None:
        """``final``'s rows into ``folder/dt=D/<file>.parquet``, one file per partition.

        One ``COPY ... PARTITION_BY``: the rows are read once whatever the number of
        partitions (one COPY per partition read the batch once per day: rows x partitions on a
        year's backfill in one file). A partition left with no row (all superseded) gets no
        file. The staging folder is published partition by partition afterwards, each by one
        atomic rename (glue.transform).
        """
        dt = rules.q(contracts.PARTITION_COLUMN)
        con.execute(
            f"COPY (SELECT * FROM final) TO {rules.lit(str(folder))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000, PARTITION_BY ({dt}), "
            f"FILENAME_PATTERN {rules.lit(Path(PARTITION_FILE).stem)})"
        )

    def _validate(self, con: duckdb.DuckDBPyConnection, contract: Contract, job: EngineJob) -> None:
        """The rules over the batch into ``validated_rows``, and the view ``validated``.

        The per-file lineage text (file name, raw id: 64 characters) is the same on every row
        of a raw file, so the table keeps each row's file number (``file_index``) instead and
        the view joins the text back from a table of one row per file: a third less to
        materialise per row, the same columns and values for every statement after it.
        """
        files = ", ".join(rules.lit(str(p)) for p in job.raw_files)
        text = contracts.FILE_LINEAGE_TEXT
        con.execute(
            f"CREATE VIEW raw AS SELECT *, file_index AS _file FROM read_parquet([{files}])"
        )
        cols = ", ".join(rules.q(c) for c in text)
        con.execute(f"CREATE TABLE files AS SELECT DISTINCT _file, {cols} FROM raw")
        pairs, distinct = _one(con.execute("SELECT COUNT(*), COUNT(DISTINCT _file) FROM files"))
        if pairs != distinct:
            raise RuntimeError(f"a raw file holds more than one value of {', '.join(text)}")
        carried = [c for c in contracts.LINEAGE_COLUMNS if c not in text] + ["_file"]
        con.execute(
            "CREATE TABLE validated_rows AS "
            + rules.validate_sql(
                contract, timezone=job.timezone, dialect=self.dialect, lineage=carried
            )
        )
        con.execute(
            f"CREATE VIEW validated AS SELECT {', '.join('f.' + rules.q(c) for c in text)}, "
            "v.* EXCLUDE (_file) FROM validated_rows AS v JOIN files AS f ON v._file = f._file"
        )

    def process(self, contract: Contract, job: EngineJob) -> EngineResult:
        d = self.dialect
        staging = Path(job.staging)
        staging.mkdir(parents=True, exist_ok=True)
        con = self._connect(staging / "_tmp")
        try:
            # Tables and views in the (private, in-memory) database rather than TEMP ones: the
            # partition writers' cursors share the database, not this connection's temp schema.
            self._validate(con, contract, job)
            rows_in, quarantined = _one(
                con.execute(
                    f"SELECT COUNT(*), COUNT(*) FILTER (WHERE {rules.q('_reasons')} <> '') "
                    "FROM validated_rows"
                )
            )
            reasons = {}
            if quarantined:
                row = _one(con.execute(reason_counts_sql(contract, d, "validated_rows")))
                reasons = {rule.code: n for rule, n in zip(contract.rules(), row) if n}
                con.execute(
                    f"COPY (SELECT *, {rules.q('_raw_id')} AS {QUARANTINE_PART} FROM "
                    f"({rules.quarantine_sql(contract, dialect=d)})) "
                    f"TO {rules.lit(str(staging / 'quarantine'))} "
                    f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({QUARANTINE_PART}))"
                )
            con.execute("CREATE VIEW valid_new AS " + rules.valid_sql(contract, dialect=d))
            if job.existing_files:
                existing = ", ".join(rules.lit(str(p)) for p in job.existing_files)
                cols = ", ".join(rules.q(c) for c in contract.file_columns)
                con.execute(
                    f"CREATE VIEW existing AS SELECT {cols}, CAST(dt AS DATE) AS dt "
                    f"FROM read_parquet([{existing}], hive_partitioning = true)"
                )
            else:
                con.execute("CREATE VIEW existing AS SELECT * FROM valid_new WHERE FALSE")
            ids = job.batch_raw_ids
            raw_id, export_date = rules.q(contracts.RAW_ID), rules.q(contracts.EXPORT_DATE)
            con.execute(f"CREATE TABLE {rules.EXPORTS} ({raw_id} VARCHAR, {export_date} DATE)")
            if job.export_dates:  # DuckDB refuses an empty executemany
                con.executemany(f"INSERT INTO {rules.EXPORTS} VALUES (?, ?)", exports_rows(job))
            con.execute(
                "CREATE TABLE ranked AS " + rules.rank_sql(contract, dialect=d, batch_raw_ids=ids)
            )
            deduplicated, superseded = _one(con.execute(rules.counts_sql(dialect=d)))
            con.execute(
                "CREATE TABLE affected AS " + rules.affected_sql(dialect=d, batch_raw_ids=ids)
            )
            affected = sorted(str(r[0]) for r in con.execute("SELECT dt FROM affected").fetchall())
            valid_new = _one(con.execute("SELECT COUNT(*) FROM valid_new"))[0]
            if affected:
                con.execute(
                    "CREATE VIEW final AS "
                    + rules.final_sql(contract, dialect=d, batch_raw_ids=ids)
                )
                self._write_partitions(con, staging / "processed")
        finally:
            con.close()
        return EngineResult(
            rows_in=int(rows_in),
            rows_valid=int(valid_new) - int(deduplicated),
            rows_quarantined=int(quarantined),
            rows_deduplicated=int(deduplicated),
            rows_superseded=int(superseded),
            affected_partitions=affected,
            reasons=reasons,
        )
