"""What a transform engine is given and gives back.

An engine runs the statements of :mod:`glue.rules` over one batch of raw files and writes two
staged outputs below ``job.staging`` (Hive-style folders, one Parquet file per folder):

- ``processed/dt=YYYY-MM-DD/<file>.parquet``: the complete new content of each affected partition
- ``quarantine/_qpart=<raw_id>/<file>.parquet``: the rejected rows of each raw file

The orchestrator (:mod:`glue.transform`) checks the staged partitions with Great Expectations and
publishes them; engines never touch the live zones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
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

    def process(self, contract: Contract, job: EngineJob) -> EngineResult: ...


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


def _single_file(folder: Path) -> Path:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".parquet")
    if len(files) != 1:
        raise RuntimeError(f"{folder}: expected one staged Parquet file, found {len(files)}")
    return files[0]


def staged_partitions(staging: Path) -> dict[str, Path]:
    base = staging / "processed"
    if not base.exists():
        return {}
    return {
        p.name.split("=", 1)[1]: _single_file(p)
        for p in sorted(base.iterdir())
        if p.is_dir() and p.name.startswith("dt=")
    }


def staged_quarantine(staging: Path) -> dict[str, Path]:
    base = staging / "quarantine"
    if not base.exists():
        return {}
    return {
        p.name.split("=", 1)[1]: _single_file(p)
        for p in sorted(base.iterdir())
        if p.is_dir() and p.name.startswith(f"{QUARANTINE_PART}=")
    }
