"""The transform's engines: one contract's statements run by DuckDB or by Spark.

:mod:`glue.engine.base` says what an engine is given and gives back; :func:`build_engine` makes
the one a run asks for.
"""

from __future__ import annotations

from typing import Any

from glue.engine.base import Engine
from peak.core.settings import Settings


def build_engine(name: str, settings: Settings, spark: Any = None) -> Engine:
    """The engine called ``name``, configured from the settings (``spark``: Glue's session)."""
    if name == "duckdb":
        from glue.engine.duckdb_engine import DuckDBEngine  # deferred: duckdb or pyspark, not both

        return DuckDBEngine(settings.duckdb.memory_limit, settings.duckdb.threads)
    if name == "spark":
        from glue.engine.spark_engine import SparkEngine  # deferred: duckdb or pyspark, not both

        return SparkEngine(
            spark,
            driver_memory=settings.spark.driver_memory,
            shuffle_partitions=settings.spark.shuffle_partitions,
        )
    raise ValueError(f"unknown engine {name!r} (known: duckdb, spark)")
