"""The data contracts: one declaration per source dataset, read by every stage.

Each ``<dataset>.yml`` beside this file declares a dataset's columns, types, rules, keys and
de-duplication once. Everything else derives from it: ingestion's parsing, the row rules of both
transform engines (``glue/rules.py``), the Great Expectations suites, the dbt sources and the
sample-data generator's corruptions. Nothing here does I/O beyond reading the YAML files.
"""

from __future__ import annotations

import datetime
import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CONTRACTS_DIR = Path(__file__).resolve().parent

ColumnType = Literal["string", "integer", "boolean", "date", "time", "timestamp"]

#: Lineage columns carried from the raw Parquet to the processed zone and the quarantine.
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
INGESTED_AT = "_ingested_at"
EXPORT_DATE = "_export_date"
RAW_ID = "_raw_id"
PARSE_ERROR = "_parse_error"
#: The partition column of the processed zone.
PARTITION_COLUMN = "dt"
#: The quarantine's reason-code column: the codes of every rule a row fails, ';'-separated.
REASONS = "_reasons"

#: name -> (Arrow type name, description). Raw Parquet holds these beside the text columns.
LINEAGE_COLUMNS: dict[str, tuple[str, str]] = {
    SOURCE_FILE: ("string", "The export file the row came from (its name as delivered)."),
    SOURCE_ROW: ("int64", "The row's 1-based record number in that file (header excluded)."),
    INGESTED_AT: ("timestamp", "When the file was landed (UTC)."),
    EXPORT_DATE: ("date", "The export's date: from the file name, else the ingest date."),
    RAW_ID: ("string", "The SHA-256 of the file's bytes: its name in the raw zone."),
    PARSE_ERROR: ("string", "Why the row could not be split into columns, if it could not."),
}
#: Lineage columns kept in the processed zone (the parse error is always null there).
PROCESSED_LINEAGE = (SOURCE_FILE, SOURCE_ROW, INGESTED_AT, RAW_ID)
#: Lineage text that is the same on every row of a raw file (ingestion writes it so).
FILE_LINEAGE_TEXT = (SOURCE_FILE, RAW_ID)

#: Spellings accepted for booleans (compared case-insensitively after trimming).
TRUE_VALUES = ("true", "t", "yes", "y", "1")
FALSE_VALUES = ("false", "f", "no", "n", "0")

#: The shapes of the typed text formats the exports use. Validity beyond the shape (a 30th of
#: February, say) is checked by casting.
INTEGER_PATTERN = r"^[+-]?[0-9]{1,18}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
#: ISO-8601 date-time (matched after upper-casing): date, 'T' or space, HH:MM[:SS[.fraction]],
#: then optionally Z or an offset ±HH[[:]MM]. A value without a zone is in the gym's time zone.
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,9})?)?"
    r"(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?$"
)

_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def parse_timestamp(text: str) -> datetime.datetime | None:
    """An export timestamp as an aware UTC datetime (naive means UTC), or None if invalid.

    The Python reading of ``TIMESTAMP_PATTERN`` for tools and tests (the generator, its
    checker); the transform's engines read timestamps with the SQL in ``glue/rules.py``.
    """
    text = text.strip().upper()  # the pattern is matched after upper-casing
    if not _TIMESTAMP.match(text):
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


#: A date in an export's file name (members_2026-11-24.csv, attendance-20261124.json).
FILE_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ColumnType = "string"
    required: bool = False
    description: str = ""
    normalize: Literal["lower"] | None = None
    pattern: str | None = None
    max_length: int | None = None
    allowed: tuple[str, ...] | None = None
    min: float | str | None = None
    max: float | str | None = None
    not_after_ingestion: bool = False
    pii: bool = False

    @model_validator(mode="after")
    def _check(self) -> Column:
        if self.type not in ("string",) and (self.pattern or self.allowed or self.normalize):
            raise ValueError(f"{self.name}: pattern/allowed/normalize apply to strings only")
        if self.type in ("boolean", "time", "string") and (
            self.min is not None or self.max is not None
        ):
            raise ValueError(f"{self.name}: min/max apply to integers, dates and timestamps")
        if self.not_after_ingestion and self.type not in ("date", "timestamp"):
            raise ValueError(f"{self.name}: not_after_ingestion applies to dates and timestamps")
        if self.pattern:
            re.compile(self.pattern)
        return self


class Partition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["export_date", "column"]
    column: str | None = None


class Dedup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: tuple[str, ...]
    #: latest: the row ordered last wins (newest ``order_by``, then last ingested);
    #: first: the first row ever ingested wins.
    keep: Literal["latest", "first"]
    order_by: tuple[str, ...] = ()
    #: partition: unique within a ``dt`` partition; dataset: unique across the whole dataset.
    scope: Literal["partition", "dataset"]


