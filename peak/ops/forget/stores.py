"""Every file of a store (the lake, and on AWS Athena's data and query-result folders): searched
for the members, and cleaned of them, file by file, by what the file is.

=======================  =====================================================================
file                     how the members leave it
=======================  =====================================================================
``raw/…`` (an export)    rewritten without their records, every other byte kept
                         (:func:`ingestion.redact.redact_export`); the key (the SHA-256 of the
                         bytes as delivered) stays, so a re-delivery is still recognised
a rejected file          the same; a file that cannot be split into records (not UTF-8, a
(``quarantine/…/files``) truncated array) is deleted, its ``.reason.json`` says so
Parquet (raw Parquet,    rewritten without the rows naming them in any text column
processed, quarantined   (:func:`ingestion.redact.redact_parquet`); a raw Parquet file's ledger
rows, Athena's tables)   entry then counts the rows left (``rows``) and erased (``erased_rows``),
                         so a reprocess balances; an emptied processed partition is deleted
a DuckDB warehouse       rebuilt without the rows (:mod:`peak.ops.warehouse_files`)
JSON                     records naming them dropped (:func:`peak.core.erasure.scrub_json`:
                         a batch loses their input, a state its key), other mentions redacted
JSON Lines (outboxes)    the same per line; a line still naming them is dropped
other text               each mention replaced by ``[erased]``
=======================  =====================================================================

Every rewrite replaces the file atomically (a temporary file renamed locally, one PUT on S3),
so a killed run leaves each file either as it was or clean, and running again finishes the job.
The erasure register and pending erasures (``_state/erasure/``) are never touched.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion.parse import FileRejected
from ingestion.redact import NotRedactable, redact_export, redact_parquet
from peak.core import layout
from peak.core.erasure import Subject, redact_json, scrub_json
from peak.core.failpoints import failpoint
from peak.core.lake import Lake
from peak.core.layout import ERASURE_REGISTER_KEY as REGISTER_KEY
from peak.ops import warehouse_files

#: Never searched nor touched: the register (salted hashes) and pending erasures.
ERASURE_STATE = REGISTER_KEY.rsplit("/", 1)[0] + "/"
RAW = layout.raw_key("\x00", "\x00", "\x00", "x").split("\x00", 1)[0]
RAW_PARQUET = layout.raw_parquet_key("\x00", "\x00", "\x00").split("\x00", 1)[0]
PROCESSED = layout.processed_prefix("\x00").split("\x00", 1)[0]
PARQUET_MAGIC = b"PAR1"


@dataclass
class Place:
    """One place searched: a zone of a store, a table, a key space, a remote system."""

    place: str
    kind: str  # zone | table | keys | remote | state
    searched: int = 0  # files, tables, keys or queries searched
    erased: int = 0  # rows, records, entries or contacts removed by this run
    remaining: int = 0  # mentions found after the erasure: must be 0
    note: str = ""
    #: A warehouse file's tables, each with the rows left naming a member (all 0 when clean).
    tables: dict[str, int] = field(default_factory=dict)


@dataclass
class Findings:
    """Places by name, in the order they were first met."""

    places: dict[str, Place] = field(default_factory=dict)

    def place(self, name: str, kind: str) -> Place:
        if name not in self.places:
            self.places[name] = Place(name, kind)
        return self.places[name]


def zone_of(label: str, key: str) -> str:
    """A report's name for where a key lives: the store's label and the key's first folder."""
    head = key.split("/", 1)[0] if "/" in key else key
    return f"{label}: {head}"


def is_parquet(store: Lake, key: str) -> bool:
    if key.endswith(".parquet"):
        return True
    if "." in key.rsplit("/", 1)[-1]:
        return False
    with store.local_copy(key) as path, open(path, "rb") as fh:
        return fh.read(4) == PARQUET_MAGIC


def _mask(table: pa.Table, subject: Subject) -> pa.Array:
    """Rows of a table naming a member in any text column."""
    mask = pa.array([False] * table.num_rows, pa.bool_())
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            hit = pc.fill_null(pc.match_substring_regex(column, subject.pattern), False)
            mask = pc.or_(mask, hit)
    return mask


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte a character: an ASCII mention still shows


@contextmanager
def _work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="peak-forget-") as tmp:
        yield Path(tmp)


# ---------------------------------------------------------------------------------------------
# Searching
# ---------------------------------------------------------------------------------------------


def keys(store: Lake) -> list[str]:
    return [k for k in store.list("") if not k.startswith(ERASURE_STATE)]


def count_in(store: Lake, key: str, subject: Subject, place: Place | None = None) -> int:
    """Mentions of the members in one file: rows (Parquet, DuckDB, whose tables the place
    lists) or places in its text."""
    if key.endswith(".duckdb"):
        if not store.is_local:
            return 0
        found = warehouse_files.count(store.path(key), _chooser(subject))
        if place is not None:
            place.tables = found
        return sum(found.values())
    if is_parquet(store, key):
        with store.local_copy(key) as path:
            table = pq.ParquetFile(path).read()
        return int(pc.sum(_mask(table, subject)).as_py() or 0) if table.num_rows else 0
    return subject.count_in(_text(store.read_bytes(key)))


def search(store: Lake, label: str, subject: Subject, findings: Findings) -> None:
    """Count what is left of the members in every file of a store, zone by zone."""
    for key in keys(store):
        place = findings.place(zone_of(label, key), "zone")
        place.searched += 1
        place.remaining += count_in(store, key, subject, place)


