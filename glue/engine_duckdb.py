"""The single-node engine: DuckDB runs the contract's SQL (the local default; on AWS the cheap
Glue Python-shell job for small days). It reads and writes local files only: for an S3 lake the
caller stages inputs and uploads outputs (DuckDB's httpfs extension is not used)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from contracts import Contract
from glue import rules
from glue.engine import QUARANTINE_PART, EngineJob, EngineResult, reason_counts_sql


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
        con.execute(f"SET temp_directory = '{temp_dir}'")
        con.execute("SET preserve_insertion_order = false")
        if self.threads:
            con.execute(f"SET threads = {int(self.threads)}")
        return con

    def process(self, contract: Contract, job: EngineJob) -> EngineResult:
        d = self.dialect
        staging = Path(job.staging)
        staging.mkdir(parents=True, exist_ok=True)
        con = self._connect(staging / "_tmp")
        try:
            files = ", ".join(rules.lit(str(p)) for p in job.raw_files)
            con.execute(f"CREATE VIEW raw AS SELECT * FROM read_parquet([{files}])")
            con.execute(
                "CREATE TEMP TABLE validated AS "
                + rules.validate_sql(contract, timezone=job.timezone, dialect=d)
            )
            rows_in, quarantined = con.execute(
                f"SELECT COUNT(*), COUNT(*) FILTER (WHERE {rules.q('_reasons')} <> '') "
                "FROM validated"
            ).fetchone()
            reasons = {}
            if quarantined:
                row = con.execute(reason_counts_sql(contract, d)).fetchone()
                reasons = {rule.code: n for rule, n in zip(contract.rules(), row) if n}
                con.execute(
                    f"COPY (SELECT *, {rules.q('_raw_id')} AS {QUARANTINE_PART} FROM "
                    f"({rules.quarantine_sql(contract, dialect=d)})) "
                    f"TO '{staging / 'quarantine'}' "
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
            con.execute(
                "CREATE TEMP TABLE ranked AS "
                + rules.rank_sql(contract, dialect=d, batch_raw_ids=ids)
            )
            deduplicated, superseded = con.execute(rules.counts_sql(dialect=d)).fetchone()
            con.execute(
                "CREATE TEMP TABLE affected AS " + rules.affected_sql(dialect=d, batch_raw_ids=ids)
            )
            affected = sorted(str(r[0]) for r in con.execute("SELECT dt FROM affected").fetchall())
            valid_new = con.execute("SELECT COUNT(*) FROM valid_new").fetchone()[0]
            if affected:
                con.execute(
                    f"COPY ({rules.final_sql(contract, dialect=d, batch_raw_ids=ids)}) "
                    f"TO '{staging / 'processed'}' "
                    "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt), ROW_GROUP_SIZE 1000000)"
                )
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
