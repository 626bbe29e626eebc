"""The transform stage: raw Parquet -> validated, typed, de-duplicated, partitioned Parquet.

Incremental like a Glue job bookmark: each run takes the committed raw files (the ingest ledger)
that the transform ledger has not seen, runs the engine over them as one batch, checks the staged
partitions with Great Expectations, then publishes:

1. every affected partition ``processed/<dataset>/dt=D/data.parquet``, each replaced whole by one
   atomic rename (local) or PUT/copy (S3): readers see the old or the new partition, never a mix;
2. the batch's rejected rows under ``quarantine/<dataset>/rows/``, one file per raw file;
3. last, the transform ledger. A run killed before this point is simply run again: the engine
   ignores rows that the interrupted run left behind (they come from the batch's own raw files),
   so the output equals that of an uninterrupted run.
"""

from __future__ import annotations

import importlib
import tempfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import contracts
from glue import quality
from glue.engine.base import Engine, EngineJob, EngineResult, staged_partitions, staged_quarantine
from peak.core import layout, ledger
from peak.core.errors import TransformError
from peak.core.failpoints import failpoint
from peak.core.lake import Lake
from peak.core.locks import transform_lock
from peak.core.report import RunReport, balanced, one_line
from peak.core.settings import Settings

Progress = Callable[[str, str], None]


@dataclass
class TransformOptions:
    timezone: str = "UTC"
    reprocess: bool = False
    quality: bool = True
    quality_batch_rows: int = 1_000_000
    quality_sample_rows: int = 100_000
    #: The quality step's DuckDB cap: the engine's (PEAK_DUCKDB_MEMORY_LIMIT).
    memory_limit: str = "1GB"

    @classmethod
    def from_settings(cls, settings: Settings, *, reprocess: bool, quality: bool):
        return cls(
            timezone=settings.gym_timezone,
            reprocess=reprocess,
            quality=quality,
            quality_batch_rows=settings.quality.batch_rows,
            quality_sample_rows=settings.quality.sample_rows,
            memory_limit=settings.duckdb.memory_limit,
        )


def _raw_file(entry: dict) -> str:
    """A raw file as errors name it: its key, the export it came from and when it landed."""
    export = Path(str(entry.get("source") or "?")).name
    return f"raw file {entry['parquet_key']} (export {export}, landed {entry['ingest_date']})"


def _check_raw_files(lake: Lake, dataset: str, batch: list[dict], reprocess: bool) -> None:
    """Every raw file of the batch is still there, or a clear error naming the first that is
    not (before the engine's own message about a path)."""
    for entry in batch:
        if not lake.exists(entry["parquet_key"]):
            why = (
                "; --reprocess rebuilds from the raw zone, which keeps files for its retention "
                "period only"
                if reprocess
                else ""
            )
            raise TransformError(f"{dataset}: {_raw_file(entry)} is missing{why}")


def _check_readable(dataset: str, batch: list[dict], files: list[str]) -> None:
    """Every local raw file has a Parquet footer (a truncated file has none): the error names
    the file and its export rather than the engine's message about a path."""
    for entry, path in zip(batch, files):
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            raise TransformError(
                f"{dataset}: {_raw_file(entry)} is not readable Parquet: {one_line(exc)}"
            ) from exc


def _local_inputs(lake: Lake, keys: list[str], workdir: Path) -> list[str]:
    if lake.is_local:
        return [str(lake.path(k)) for k in keys]
    return [str(lake.download(k, workdir / k)) for k in keys]


