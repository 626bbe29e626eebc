"""The Great Expectations step of the transform: the second line of defence before publishing.

The transform validates rows with its own rules (``glue/rules.py``), stages the processed
partitions and then calls :func:`validate_partitions` on the staged Parquet files. A failing
suite fails the stage (:func:`check` raises :class:`QualityError`) and nothing is published.

What is checked, how it runs in bounded memory and in seconds, where results and Data Docs go,
and the measurements behind the choices: docs/quality.md. The modules, each with one job:

- :mod:`~glue.quality.context`: importing GX (lazily, analytics off) and its in-memory context;
- :mod:`~glue.quality.suite`: the suite generated from a dataset's contract;
- :mod:`~glue.quality.chunks`: reading the staged files in chunks, prepared for GX;
- :mod:`~glue.quality.dataset_checks`: the set-level expectations, run by DuckDB;
- :mod:`~glue.quality.merge`: GX's per-chunk results summed into one per expectation;
- :mod:`~glue.quality.result`: :class:`QualityResult` and :func:`check`;
- :mod:`~glue.quality.data_docs`: the kept results and the offline Data Docs site;
- :mod:`~glue.quality.validate`: :func:`validate_partitions`, which runs them together.

Use::

    result = validate_partitions(
        contracts.get("attendance"),
        {"2026-11-24": [staging / "attendance/dt=2026-11-24/data.parquet"]},
        run_id=run_id,
        docs_dir=lake / "_quality" / "docs",
    )
    log(result.summary())
    check(result)  # raises QualityError: nothing may be published

Importing this package is cheap: GX is imported on first use, or ahead of it by :func:`preload`.
"""

from __future__ import annotations

from glue.quality.context import DOCS_SITE, preload
from glue.quality.data_docs import BATCH_ID, DOCS_HISTORY_RUNS, RESULTS_FOLDER
from glue.quality.result import QualityError, QualityResult, check
from glue.quality.suite import (
    build_suite,
    suite_name,
)
from glue.quality.validate import DEFAULT_BATCH_ROWS, validate_partitions

__all__ = [
    "BATCH_ID",
    "DEFAULT_BATCH_ROWS",
    "DOCS_HISTORY_RUNS",
    "DOCS_SITE",
    "RESULTS_FOLDER",
    "QualityError",
    "QualityResult",
    "build_suite",
    "check",
    "preload",
    "suite_name",
    "validate_partitions",
]
