"""Reading an export as its format: CSV or JSON (an array of objects, or JSON Lines) -> raw Parquet.

The raw Parquet holds the contract's columns as text, exactly as exported (no trimming, no
typing: that is the transform's job), plus lineage. Columns the contract does not know are
dropped here (and named in the run report). A file that cannot be read as its format at all
raises :class:`FileRejected` with a reason code; a single row that cannot be split into the
header's columns (or a JSON Lines line that is not JSON) is kept with ``_parse_error`` set, so
the transform quarantines it and nothing is lost. Memory stays bounded: files are read in
blocks and written batch by batch.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import contracts
from contracts import Contract
from peak.core.errors import IngestError

BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 16 << 20
FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class FileRejected(IngestError):
    """The file cannot be read as its format; ``code`` is a stable reason code."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Lineage:
    source_file: str
    ingested_at: dt.datetime
    export_date: dt.date
    raw_id: str


@dataclass
class ParseResult:
    rows: int = 0
    malformed_rows: int = 0
    extra_columns: list[str] = field(default_factory=list)


def file_format(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise FileRejected("file.format", f"unsupported file type {suffix or '(none)'!r}")
    return FORMATS[suffix]


def raw_schema(contract: Contract) -> pa.Schema:
    lineage_types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
    }
    fields = [pa.field(name, pa.string()) for name in contract.column_names]
    for name, (type_name, _desc) in contracts.LINEAGE_COLUMNS.items():
        fields.append(pa.field(name, lineage_types[type_name]))
    return pa.schema(fields)


def to_raw_parquet(contract: Contract, src: Path, dest: Path, lineage: Lineage) -> ParseResult:
    """Convert one export to raw Parquet at ``dest``; raise :class:`FileRejected` if unreadable."""
    fmt = file_format(lineage.source_file)
    writer = _BatchWriter(contract, dest, lineage)
    try:
        if fmt == "csv":
            _csv(contract, src, writer)
        else:
            _json(contract, src, writer, lines=(fmt == "jsonl"))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


class _BatchWriter:
    def __init__(self, contract: Contract, dest: Path, lineage: Lineage):
        self.contract = contract
        self.schema = raw_schema(contract)
        self.dest = dest
        self.lineage = lineage
        self.result = ParseResult()
        self._writer: pq.ParquetWriter | None = None
        self._next_row = 1
        # Encoding a batch (in C++, without the GIL) overlaps with parsing the next one.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="peak-parquet")
        self._pending: Future[None] | None = None

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def columns(self, header: list[str]) -> list[str]:
        """Check a header against the contract; return it, remembering extra columns."""
        seen = set()
        known = set(self.contract.column_names)
        for name in header:
            # A repeated contract column is ambiguous; a repeated extra one (the unnamed
            # columns of a header ending in ",,", say) is dropped like any extra column.
            if name in seen and name in known:
                raise FileRejected("file.duplicate_column", f"column {name!r} appears twice")
            seen.add(name)
        missing = [c for c in self.contract.required_columns if c not in seen]
        if missing:
            raise FileRejected(
                "file.missing_column", f"required column(s) missing: {', '.join(missing)}"
            )
        self.result.extra_columns = sorted(seen - set(self.contract.column_names))
        return header

    def write(self, data: dict[str, Any], n: int, parse_errors: list[str | None] | None = None):
        """Write ``n`` rows: ``data`` maps contract columns to Arrow arrays or Python lists."""
        if n == 0:
            return
        arrays = []
        for name in self.contract.column_names:
            values = data.get(name)
            if values is None:
                arrays.append(pa.nulls(n, pa.string()))
            else:
                arrays.append(
                    values if isinstance(values, pa.Array) else pa.array(values, pa.string())
                )
        start = self._next_row
        lineage = self.lineage
        arrays.append(pa.repeat(pa.scalar(lineage.source_file, pa.string()), n))
        arrays.append(pa.array(np.arange(start, start + n, dtype=np.int64)))
        arrays.append(pa.repeat(pa.scalar(lineage.ingested_at, pa.timestamp("us")), n))
        arrays.append(pa.repeat(pa.scalar(lineage.export_date, pa.date32()), n))
        arrays.append(pa.repeat(pa.scalar(lineage.raw_id, pa.string()), n))
        if parse_errors is None:
            arrays.append(pa.nulls(n, pa.string()))
        else:
            arrays.append(pa.array(parse_errors, pa.string()))
            self.result.malformed_rows += sum(e is not None for e in parse_errors)
        arrays = [
            a.cast(f.type) if a.type != f.type else a
            for a, f in zip(arrays, self.schema, strict=True)
        ]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if self._writer is None:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.dest,
                self.schema,
                compression="snappy",
                # ids are mostly unique: dictionary pages only pay off for the lineage columns
                use_dictionary=[name for name in contracts.LINEAGE_COLUMNS],
            )
        self._wait()
        self._pending = self._pool.submit(self._writer.write_batch, batch)
        self._next_row += n
        self.result.rows += n

    def close(self) -> ParseResult:
        if self._writer is None:  # empty or header-only: an empty Parquet file, not an error
            pq.write_table(self.schema.empty_table(), self.dest, compression="snappy")
        else:
            self._wait()
            self._writer.close()
        self._pool.shutdown()
        return self.result

    def reset(self) -> None:
        """Discard what was written and start again."""
        self.abort()
        self._writer = None
        self._next_row = 1
        self.result = ParseResult()

    def abort(self) -> None:
        with suppress(Exception):  # the file is discarded anyway
            self._wait()
        if self._writer is not None:
            self._writer.close()
        self.dest.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