def transform_dataset(
    lake: Lake,
    dataset: str,
    *,
    engine: Engine,
    report: RunReport,
    options: TransformOptions,
    progress: Progress | None = None,
) -> EngineResult | None:
    contract = contracts.get(dataset)
    stats = report.dataset(dataset)
    say = progress or (lambda _ds, _msg: None)
    committed = ledger.committed_files(lake, dataset)
    done = set() if options.reprocess else ledger.processed_raw_ids(lake, dataset)
    batch = [e for e in committed if e["raw_id"] not in done]
    # In export-date order, a day's rows sit together in what the engine reads, and its
    # per-partition reads skip most of the batch (seconds on a year's backfill). The output
    # does not depend on the order: de-duplication ranks by explicit columns.
    batch.sort(key=lambda e: (e["export_date"], e["ingested_at"], e["raw_id"]))
    if not batch:
        say(dataset, "nothing new")
        return None
    batch_ids = [e["raw_id"] for e in batch]
    _check_raw_files(lake, dataset, batch, options.reprocess)
    ingest_date = {e["raw_id"]: e["ingest_date"] for e in batch}
    live = [
        k
        for k in lake.list(layout.processed_prefix(dataset))
        if k.endswith("/" + layout.PARTITION_FILE)
    ]
    existing = [] if options.reprocess else live

    staging_key = layout.staging_prefix(report.run_id) + dataset + "/"
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="peak-transform-")))
        stack.callback(lake.delete_prefix, staging_key)
        addressable = lake.is_local or getattr(engine, "reads_uris", False)
        if addressable:  # the engine reads and writes the lake itself (Spark on Glue reads S3)
            staging = lake.uri(staging_key)
            raw_files = [lake.uri(e["parquet_key"]) for e in batch]
            existing_files = [lake.uri(k) for k in existing]
        else:  # DuckDB on an S3 lake: inputs and outputs go through a local folder
            staging = str(tmp / "staging")
            raw_files = _local_inputs(lake, [e["parquet_key"] for e in batch], tmp / "inputs")
            existing_files = _local_inputs(lake, existing, tmp / "inputs")
        if not addressable or lake.is_local:  # local files: their footers are cheap to read
            _check_readable(dataset, batch, raw_files)
        say(dataset, f"{engine.name}: validating {len(batch)} file(s)")
        job = EngineJob(
            raw_files=raw_files,
            existing_files=existing_files,
            staging=staging,
            batch_raw_ids=batch_ids,
            timezone=options.timezone,
            export_dates={e["raw_id"]: e["export_date"] for e in committed},
        )
        result = engine.process(contract, job)
        _check_counts(dataset, result, batch)
        if not addressable:
            for path in sorted(Path(staging).rglob("*.parquet")):
                lake.put_file(path, staging_key + path.relative_to(staging).as_posix(), move=True)
        staged = lake.list(staging_key)
        partitions = staged_partitions(staged, staging_key)
        quarantine = staged_quarantine(staged, staging_key)

        if options.quality and partitions:
            say(dataset, f"great expectations: checking {len(partitions)} partition(s)")
            local = {dt: stack.enter_context(lake.local_copy(k)) for dt, k in partitions.items()}
            _check_quality(lake, contract, local, report, options)

        say(dataset, f"publishing {len(result.affected_partitions)} partition(s)")
        for dt in result.affected_partitions:
            key = layout.processed_key(dataset, dt)
            if dt in partitions:
                lake.move(partitions[dt], key)
            else:  # every row of the partition was superseded
                lake.delete(key)
            failpoint("transform.publish")
        if options.reprocess:
            keep = {layout.processed_key(dataset, dt) for dt in result.affected_partitions}
            for key in live:
                if key not in keep:
                    lake.delete(key)
        for raw_id, key in quarantine.items():
            lake.move(key, layout.quarantine_rows_key(dataset, ingest_date[raw_id], raw_id))
        failpoint("transform.ledger")
        ledger.mark_processed(lake, dataset, done | set(batch_ids), report.run_id)

    stats.files_in += len(batch)
    stats.rows_in += result.rows_in
    stats.rows_valid += result.rows_valid
    stats.rows_quarantined += result.rows_quarantined
    stats.rows_deduplicated += result.rows_deduplicated
    stats.rows_superseded += result.rows_superseded
    stats.partitions_written.extend(result.affected_partitions)
    stats.reasons.update(result.reasons)
    return result


