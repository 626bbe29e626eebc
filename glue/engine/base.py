"""What a transform engine is given and gives back.

An engine runs the statements of :mod:`glue.rules` over one batch of raw files and writes two
staged outputs below ``job.staging`` (Hive-style folders, one Parquet file per folder):

- ``processed/dt=YYYY-MM-DD/<file>.parquet``: the complete new content of each affected partition
- ``quarantine/_qpart=<raw_id>/<file>.parquet``: the rejected rows of each raw file

The orchestrator (:mod:`glue.transform`) checks the staged partitions with Great Expectations and
publishes them; engines never touch the live zones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from contracts import REASONS, Contract
from glue import rules

QUARANTINE_PART = "_qpart"


@dataclass
class EngineJob:
    raw_files: list[str]
    existing_files: list[str]
    staging: str
    batch_raw_ids: list[str]
    timezone: str = "UTC"
    #: Every committed raw file's export date (YYYY-MM-DD), by raw id: the engine provides it
    #: as the relation :data:`glue.rules.EXPORTS` (first seen = earliest export).
    export_dates: dict[str, str] = field(default_factory=dict)


@dataclass
class EngineResult:
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    rows_deduplicated: int
    rows_superseded: int
    affected_partitions: list[str]
    reasons: dict[str, int] = field(default_factory=dict)


class Engine(Protocol):
    name: str
    dialect: str
    #: True when the engine reads and writes ``s3://`` URIs itself (Spark on Glue); otherwise
    #: the transform hands it local copies of an S3 lake's files and uploads what it stages.
    reads_uris: bool

    def process(self, contract: Contract, job: EngineJob) -> EngineResult: ...


def exports_rows(job: EngineJob) -> list[tuple[str, dt.date]]:
    """The rows of :data:`glue.rules.EXPORTS` for a job."""
    return [
        (raw_id, dt.date.fromisoformat(day)) for raw_id, day in sorted(job.export_dates.items())
    ]


def reason_counts_sql(contract: Contract, dialect: str, source: str = "validated") -> str:
    """One count per rule, in ``contract.rules()`` order, over the rejected rows."""
    reasons = rules.q(REASONS)
    sums = [
        f"SUM(CASE WHEN STRPOS(';' || {reasons} || ';', {rules.lit(';' + r.code + ';')}) > 0 "
        f"THEN 1 ELSE 0 END) AS c{i}"
        for i, r in enumerate(contract.rules())
    ]
    sql = f"SELECT {', '.join(sums)} FROM {source} WHERE {reasons} <> ''"
    return rules.render(sql, dialect)


def _staged(keys: list[str], prefix: str, folder: str) -> dict[str, str]:
    """``{value: key}`` of the staged Parquet files ``<prefix><folder>/<col>=<value>/<file>``."""
    out: dict[str, str] = {}
    base = f"{prefix}{folder}/"
    for key in keys:
        if not key.startswith(base) or not key.endswith(".parquet"):
            continue  # Spark's _SUCCESS markers and the like
        part, _, name = key[len(base) :].partition("/")
        if "/" in name or "=" not in part:
            raise RuntimeError(f"unexpected staged file {key}")
        value = part.split("=", 1)[1]
        if value in out:
            raise RuntimeError(f"{base}{part}: expected one staged Parquet file, found several")
        out[value] = key
    return out


def staged_partitions(keys: list[str], prefix: str) -> dict[str, str]:
    """The staged processed partitions: ``{dt: lake key}``."""
    return _staged(keys, prefix, "processed")


def staged_quarantine(keys: list[str], prefix: str) -> dict[str, str]:
    """The staged rejected rows: ``{raw_id: lake key}``."""
    return _staged(keys, prefix, "quarantine")
