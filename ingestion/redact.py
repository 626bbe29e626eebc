"""Rewriting an export, or its raw Parquet, without some of its rows (erased members').

The raw zone keeps each export byte for byte; an erasure (``peak forget``) and the landing of an
export that still holds an erased member are the two exceptions: the file is rewritten without
the member's rows, every other byte kept (a CSV record's or a JSON Lines line's bytes, a JSON
array element's text, the header, the line endings, a byte-order mark). The file keeps its key,
the SHA-256 of the bytes as delivered, so a re-delivery of the same bytes is still recognised.

:func:`redact_export` works on the export's text (CSV, a JSON array, JSON Lines);
:func:`redact_parquet` on a Parquet file (raw Parquet, a processed partition, quarantined rows).
Which rows go is the caller's: a predicate over a record (the export's fields, by header name
lower-cased and trimmed as ingestion reads them), or a mask over a table.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion.parse import file_format

Record = Mapping[str, str]
Drop = Callable[[Record], bool]


class NotRedactable(ValueError):
    """The file cannot be split into records (not UTF-8, not JSON, a truncated array...)."""


def redact_export(data: bytes, name: str, drop: Drop) -> tuple[bytes, int]:
    """``data`` (an export named ``name``) without the records ``drop`` picks, and how many."""
    fmt = file_format(name)
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""
    try:
        text = data[len(bom) :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotRedactable(f"{name}: not UTF-8") from exc
    if fmt == "csv":
        out, dropped = _csv(text, drop)
    elif fmt == "jsonl":
        out, dropped = _json_lines(text, drop)
    else:
        out, dropped = _json_array(text, drop, name)
    if not dropped:
        return data, 0
    return bom + out.encode("utf-8"), dropped


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _record(obj: Any) -> dict[str, str]:
    if not isinstance(obj, dict):
        return {"": _text(obj)}
    return {str(k).strip().lower(): _text(v) for k, v in obj.items()}


# -- CSV --------------------------------------------------------------------------------------


def _csv(text: str, drop: Drop) -> tuple[str, int]:
    """Records with their exact text: the reader pulls physical lines through ``_Lines``, so
    each record's lines (a quoted field may span several) are known."""
    lines = _Lines(io.StringIO(text, newline=""))
    reader = csv.reader(lines)
    out: list[str] = []
    header: list[str] | None = None
    dropped = 0
    for fields in reader:
        raw = lines.take()
        if header is None:
            if fields:
                header = [f.strip().lower() for f in fields]
            out.append(raw)
            continue
        if fields and drop(dict(zip(header, fields, strict=False))):
            dropped += 1
            continue
        out.append(raw)
    out.append(lines.take())  # anything the reader did not consume (nothing, normally)
    return "".join(out), dropped


class _Lines:
    """An iterator of lines that remembers the ones handed out since the last :meth:`take`."""

    def __init__(self, source: io.StringIO) -> None:
        self.source = source
        self.pending: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.source.readline()
        if not line:
            raise StopIteration
        self.pending.append(line)
        return line

    def take(self) -> str:
        text, self.pending = "".join(self.pending), []
        return text


# -- JSON -------------------------------------------------------------------------------------


def _json_lines(text: str, drop: Drop) -> tuple[str, int]:
    out, dropped = [], 0
    for line in io.StringIO(text, newline="").readlines():
        if line.strip():
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None  # a malformed line: kept, unless it names the member as text
            record = _record(obj) if obj is not None else {"": line}
            if drop(record):
                dropped += 1
                continue
        out.append(line)
    return "".join(out), dropped


def _json_array(text: str, drop: Drop, name: str) -> tuple[str, int]:
    """Each element's own text, cut at the commas between elements."""
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    if not text[start:].startswith("["):
        raise NotRedactable(f"{name}: not a JSON array")
    pos = start + 1
    elements: list[str] = []  # each element's text with the whitespace before it
    dropped = 0
    while True:
        gap = len(text[pos:]) - len(text[pos:].lstrip())
        if text[pos + gap : pos + gap + 1] == "]" and not elements and dropped == 0:
            return text, 0  # an empty array
        try:
            obj, end = decoder.raw_decode(text, pos + gap)
        except ValueError as exc:
            raise NotRedactable(f"{name}: not a complete JSON array") from exc
        if drop(_record(obj)):
            dropped += 1
        else:
            elements.append(text[pos:end])
        rest = text[end:]
        after = len(rest) - len(rest.lstrip())
        sep = text[end + after : end + after + 1]
        if sep == "]":
            tail = text[end:]
            break
        if sep != ",":
            raise NotRedactable(f"{name}: not a complete JSON array")
        pos = end + after + 1
    if not dropped:
        return text, 0
    return text[: start + 1] + ",".join(elements) + tail, dropped


# -- Parquet ----------------------------------------------------------------------------------


def redact_parquet(src: Path, dest: Path, drop: Callable[[pa.Table], pa.Array]) -> tuple[int, int]:
    """Write ``src`` to ``dest`` without the rows of ``drop``'s mask; (rows kept, dropped).
    Nothing is written when no row is dropped. The schema (and its metadata) is kept."""
    source = pq.ParquetFile(src)
    table = source.read()
    mask = drop(table)
    dropped = int(pc.sum(mask).as_py() or 0) if len(table) else 0
    if not dropped:
        return table.num_rows, 0
    kept = table.filter(pc.invert(mask))
    meta = source.metadata
    compression = (
        meta.row_group(0).column(0).compression.lower() if meta.num_row_groups else "snappy"
    )
    pq.write_table(kept, dest, compression=compression)
    return kept.num_rows, dropped
