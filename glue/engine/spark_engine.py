"""The distributed engine: Spark runs the contract's SQL (the Glue Spark job; locally, tests).

It runs exactly the statements of :mod:`glue.rules` that the DuckDB engine runs, rendered in
Spark's dialect, over the same relations (``raw``, ``validated``, ``valid_new``, ``existing``,
``ranked``, ``affected``), and writes the same staged layout (:mod:`glue.engine`): one Parquet
file per ``processed/dt=D`` folder and per ``quarantine/_qpart=<raw_id>`` folder.

What makes the files identical to DuckDB's (checked by ``tests/test_parity.py``):

- the session time zone is UTC and every timestamp column is ``TIMESTAMP_NTZ``, written as
  Parquet ``TIMESTAMP(MICROS, isAdjustedToUTC=false)``: it reads back as a naive
  ``timestamp[us]`` in DuckDB and pyarrow, like DuckDB's ``TIMESTAMP``;
- integers are ``BIGINT`` (int64), dates ``DATE`` (date32), booleans ``BOOLEAN``;
- every output column is nullable, as in DuckDB's files (Spark would otherwise mark columns it
  can prove non-null, such as ``_reasons``, as Parquet ``REQUIRED``);
- compression is zstd, as DuckDB's.

Paths may be local paths or URIs Spark can read. On a Glue cluster the executors do not see the
driver's disk, so there the job's raw, existing and staging paths must be ``s3://`` URIs; locally
(``local[*]``) plain paths do. Spark's ``_SUCCESS`` markers and Hadoop's ``.crc`` side files are
removed from local staging folders (``glue.engine.staged_*`` only pick ``*.parquet`` anyway).

The relations are temporary views of the session; ``validated`` and ``ranked`` (each read by
several statements) are persisted (memory, then disk) and released, with the views, when
``process`` returns. Persisting rather than checkpointing keeps the lineage, so a lost executor
costs a recomputation, not the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _first(frame: DataFrame) -> tuple[Any, ...]:
    """The one row an aggregate query returns."""
    row = frame.first()
    if row is None:
        raise RuntimeError("the query returned no row")
    return tuple(row)


#: Compression of the staged Parquet files (DuckDB's engine writes zstd too).
COMPRESSION = "zstd"

#: Runtime SQL settings the statements and the file format depend on. They are applied to
#: whatever session the engine is given (a Glue session included) for the duration of a
#: ``process`` call, and restored afterwards.
SESSION_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": COMPRESSION,
    # Parquet timestamps without isAdjustedToUTC (pyarrow's and DuckDB's naive ones) read as NTZ.
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    # Dates and timestamps are proleptic Gregorian everywhere (pyarrow, DuckDB): never rebase.
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "true",
    "spark.sql.files.maxRecordsPerFile": "0",
}

VIEWS = (
    "raw",
    "validated",
    "quarantined",
    "valid_new",
    "existing",
    rules.EXPORTS,
    "ranked",
    "affected",
)


def local_session(
    app_name: str = "peak-transform",
    *,
    cores: int | str = "*",
    shuffle_partitions: int = 4,
    driver_memory: str = "3g",
) -> SparkSession:
    """A local SparkSession for tests and the CLI: no UI, quiet logs, small shuffles, UTC."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(shuffle_partitions))
        .config("spark.sql.adaptive.enabled", "true")
        # JVM defaults that could leak into results: the zone, and the locale Java's
        # String.toLowerCase uses for non-ASCII text.
        .config(
            "spark.driver.extraJavaOptions",
            "-Duser.timezone=UTC -Duser.language=en -Duser.country=US",
        )
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    )
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local_path(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def _tidy(folder: str) -> None:
    """Remove Spark's ``_SUCCESS`` markers and Hadoop's ``.crc`` side files (local only)."""
    if not _is_local(folder):
        return
    root = _local_path(folder)
    if not root.exists():
        return
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name == "_SUCCESS" or (name.startswith(".") and name.endswith(".crc")):
                (Path(dirpath) / name).unlink(missing_ok=True)


def _base_path(existing_files: list[str]) -> str:
    """The folder holding the ``dt=`` folders of the existing partitions."""
    bases = {f.rsplit(f"/{contracts.PARTITION_COLUMN}=", 1)[0] for f in existing_files}
    if len(bases) != 1 or any("/" not in b for b in bases):
        raise ValueError(f"existing partitions must share one dt= parent folder, got {bases}")
    return bases.pop()


class SparkEngine:
    name = "spark"
    dialect = "spark"
    reads_uris = True  # Glue's Spark reads and writes s3:// itself

    def __init__(
        self,
        spark: SparkSession | None = None,
        *,
        driver_memory: str = "3g",
        shuffle_partitions: int = 16,
    ):
        self._spark = spark
        self._driver_memory = driver_memory
        self._shuffle_partitions = shuffle_partitions

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = local_session(
                driver_memory=self._driver_memory, shuffle_partitions=self._shuffle_partitions
            )
        return self._spark

    @contextmanager
    def _session_conf(self) -> Iterator[SparkSession]:
        spark = self.spark
        previous = {key: spark.conf.get(key, None) for key in SESSION_CONF}
        for key, value in SESSION_CONF.items():
            spark.conf.set(key, value)
        try:
            yield spark
        finally:
            for key, old in previous.items():
                if old is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, old)

    def process(self, contract: Contract, job: EngineJob) -> EngineResult:
        with self._session_conf() as spark:
            cached: list[DataFrame] = []
            try:
                return self._process(spark, contract, job, cached)
            finally:
                for frame in cached:
                    frame.unpersist()
                for view in VIEWS:
                    spark.catalog.dropTempView(view)

    def _process(
        self, spark: SparkSession, contract: Contract, job: EngineJob, cached: list[DataFrame]
    ) -> EngineResult:
        from pyspark import StorageLevel

        d = self.dialect
        ids = job.batch_raw_ids
        staging = job.staging
        if _is_local(staging):
            _local_path(staging).mkdir(parents=True, exist_ok=True)

        def view(name: str, sql: str, *, persist: bool = False) -> DataFrame:
            frame = spark.sql(sql)
            if persist:
                frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(frame)
            frame.createOrReplaceTempView(name)
            return frame

        spark.read.parquet(*job.raw_files).createOrReplaceTempView("raw")
        view(
            "validated",
            rules.validate_sql(contract, timezone=job.timezone, dialect=d),
            persist=True,
        )
        reasons_col = rules.q(contracts.REASONS)
        rows_in, quarantined = _first(
            spark.sql(
                rules.render(
                    f"SELECT COUNT(*), COUNT(*) FILTER (WHERE {reasons_col} <> '') FROM validated",
                    d,
                )
            )
        )
        reasons: dict[str, int] = {}
        if quarantined:
            row = _first(spark.sql(reason_counts_sql(contract, d)))
            reasons = {
                rule.code: int(n) for rule, n in zip(contract.rules(), row, strict=True) if n
            }
            rejected = view("quarantined", rules.quarantine_sql(contract, dialect=d))
            rejected = rejected.withColumn(QUARANTINE_PART, rejected[contracts.RAW_ID])
            self._write(rejected, _join(staging, "quarantine"), QUARANTINE_PART, [])

        valid_new = view("valid_new", rules.valid_sql(contract, dialect=d))
        self._existing(spark, contract, job.existing_files, valid_new)
        spark.createDataFrame(
            exports_rows(job), f"{contracts.RAW_ID} string, {contracts.EXPORT_DATE} date"
        ).createOrReplaceTempView(rules.EXPORTS)
        view("ranked", rules.rank_sql(contract, dialect=d, batch_raw_ids=ids), persist=True)
        deduplicated, superseded = _first(spark.sql(rules.counts_sql(dialect=d)))
        affected_rows = view(
            "affected", rules.affected_sql(dialect=d, batch_raw_ids=ids), persist=True
        ).collect()
        affected = sorted(str(r[0]) for r in affected_rows)
        valid_count = valid_new.count()
        if affected:
            final = spark.sql(rules.final_sql(contract, dialect=d, batch_raw_ids=ids))
            order = [contracts.PARTITION_COLUMN, *contract.primary_key]
            self._write(final, _join(staging, "processed"), contracts.PARTITION_COLUMN, order)

        return EngineResult(
            rows_in=int(rows_in),
            rows_valid=int(valid_count) - int(deduplicated),
            rows_quarantined=int(quarantined),
            rows_deduplicated=int(deduplicated),
            rows_superseded=int(superseded),
            affected_partitions=affected,
            reasons=reasons,
        )

    def _existing(
        self, spark: SparkSession, contract: Contract, files: list[str], valid_new: DataFrame
    ) -> None:
        """``existing``: the live partitions, typed exactly like ``valid_new`` (``dt`` a DATE).

        Casting to ``valid_new``'s types lets partitions written by either engine (or an older
        writer that marked timestamps as UTC-adjusted) be read alike.
        """
        if not files:
            valid_new.where("FALSE").createOrReplaceTempView("existing")
            return
        frame = spark.read.option("basePath", _base_path(files)).parquet(*files)
        types = {f.name: f.dataType for f in valid_new.schema.fields}
        frame.select(
            *(frame[c].cast(types[c]).alias(c) for c in contract.processed_columns)
        ).createOrReplaceTempView("existing")

    def _write(self, frame: DataFrame, path: str, partition: str, order: list[str]) -> None:
        """One Parquet file per partition folder, the partition column outside the files."""
        frame = _nullable(frame).repartition(partition)
        if order:
            frame = frame.sortWithinPartitions(*order)
        frame.write.mode("overwrite").partitionBy(partition).parquet(path)
        _tidy(path)


def _nullable(frame: DataFrame) -> DataFrame:
    """Every column nullable, as in DuckDB's files.

    Spark writes a column it can prove non-null (``_reasons``, built by ``CONCAT_WS``) as a
    Parquet ``REQUIRED`` field, and neither casts nor ``DataFrame.to`` relax that. A ``CASE``
    without ``ELSE`` on a condition the optimizer cannot fold (``SPARK_PARTITION_ID`` is
    non-deterministic) is nullable and costs nothing.
    """
    if all(f.nullable for f in frame.schema.fields):
        return frame
    cols = []
    for f in frame.schema.fields:
        name = "`" + f.name.replace("`", "``") + "`"
        cols.append(
            name if f.nullable else f"CASE WHEN SPARK_PARTITION_ID() >= 0 THEN {name} END AS {name}"
        )
    return frame.selectExpr(*cols)