def _check_counts(dataset: str, result: EngineResult, batch: list[dict]) -> None:
    """Nothing lost, checked before anything is published: the engine read every row that
    ingestion landed for the batch (the ledger's count, made when the file was parsed), and
    each of them ended valid, quarantined or de-duplicated."""
    landed = sum(int(entry["rows"]) for entry in batch)
    if result.rows_in != landed:
        raise TransformError(
            f"{dataset}: the engine read {result.rows_in} rows from the batch's {len(batch)} "
            f"raw file(s), but ingestion landed {landed}; nothing was published"
        )
    counts = (result.rows_valid, result.rows_quarantined, result.rows_deduplicated)
    if not balanced(result.rows_in, *counts):
        raise TransformError(
            f"{dataset}: rows_in {result.rows_in} != valid {result.rows_valid} + quarantined "
            f"{result.rows_quarantined} + deduplicated {result.rows_deduplicated}; "
            "nothing was published"
        )


def _check_quality(lake, contract, partitions, report, options) -> None:
    """Great Expectations over the staged partitions; results and Data Docs under ``quality/``.

    On an S3 lake the ``quality/`` prefix is mirrored to a temporary folder first (so the Data
    Docs index lists earlier runs too) and everything it holds afterwards is uploaded.
    """

    with tempfile.TemporaryDirectory(prefix="peak-quality-") as tmp:
        prefix = layout.QUALITY_PREFIX
        if lake.is_local:
            root = lake.path(prefix)
        else:
            root = Path(tmp) / "quality"
            for key in lake.list(prefix):
                lake.download(key, root / key[len(prefix) :])
        result = quality.validate_partitions(
            contract,
            {dt: [path] for dt, path in partitions.items()},
            run_id=report.run_id,
            docs_dir=root / layout.QUALITY_DOCS,
            batch_rows=options.quality_batch_rows,
            sample_rows=options.quality_sample_rows,
            memory_limit=options.memory_limit,
        )
        lake.write_json(
            layout.quality_result_key(contract.dataset, report.run_id),
            {
                "dataset": result.dataset,
                "success": result.success,
                "rows_checked": result.rows_checked,
                "rows_sampled": result.rows_sampled,
                "batches": result.batches,
                "expectations": result.expectations,
                "failed": result.failed,
            },
        )
        if not lake.is_local:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    lake.put_file(path, prefix + path.relative_to(root).as_posix())
        report.stages.setdefault("quality", {})[contract.dataset] = result.summary()
        quality.check(result)


def prefetch_quality() -> None:
    """Import Great Expectations (~3 s) in the background while the engine works."""

    def load() -> None:
        importlib.import_module("glue.quality").preload()

    threading.Thread(target=load, daemon=True).start()


def transform(
    lake: Lake,
    *,
    engine: Engine,
    report: RunReport,
    options: TransformOptions,
    datasets: list[str] | None = None,
    progress: Progress | None = None,
    done: Callable[[str], None] | None = None,
) -> RunReport:
    """Every dataset (or those named), one transform at a time per lake.

    Datasets are independent: one that fails (a truncated raw file, a failed suite) publishes
    nothing and keeps its files for the next run, and the others still run. The failure is
    raised at the end: as it was when one dataset failed, else one error naming each.
    """
    if options.quality:
        prefetch_quality()
    failures: list[tuple[str, Exception]] = []
    names = datasets or list(contracts.load_all())
    with transform_lock(lake, report.run_id):
        for dataset in names:
            try:
                transform_dataset(
                    lake, dataset, engine=engine, report=report, options=options, progress=progress
                )
            except Exception as exc:
                failures.append((dataset, exc))
                report.stages.setdefault("transform_failed", {})[dataset] = one_line(exc)
            if done:
                done(dataset)
    if len(failures) == 1:
        raise failures[0][1]
    if failures:
        failed = "; ".join(f"{ds}: {one_line(exc)}" for ds, exc in failures)
        raise TransformError(
            f"{len(failures)} of {len(names)} datasets failed: {failed}"
        ) from failures[0][1]
    return report
