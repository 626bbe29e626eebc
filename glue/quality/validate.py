"""Validating staged processed partitions: :func:`validate_partitions` runs a dataset's suite
over its staged Parquet files (GX per chunk, DuckDB for the set-level SQL, at the same time),
merges the results into one suite result, keeps it and renders Data Docs.

The design, its trade-offs and their measurements are in docs/quality.md.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from contracts import Contract
from glue.quality.chunks import (
    _fingerprint,
    _iter_chunks,
    _prefetch,
    _sample,
    _source_fingerprints,
    _to_pandas,
)
from glue.quality.context import _gx, _new_context
from glue.quality.data_docs import _build_docs, _write_result
from glue.quality.dataset_checks import _error, _run_dataset_checks, _union_columns
from glue.quality.merge import _failure, _Merged
from glue.quality.result import QualityResult
from glue.quality.suite import (
    _exp_key,
    _row_expectations,
    build_suite,
)

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

DEFAULT_BATCH_ROWS = 1_000_000
#: Row-level expectations run on a uniform sample of this many rows (docs/quality.md,
#: "What a sample catches"); set-level ones on every row.
DEFAULT_SAMPLE_ROWS = 100_000
_ROW_RESULT_FORMAT = {
    "result_format": "BASIC",
    "exclude_unexpected_values": True,
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
}
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")
#: A validation makes its GX context the process's current project: one at a time per process.
_GX_LOCK = threading.Lock()


def _partition_list(partition_files: dict[str, list[Path]]) -> list[tuple[dt.date, Path]]:
    out: list[tuple[dt.date, Path]] = []
    for key in sorted(partition_files):
        try:
            day = dt.date.fromisoformat(str(key))
        except ValueError as e:
            raise ValueError(f"partition key {key!r} is not a YYYY-MM-DD date") from e
        for p in sorted(Path(f) for f in partition_files[key]):
            out.append((day, p))
    if not out:
        raise ValueError("partition_files names no Parquet file to validate")
    return out


def validate_partitions(
    contract: Contract,
    partition_files: dict[str, list[Path]],
    *,
    run_id: str,
    docs_dir: Path,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    memory_limit: str = "1GB",
) -> QualityResult:
    """Validate staged processed partitions with the dataset's suite; keep results and docs.

    ``partition_files`` maps each ``dt`` (YYYY-MM-DD) to the Parquet files of that partition.
    Row-level expectations see a uniform sample of ``sample_rows`` rows (all of them when there
    are fewer); the set-level ones, run by DuckDB within ``memory_limit``, see every row.
    Returns a :class:`QualityResult`; pass it to :func:`check` to fail on a failed suite.
    """
    if batch_rows < 1 or sample_rows < 1:
        raise ValueError("batch_rows and sample_rows must be at least 1")
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run_id {run_id!r} must be a plain name (letters, digits, ._:+-)")
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.timezone.utc)
    files = _partition_list(partition_files)
    columns = _union_columns([p for _, p in files])
    total = sum(pq.read_metadata(p).num_rows for _, p in files)
    keep = _sample(total, sample_rows, f"{run_id}/{contract.dataset}")
    timings: dict[str, float] = {}
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    gx_ = _gx()
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    with _GX_LOCK:
        context = _new_context(docs_dir)
        suite = build_suite(contract)
        row_suite = context.suites.add(
            gx_.ExpectationSuite(name=suite.name, expectations=_row_expectations(contract))
        )
        batch_definition = (
            context.data_sources.add_pandas(f"{contract.dataset}_staged")
            .add_dataframe_asset(f"{contract.dataset}_chunks")
            .add_batch_definition_whole_dataframe("chunk")
        )
        validation = context.validation_definitions.add(
            gx_.ValidationDefinition(
                name=f"{contract.dataset}_staged_chunks", data=batch_definition, suite=row_suite
            )
        )
        merged = {
            _exp_key(e.configuration): _Merged(e.configuration) for e in row_suite.expectations
        }
        rows = batches = 0
        chunk_run = RunIdentifier(run_name=f"{run_id}-chunks", run_time=started_at)
        timings["setup"] = time.perf_counter() - started
        # The set-level SQL runs in DuckDB (its own threads, no GIL) while GX works.
        expectations = list(suite.expectations)
        dataset_exps = [e for e in expectations if _is_dataset_level(e)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="peak-quality-duckdb") as pool:
            duck = pool.submit(_run_dataset_checks, dataset_exps, files, columns, memory_limit)
            ge_started = time.perf_counter()
            with (
                _source_fingerprints(),
                pd.option_context("future.infer_string", True),
                warnings.catch_warnings(),
            ):
                # GX's regex check uses str.contains; patterns with groups make pandas warn.
                warnings.filterwarnings("ignore", "This pattern is interpreted as a regular")
                for chunk in _prefetch(_iter_chunks([p for _, p in files], batch_rows, keep)):
                    df = _to_pandas(chunk.table)
                    df.attrs["_peak_fingerprint"] = _fingerprint(chunk.sources)
                    rows += chunk.table.num_rows
                    batches += 1
                    del chunk
                    res = validation.run(
                        batch_parameters={"dataframe": df},
                        result_format=_ROW_RESULT_FORMAT,
                        run_id=chunk_run,
                    )
                    del df
                    for r in res.results:
                        key = _exp_key(r.expectation_config)
                        if key in merged:
                            merged[key].add(r)
            timings["great_expectations"] = time.perf_counter() - ge_started
            dataset_results, duck_rows, timings["duckdb"] = duck.result()
        if duck_rows not in (total, -1):  # DuckDB must have read the rows the files hold
            message = f"DuckDB read {duck_rows:,} staged rows where the files hold {total:,}"
            dataset_results = [_error(message) for _ in dataset_results]
        # The per-chunk results are merged below; drop them from the in-memory store.
        store = context.validation_results_store
        for k in list(store.list_keys()):
            store.remove_key(k)
        sql_results = iter(dataset_results)
        results: list[tuple[Any, dict]] = []
        for exp in expectations:
            config = exp.configuration
            if _is_dataset_level(exp):
                results.append((config, next(sql_results)))
            else:
                results.append((config, merged[_exp_key(config)].to_result()))

        combined = _combined_result(
            gx_, contract, suite, results, run_id, started_at, files, (total, rows), batches
        )
        results_path = _write_result(combined, docs_dir, run_id, contract.dataset)
        docs_started = time.perf_counter()
        docs_index = _build_docs(context, suite, docs_dir, run_id)
        timings["docs"] = time.perf_counter() - docs_started
    failed = [_failure(config, res) for config, res in results if not res["success"]]
    return QualityResult(
        dataset=contract.dataset,
        success=not failed,
        rows_checked=total,
        rows_sampled=rows,
        batches=batches,
        expectations=len(expectations),
        failed=failed,
        docs_index=docs_index,
        results_path=results_path,
        seconds=round(time.perf_counter() - started, 3),
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def _is_dataset_level(exp: Any) -> bool:
    return (exp.meta or {}).get("evaluated_by") == "duckdb"


def _combined_result(
    gx_: Any,
    contract: Contract,
    suite: Any,
    results: list[tuple[Any, dict]],
    run_id: str,
    started_at: dt.datetime,
    files: list[tuple[dt.date, Path]],
    rows: tuple[int, int],
    batches: int,
) -> ExpectationSuiteValidationResult:
    """``rows``: the staged rows (the set-level checks') and the sampled ones (the row-level)."""
    from great_expectations.core import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier

    evrs = []
    for config, res in results:
        config = copy.deepcopy(config)
        config.kwargs.pop("batch_id", None)
        evrs.append(
            ExpectationValidationResult(
                success=res["success"],
                expectation_config=config,
                result=res.get("result") or {},
                meta=res.get("meta") or {},
                exception_info=res.get("exception_info"),
            )
        )
    ok = sum(1 for r in evrs if r.success)
    partitions = sorted({d.isoformat() for d, _ in files})
    return ExpectationSuiteValidationResult(
        success=ok == len(evrs),
        results=evrs,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": len(evrs),
            "successful_expectations": ok,
            "unsuccessful_expectations": len(evrs) - ok,
            "success_percent": ok / len(evrs) * 100 if evrs else None,
        },
        meta={
            "great_expectations_version": gx_.__version__,
            "run_id": RunIdentifier(run_name=run_id, run_time=started_at),
            "validation_time": started_at,
            "active_batch_definition": {
                "datasource_name": f"{contract.dataset}_staged",
                "data_connector_name": "fluent",
                "data_asset_name": contract.dataset,
                "batch_identifiers": {"partitions": f"{partitions[0]}..{partitions[-1]}"},
            },
            "batch_spec": {
                "data_asset_name": f"{contract.dataset} staged {partitions[0]}..{partitions[-1]}",
                "files": len(files),
                "partitions": len(partitions),
            },
            "batch_markers": {},
            "dataset": contract.dataset,
            "partitions": partitions,
            "rows_checked": rows[0],
            "rows_sampled": rows[1],
            "batches": batches,
            "evaluated_by": (
                "great_expectations (pandas, per chunk of a uniform sample) and duckdb "
                "(set-level SQL, every row)"
            ),
        },
    )