class Freshness(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_after_hours: int
    error_after_hours: int


class Snapshot(BaseModel):
    """A dataset whose every export is the whole table: a row missing from the newest full
    export is gone. ``partial_files`` are the exceptions: file name patterns (shell globs,
    matched case-insensitively) of exports that carry only some rows (the day's sign-ups,
    delivered beside the full export), which add rows and remove none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partial_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One row rule, with the reason code a failing row is quarantined under."""

    code: str
    column: str | None
    kind: str
    message: str


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    description: str
    file_prefix: str
    partition: Partition
    primary_key: tuple[str, ...]
    dedup: Dedup
    freshness: Freshness
    columns: tuple[Column, ...] = Field(min_length=1)
    #: Set when every export is a full snapshot of the table (see :class:`Snapshot`).
    snapshot: Snapshot | None = None

    @model_validator(mode="after")
    def _check(self) -> Contract:
        names = self.column_names
        if len(set(names)) != len(names):
            raise ValueError(f"{self.dataset}: duplicate column names")
        for name in (*self.primary_key, *self.dedup.key, *self.dedup.order_by):
            if name not in names:
                raise ValueError(f"{self.dataset}: key column {name!r} is not a column")
        if self.partition.by == "column":
            col = self.column(self.partition.column or "")
            if col.type not in ("date", "timestamp") or not col.required:
                raise ValueError(f"{self.dataset}: partition column must be a required date")
        return self

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def file_columns(self) -> tuple[str, ...]:
        """A processed Parquet file's columns, in order: the contract's, then the lineage kept."""
        return (*self.column_names, *PROCESSED_LINEAGE)

    @property
    def processed_columns(self) -> tuple[str, ...]:
        """The processed zone's columns: the file's, then the ``dt`` partition, kept last."""
        return (*self.file_columns, PARTITION_COLUMN)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.dataset} has no column {name!r}")

    def is_partial_export(self, file_name: str) -> bool:
        """Whether an export file (its name as delivered) carries only some of a snapshot
        dataset's rows (:class:`Snapshot`); False for every file of other datasets."""
        if self.snapshot is None:
            return False
        base = file_name.rsplit("/", 1)[-1].lower()
        return any(fnmatch.fnmatchcase(base, p.lower()) for p in self.snapshot.partial_files)

    def rules(self) -> tuple[Rule, ...]:
        """Every row rule of the dataset, in the order the reasons are reported."""
        out = [Rule("row.malformed", None, "malformed", "the row could not be split into columns")]
        for c in self.columns:
            n = c.name
            if c.required:
                out.append(Rule(f"{n}.required", n, "required", f"{n} is required"))
            if c.type != "string":
                out.append(Rule(f"{n}.type", n, "type", f"{n} is not a valid {c.type}"))
            if c.max_length is not None:
                msg = f"{n} is longer than {c.max_length} characters"
                out.append(Rule(f"{n}.max_length", n, "max_length", msg))
            if c.pattern:
                out.append(Rule(f"{n}.pattern", n, "pattern", f"{n} does not match {c.pattern}"))
            if c.allowed:
                msg = f"{n} is not one of {', '.join(c.allowed)}"
                out.append(Rule(f"{n}.allowed", n, "allowed", msg))
            if c.min is not None:
                out.append(Rule(f"{n}.min", n, "min", f"{n} is before/below {c.min}"))
            if c.max is not None:
                out.append(Rule(f"{n}.max", n, "max", f"{n} is after/above {c.max}"))
            if c.not_after_ingestion:
                msg = f"{n} is later than the day the file was ingested"
                out.append(Rule(f"{n}.future", n, "future", msg))
        return tuple(out)

    def rule(self, code: str) -> Rule:
        for r in self.rules():
            if r.code == code:
                return r
        raise KeyError(f"{self.dataset} has no rule {code!r}")


@cache
def load_all() -> dict[str, Contract]:
    """Every contract in this folder, by dataset name."""
    out: dict[str, Contract] = {}
    for path in sorted(CONTRACTS_DIR.glob("*.yml")):
        contract = Contract.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        if contract.dataset != path.stem:
            raise ValueError(f"{path.name}: dataset {contract.dataset!r} must match the file name")
        out[contract.dataset] = contract
    return out


def get(dataset: str) -> Contract:
    contracts = load_all()
    if dataset not in contracts:
        known = ", ".join(sorted(contracts))
        raise KeyError(f"unknown dataset {dataset!r} (known: {known})")
    return contracts[dataset]


def dataset_for_file(file_name: str) -> str | None:
    """The dataset an export belongs to, from its file name's prefix (None when unknown)."""
    base = file_name.rsplit("/", 1)[-1].lower()
    for contract in load_all().values():
        if base.startswith(contract.file_prefix):
            return contract.dataset
    return None


def export_date_from_name(file_name: str) -> str | None:
    """The export date written in a file name, as YYYY-MM-DD, if it holds a valid one."""
    base = file_name.rsplit("/", 1)[-1]
    for match in FILE_DATE.finditer(base):
        try:
            return datetime.date(*(int(g) for g in match.groups())).isoformat()
        except ValueError:
            continue
    return None