class _Ragged(IngestError):
    pass


def _read_header(src: Path) -> tuple[list[str], int] | None:
    """The header's names, and how many lines (blank ones before it included) it takes up."""
    with open(src, "rb") as fh:
        head = fh.read(1 << 20)
    if not head.strip():
        return None
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0)
        line = head.count(b"\n", 0, offset) + 1
        raise FileRejected("file.encoding", f"not UTF-8 (byte {offset}, line {line})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    first = next((record for record in reader if record), None)  # blank lines come as []
    if not first:
        return None
    return [name.strip().lower() for name in first], reader.line_num


def _csv(contract: Contract, src: Path, writer: _BatchWriter) -> None:
    found = _read_header(src)
    if found is None:
        return
    header, header_lines = found
    writer.columns(header)
    try:
        _csv_fast(contract, src, header, header_lines, writer)
    except _Ragged:
        # A row with the wrong number of fields: redo the file with the exact (slower) reader,
        # which knows every record's number, so the row is kept, numbered and quarantined.
        writer.reset()
        writer.columns(header)
        _csv_exact(contract, src, header, writer)


def _csv_fast(
    contract: Contract, src: Path, header: list[str], header_lines: int, writer: _BatchWriter
) -> None:
    ragged: list[bool] = []

    def on_invalid(_row: Any) -> str:
        ragged.append(True)
        return "error"

    wanted = [c for c in header if c in contract.column_names]
    try:
        reader = pacsv.open_csv(
            src,
            read_options=pacsv.ReadOptions(
                block_size=CSV_BLOCK_BYTES,
                column_names=header,
                # Arrow skips physical lines (blank ones too, quotes ignored), as line_num counts
                skip_rows=header_lines,
                use_threads=True,
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            writer.write({name: batch.column(name) for name in wanted}, batch.num_rows)
    except pa.ArrowInvalid as exc:
        if ragged:
            raise _Ragged from exc
        if "utf8" in str(exc).lower():
            raise FileRejected("file.encoding", f"not UTF-8: {exc}") from exc
        raise FileRejected("file.unreadable", f"not readable as CSV: {exc}") from exc


def _csv_exact(contract: Contract, src: Path, header: list[str], writer: _BatchWriter) -> None:
    # Python's reader stops at fields over 131,072 characters where Arrow's takes any that fits
    # in a block: the same file must read the same either way. The limit is process-wide and
    # only ever raised here (ingest parses files on several threads at once).
    csv.field_size_limit(max(csv.field_size_limit(), CSV_BLOCK_BYTES))
    width = len(header)
    index = {name: i for i, name in enumerate(header) if name in contract.column_names}
    with open(src, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            next(record for record in reader if record)  # the header, after any blank lines
            buf: dict[str, list[str | None]] = {name: [] for name in index}
            errors: list[str | None] = []
            for record in reader:
                if not record:
                    continue  # a blank line: skipped, as the fast reader does
                if len(record) == width:
                    for name, i in index.items():
                        buf[name].append(record[i])
                    errors.append(None)
                else:
                    for name in index:
                        buf[name].append(None)
                    text = ",".join(record)[:500]
                    errors.append(f"expected {width} fields, got {len(record)}: {text}")
                if len(errors) >= BATCH_ROWS:
                    writer.write(buf, len(errors), errors)
                    buf = {name: [] for name in index}
                    errors = []
            writer.write(buf, len(errors), errors)
        except UnicodeDecodeError as exc:
            raise FileRejected("file.encoding", f"not UTF-8: {exc.reason}") from exc
        except csv.Error as exc:
            raise FileRejected("file.unreadable", f"not readable as CSV: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class _BadLine:
    """A JSON Lines line that is not JSON: a malformed row, like a ragged CSV row."""

    reason: str


def _iter_json_lines(fh: io.TextIOBase) -> Iterator[Any]:
    for number, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            yield _BadLine(f"invalid JSON on line {number}: {exc.msg}: {line.strip()[:500]}")


def _iter_json_array(fh: io.TextIOBase) -> Iterator[Any]:
    """Stream the elements of a top-level JSON array without loading the whole file."""
    decoder = json.JSONDecoder()
    buf = ""
    pos = 0
    eof = False

    def fill() -> bool:
        nonlocal buf, pos, eof
        chunk = fh.read(1 << 20)
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_ws() -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or not fill():
                return

    def truncated() -> FileRejected:
        return FileRejected("file.unreadable", "invalid JSON: the file ends inside the array")

    fill()
    skip_ws()
    if pos >= len(buf):
        return  # empty file
    if buf[pos] != "[":
        raise FileRejected("file.unreadable", "invalid JSON: expected an array or JSON Lines")
    pos += 1
    skip_ws()
    if pos < len(buf) and buf[pos] == "]":
        pos += 1
    else:
        while True:
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    break
                except json.JSONDecodeError as exc:
                    if eof or not fill():
                        raise (
                            truncated()
                            if exc.pos >= len(buf) - 1
                            else FileRejected(
                                "file.unreadable", f"invalid JSON: {exc.msg} at char {exc.pos}"
                            )
                        ) from exc
            if end >= len(buf) and not eof and fill():  # a number may continue in the next chunk
                continue
            pos = end
            yield value
            skip_ws()
            if pos >= len(buf):
                raise truncated()
            if buf[pos] == ",":
                pos += 1
                skip_ws()
                continue
            if buf[pos] == "]":
                pos += 1
                break
            raise FileRejected("file.unreadable", f"invalid JSON: unexpected {buf[pos]!r}")
    skip_ws()
    if pos < len(buf):
        raise FileRejected("file.unreadable", "invalid JSON: data after the closing bracket")


def _json(contract: Contract, src: Path, writer: _BatchWriter, *, lines: bool) -> None:
    names = contract.column_names
    try:
        with open(src, encoding="utf-8-sig") as fh:
            if not lines:
                first = fh.read(4096).lstrip()
                fh.seek(0)
                if first[:1] == "[":
                    items = _iter_json_array(fh)
                elif first[:1] == "{":
                    items = _iter_json_lines(fh)  # JSON Lines saved as .json
                elif not first:
                    return
                else:
                    raise FileRejected("file.unreadable", "invalid JSON: expected an array")
            else:
                items = _iter_json_lines(fh)
            buf: dict[str, list[str | None]] = {name: [] for name in names}
            errors: list[str | None] = []
            keys_seen: set[str] = set()
            rows = 0
            first_bad: str | None = None
            bad_lines = 0
            for item in items:
                rows += 1
                if isinstance(item, _BadLine):
                    for name in names:
                        buf[name].append(None)
                    errors.append(item.reason)
                    first_bad = first_bad or item.reason
                    bad_lines += 1
                elif isinstance(item, dict):
                    keys = {str(k).strip().lower(): v for k, v in item.items()}
                    keys_seen.update(keys)
                    for name in names:
                        buf[name].append(_text(keys.get(name)))
                    errors.append(None)
                else:
                    for name in names:
                        buf[name].append(None)
                    text = "null" if item is None else str(_text(item))
                    errors.append(f"not a JSON object: {text[:500]}")
                if len(errors) >= BATCH_ROWS:
                    writer.write(buf, len(errors), errors)
                    buf = {name: [] for name in names}
                    errors = []
            if first_bad is not None and bad_lines == rows:  # not JSON Lines at all
                raise FileRejected("file.unreadable", first_bad)
            if rows:
                missing = [c for c in contract.required_columns if c not in keys_seen]
                if missing and len(keys_seen):
                    raise FileRejected(
                        "file.missing_column",
                        f"required column(s) missing: {', '.join(missing)}",
                    )
                writer.result.extra_columns = sorted(keys_seen - set(names))
            writer.write(buf, len(errors), errors)
    except UnicodeDecodeError as exc:
        raise FileRejected("file.encoding", f"not UTF-8: {exc.reason}") from exc
