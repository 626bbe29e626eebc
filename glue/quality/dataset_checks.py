"""The set-level expectations (a unique primary key, every row in its partition's day, null
fractions, partition bounds): their SQL runs once in DuckDB over every staged file,
out of core and memory-capped, since a check per chunk would miss a duplicate split across two
chunks."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

import contracts
from glue.quality.merge import _redact
from glue.quality.suite import PARTITION_MAX_DAYS_AHEAD, _quote
from peak.core.sql import literal


def _one(con: Any, sql: str) -> tuple[Any, ...]:
    """The one row an aggregate query returns."""
    row = con.execute(sql).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {sql}")
    return tuple(row)


def _union_columns(files: Sequence[Path]) -> list[str]:
    """Every column name found in the files' footers, first-seen order."""
    out: dict[str, None] = {}
    for path in files:
        out.update(dict.fromkeys(pq.read_schema(path).names))
    return list(out)


def _ok(observed: int, details: dict) -> dict:
    return {
        "success": observed == 0,
        "result": {"observed_value": observed, "details": details},
        "exception_info": {
            "raised_exception": False,
            "exception_message": None,
            "exception_traceback": None,
        },
    }


def _error(message: str) -> dict:
    return {
        "success": False,
        "result": {},
        "exception_info": {
            "raised_exception": True,
            "exception_message": _redact(message)[:1000],
            "exception_traceback": None,
        },
    }


def _run_dataset_checks(
    expectations: list[Any],
    files: list[tuple[dt.date, Path]],
    columns: list[str],
    memory_limit: str = "1GB",
    latest: dt.date | None = None,
) -> tuple[list[dict], int, float]:
    """Run each expectation's ``unexpected_rows_query`` over all staged files in DuckDB.

    ``{batch}`` is a view of every file's rows with its partition's ``dt``; ``{latest}`` the latest
    ``dt`` the batch may hold (today, UTC, plus ``PARTITION_MAX_DAYS_AHEAD``, unless given).
    Returns the results, the number of rows DuckDB saw (the caller compares it with GX's) and
    the time.
    """
    import duckdb

    started = time.perf_counter()
    spill = Path(tempfile.mkdtemp(prefix="peak-quality-duckdb-"))
    out: list[dict] = []
    con = None
    try:
        con = duckdb.connect()
        con.execute(f"SET memory_limit={literal(memory_limit)}")
        con.execute("SET preserve_insertion_order=false")
        con.execute(f"SET temp_directory={literal(spill)}")
        con.execute("CREATE TEMP TABLE _peak_files(_peak_file VARCHAR, dt DATE)")
        con.executemany("INSERT INTO _peak_files VALUES (?, ?)", [(str(p), d) for d, p in files])
        file_list = ", ".join(literal(p) for _, p in files)
        part = contracts.PARTITION_COLUMN
        select = ", ".join(
            [f"f.dt AS {_quote(part)}"]
            + [f"p.{_quote(c)}" for c in columns if c not in (part, "_peak_file")]
        )
        con.execute(
            f"CREATE TEMP VIEW _peak_batch AS SELECT {select} FROM read_parquet([{file_list}], "
            "filename='_peak_file', union_by_name=true, hive_partitioning=false) p "
            "JOIN _peak_files f ON p._peak_file = f._peak_file"
        )
        (rows,) = _one(con, "SELECT count(*) FROM _peak_batch")
    except duckdb.Error as e:
        message = f"the staged files could not be read: {type(e).__name__}: {e}"
        if con is not None:
            con.close()
        shutil.rmtree(spill, ignore_errors=True)
        return [_error(message) for _ in expectations], -1, time.perf_counter() - started
    if latest is None:
        today = dt.datetime.now(dt.timezone.utc).date()
        latest = today + dt.timedelta(days=PARTITION_MAX_DAYS_AHEAD)
    try:
        for exp in expectations:
            query = exp.unexpected_rows_query.replace("{batch}", "_peak_batch")
            query = query.replace("{latest}", latest.isoformat())
            query_started = time.perf_counter()
            try:
                if (exp.meta or {}).get("check") == "unique":
                    keys, key_rows = _one(
                        con, f"SELECT count(*), coalesce(sum(n), 0) FROM ({query}) q"
                    )
                    details: dict[str, Any] = {"duplicate_rows": int(key_rows) - int(keys)}
                elif (exp.meta or {}).get("check") == "null_fraction":
                    over = con.execute(query).fetchall()
                    keys = len(over)
                    details = {f"null_fraction.{name}": round(f, 6) for name, f in over}
                elif (exp.meta or {}).get("check") == "partition_bounds":
                    out_of_window = con.execute(query).fetchall()
                    keys = len(out_of_window)
                    details = {"latest": latest.isoformat()}
                    if out_of_window:
                        details.update(dt_min=out_of_window[0][0], dt_max=out_of_window[0][1])
                else:
                    (keys,) = _one(con, f"SELECT count(*) FROM ({query}) q")
                    details = {}
            except duckdb.Error as e:
                out.append(_error(f"{type(e).__name__}: {e}"))
                continue
            details.update(rows=int(rows), seconds=round(time.perf_counter() - query_started, 3))
            out.append(_ok(int(keys), details))
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return out, int(rows), time.perf_counter() - started
