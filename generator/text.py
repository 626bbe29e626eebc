"""How the exports are written: CSV fields and lines (RFC 4180, quoted only where needed),
ISO-8601 timestamps, and a whole CSV file with its extra (dirty) rows in their places."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.behaviour import _TS_FORMATS

_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def _q(value: str | None) -> str:
    """One CSV field, RFC 4180 quoted only where needed."""
    if value is None:
        return ""
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_line(values: Sequence[str | None]) -> str:
    return ",".join(_q(v) for v in values)


def _csv_safe(arr: pa.Array) -> pa.Array:
    """A string column as CSV fields (nulls empty, quoted where needed), vectorised."""
    arr = pc.fill_null(arr.cast(pa.string()), "")
    mask = pc.match_substring_regex(arr, r'[",\r\n]')
    if not pc.any(mask).as_py():
        return arr
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(mask, quoted, arr)


def _join_lines(lines: pa.Array) -> bytes:
    if len(lines) == 0:
        return b""
    offsets = pa.array([0, len(lines)], pa.int32())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, lines), "\n")
    return joined[0].as_buffer().to_pybytes() + b"\n"


def _day_epoch(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * 86400


_HMS = pa.array(
    [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], pa.string()
)


def _render_timestamps(epoch: np.ndarray, fmt: np.ndarray) -> pa.Array:
    """Epoch seconds (UTC) -> ISO-8601 text in the renderings of ``_TS_FORMATS``."""
    hours = np.array([f[2] for f in _TS_FORMATS], dtype=np.int64)
    local = epoch.astype(np.int64) + hours[fmt] * 3600
    days = local // 86400
    secs = local - days * 86400
    uniq, inverse = np.unique(days, return_inverse=True)
    names = pa.array(
        [(dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in uniq], pa.string()
    )
    suffix = pa.array([f[0] for f in _TS_FORMATS], pa.string()).take(pa.array(fmt, pa.int64()))
    return pc.binary_join_element_wise(
        names.take(pa.array(inverse.ravel())), "T", _HMS.take(pa.array(secs)), suffix, ""
    )


def _zulu(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


@dataclass
class _Extra:
    """A row added to a file: placed before (0) or after (2) clean row ``anchor``."""

    anchor: int
    side: int
    line: str
    kind: str


def _assemble(
    header: list[str],
    cols: dict[str, pa.Array],
    extras: list[_Extra],
    trusted: bool = False,
) -> bytes:
    """The CSV bytes of a file: the clean rows with the extra lines in their places.

    ``trusted``: the columns are made here of ids and timestamps and never need quoting.
    """
    fields = [cols[c] if trusted else _csv_safe(cols[c]) for c in header]
    lines = pc.binary_join_element_wise(*fields, ",")
    n = len(lines)
    keys = np.arange(n, dtype=np.int64) * 3 + 1
    if extras:
        lines = pa.concat_arrays([lines, pa.array([e.line for e in extras], pa.string())])
        keys = np.concatenate([keys, [e.anchor * 3 + e.side for e in extras]])
    order = np.argsort(keys, kind="stable")
    return (",".join(_q(h) for h in header) + "\n").encode() + _join_lines(lines.take(order))