# ---------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------


def _chooser(subject: Subject) -> Callable[[warehouse_files.Table], str | None]:
    pattern = warehouse_files.literal(subject.pattern)

    def choose(table: warehouse_files.Table) -> str | None:
        texts = table.text_columns()
        if not texts:
            return None
        return " or ".join(f"regexp_matches({warehouse_files.quote(c)}, {pattern})" for c in texts)

    return choose


def clean(store: Lake, label: str, subject: Subject, findings: Findings) -> None:
    """Remove the members from every file of a store (idempotent)."""
    for key in keys(store):
        place = findings.place(zone_of(label, key), "zone")
        removed = clean_file(store, key, subject, place)
        place.erased += removed
        if removed:
            failpoint("forget.file")


def clean_file(store: Lake, key: str, subject: Subject, place: Place) -> int:
    """Remove the members from one file; what was removed (rows, records or mentions)."""
    if key.endswith(".duckdb"):
        if not store.is_local:
            return 0
        removed = warehouse_files.remove(store.path(key), _chooser(subject))
        return sum(removed.values())
    if key.endswith(".reason.json"):
        return _clean_json(store, key, subject)
    if is_parquet(store, key):
        return _clean_parquet(store, key, subject)
    data = store.read_bytes(key)
    if not subject.found_in(_text(data)):
        return 0
    if key.startswith(RAW) or (key.startswith("quarantine/") and "/files/" in key):
        return _clean_export(store, key, data, subject, place)
    if key.endswith(".jsonl"):
        return _clean_json_lines(store, key, data, subject)
    if key.endswith(".json"):
        return _clean_json(store, key, subject)
    text = _text(data)
    store.write_bytes(key, subject.redact(text).encode("utf-8"))
    return subject.count_in(text)


def _clean_export(store: Lake, key: str, data: bytes, subject: Subject, place: Place) -> int:
    def drop(record: Any) -> bool:
        return any(subject.found_in(value) for value in record.values())

    try:
        redacted, dropped = redact_export(data, key, drop)
    except (NotRedactable, FileRejected) as exc:  # an unreadable (rejected) file: it goes
        if key.startswith(RAW):
            raise
        store.delete(key)
        reason_key = key.rsplit(".", 1)[0] + ".reason.json"
        reason = store.read_json(reason_key, default=None)
        if isinstance(reason, dict):
            reason["reason"] = (
                f"{reason.get('reason', '')} [the file held an erased member's data and could "
                f"not be split into records ({type(exc).__name__}): deleted]"
            ).strip()
            store.write_json(reason_key, reason)
        place.note = "a rejected file that held an erased member was deleted"
        return 1
    if dropped:
        store.write_bytes(key, redacted)
    return dropped


def _clean_parquet(store: Lake, key: str, subject: Subject) -> int:
    with _work() as tmp, store.local_copy(key) as path:
        out = tmp / "kept.parquet"
        kept, dropped = redact_parquet(path, out, lambda table: _mask(table, subject))
        if dropped:
            if kept == 0 and key.startswith(PROCESSED):
                store.delete(key)  # an emptied partition goes, as the transform does
            else:
                store.put_file(out, key, move=True)
    if key.startswith(RAW_PARQUET):
        _reconcile_ledger(store, key, kept, dropped)
    return dropped


def _reconcile_ledger(store: Lake, key: str, rows: int, dropped: int) -> None:
    """A raw Parquet file's ledger entry counts the rows it holds now (a reprocess checks the
    rows it reads against it) and the rows erased; also after a run killed between the two."""
    dataset = key[len(RAW_PARQUET) :].split("/", 1)[0]
    raw_id = key.rsplit("/", 1)[-1].split(".", 1)[0]
    ledger_key = layout.ingest_ledger_key(dataset, raw_id)
    entry = store.read_json(ledger_key, default=None)
    if not isinstance(entry, dict):
        return
    before = int(entry.get("rows") or 0)
    if before == rows and not dropped:
        return
    erased = int(entry.get("erased_rows") or 0) + (before - rows)
    with store.local_copy(key) as path:
        table = pq.ParquetFile(path).read(columns=["_parse_error"])
    entry.update(
        rows=rows,
        erased_rows=erased,
        malformed_rows=table.num_rows - table.column(0).null_count,
    )
    store.write_json(ledger_key, entry)


def _clean_json(store: Lake, key: str, subject: Subject) -> int:
    try:
        document = json.loads(store.read_bytes(key))
    except ValueError:
        text = _text(store.read_bytes(key))
        store.write_bytes(key, subject.redact(text).encode("utf-8"))
        return subject.count_in(text)
    cleaned, removed, residual = scrub_json(document, subject)
    if residual:
        before = cleaned
        cleaned = redact_json(cleaned, subject)
        removed += int(cleaned != before)
    if removed or residual:
        store.write_json(key, cleaned)
    return removed


def _clean_json_lines(store: Lake, key: str, data: bytes, subject: Subject) -> int:
    out, removed = [], 0
    for line in _text(data).splitlines(keepends=True):
        if not subject.found_in(line):
            out.append(line)
            continue
        try:
            record = json.loads(line)
        except ValueError:
            removed += 1
            continue
        cleaned, n, residual = scrub_json(record, subject)
        if residual:
            removed += 1
            continue
        removed += n
        out.append(json.dumps(cleaned, default=str, sort_keys=True) + "\n")
    store.write_bytes(key, "".join(out).encode("utf-8"))
    return removed
