"""Reading the staged Parquet files in chunks of ``batch_rows`` rows for GX: Arrow-side casts
so GX's fast pandas paths apply, a reader thread that prepares the next chunk while GX checks the
current one, and a batch fingerprint taken from where a chunk came from instead of hashing every
row (docs/quality.md, "How it runs")."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class _Chunk:
    table: pa.Table
    sources: list[tuple[str, int, int]]  # (file, first row, rows)


def _sample(total: int, rows: int, seed: str) -> np.ndarray | None:
    """A uniform sample (without replacement) of ``rows`` of ``total`` row numbers, sorted;
    None when every row is to be read. The same seed gives the same sample."""
    if total <= rows:
        return None
    digest = hashlib.sha256(seed.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return np.sort(rng.choice(total, size=rows, replace=False).astype(np.int64))


def _iter_chunks(
    files: Sequence[Path], batch_rows: int, keep: np.ndarray | None = None
) -> Iterator[_Chunk]:
    """Chunks of at most ``batch_rows`` rows, in file order, never mixing two file schemas.

    ``keep``: the row numbers (counted across ``files`` in order, sorted) to read; default all.
    Every distinct schema yields at least one chunk (empty if its files have no rows, or none
    of them is kept), so the column checks see every file's columns.
    """
    pending: list[pa.RecordBatch] = []
    sources: list[tuple[str, int, int]] = []
    rows = 0
    schema: pa.Schema | None = None
    schema_yielded = False

    def flush() -> _Chunk:
        nonlocal pending, sources, rows, schema_yielded
        assert schema is not None
        chunk = _Chunk(pa.Table.from_batches(pending, schema=schema), sources)
        pending, sources, rows, schema_yielded = [], [], 0, True
        return chunk

    read_size = max(1, min(batch_rows, 128 * 1024))
    seen = 0  # rows of the files before this one
    for path in files:
        pf = pq.ParquetFile(path)
        file_schema = pf.schema_arrow.remove_metadata()
        if schema is None or not file_schema.equals(schema):
            if schema is not None and (pending or not schema_yielded):
                yield flush()
            schema, schema_yielded = file_schema, False
        first = 0
        if keep is not None and pf.metadata.num_rows:
            lo, hi = np.searchsorted(keep, [seen, seen + pf.metadata.num_rows])
            if lo == hi:  # no sampled row here: the schema is still seen (above)
                seen += pf.metadata.num_rows
                continue
        for rb in pf.iter_batches(batch_size=read_size, use_threads=True):
            rb = rb.replace_schema_metadata(None)
            start = seen + first
            first += rb.num_rows
            if keep is not None:
                lo, hi = np.searchsorted(keep, [start, start + rb.num_rows])
                rb = rb.take(pa.array(keep[lo:hi] - start))
            offset = 0
            while offset < rb.num_rows:
                take = min(rb.num_rows - offset, batch_rows - rows)
                pending.append(rb.slice(offset, take))
                sources.append((str(path), start + offset, take))
                rows += take
                offset += take
                if rows >= batch_rows:
                    yield flush()
        seen += pf.metadata.num_rows
    if schema is not None and (pending or not schema_yielded):
        yield flush()


def _prepare(table: pa.Table) -> pa.Table:
    """Arrow-side casts so GX's fast pandas paths apply (runs in the reader thread).

    Dates and timestamps become ``timestamp[ns]`` (GX compares only ``datetime64[ns]``
    vectorised); a value outside that range keeps microseconds (and GX's element-wise path)
    rather than wrapping around silently.
    """
    columns = []
    changed = False
    for fld, col in zip(table.schema, table.columns):
        t = fld.type
        if pa.types.is_date(t) or (pa.types.is_timestamp(t) and t.unit != "ns"):
            tz = getattr(t, "tz", None)
            try:
                col = col.cast(pa.timestamp("ns", tz=tz), safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                if pa.types.is_date(t):
                    col = col.cast(pa.timestamp("us"))
            changed = True
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names) if changed else table


def _to_pandas(table: pa.Table) -> Any:
    """A prepared chunk as pandas (strings stay Arrow-backed under ``future.infer_string``).

    Integer columns holding nulls become pandas' nullable ``Int64`` rather than float64, so
    the type check still sees integers.
    """
    import pandas as pd

    mapper = None
    if any(
        pa.types.is_integer(f.type) and c.null_count for f, c in zip(table.schema, table.columns)
    ):
        mapper = {t: pd.Int64Dtype() for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())}.get
    return table.to_pandas(types_mapper=mapper)


def _prefetch(chunks: Iterator[_Chunk], depth: int = 1) -> Iterator[_Chunk]:
    """Read and prepare the next chunk in a thread while GX validates the current one.

    At most ``depth`` chunks wait in the queue, so memory holds ``depth + 1`` chunks at most
    (plus the one being converted). Errors in the reader are raised here.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for chunk in chunks:
                chunk.table = _prepare(chunk.table)
                if not put(chunk):
                    return
        except BaseException as e:  # handed to the consumer
            put(e)
        finally:
            put(done)

    thread = threading.Thread(target=reader, name="peak-quality-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _fingerprint(sources: list[tuple[str, int, int]]) -> str:
    h = hashlib.md5(usedforsecurity=False)
    for path, first, n in sources:
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "?"
        h.update(f"{path}|{stamp}|{first}|{n}\n".encode())
    return h.hexdigest()


@contextlib.contextmanager
def _source_fingerprints() -> Iterator[None]:
    """Let GX fingerprint our chunks by their source instead of hashing every row."""
    if os.environ.get("GX_FAST_FINGERPRINT", "1").lower() in ("0", "false", "no"):
        yield
        return
    try:
        from great_expectations.execution_engine import pandas_execution_engine as pee
    except ImportError:  # pragma: no cover - GX layout changed: keep GX's behaviour
        yield
        return
    original = getattr(pee, "hash_pandas_dataframe", None)
    if original is None:  # pragma: no cover
        yield
        return

    def fingerprint(df: Any) -> str:
        ours = getattr(df, "attrs", {}).get("_peak_fingerprint")
        return ours if ours else original(df)

    pee.hash_pandas_dataframe = fingerprint
    try:
        yield
    finally:
        pee.hash_pandas_dataframe = original
