"""The run report: what one command did, per dataset, written to ``<lake>/_runs/<run_id>.json``.

Counts follow one invariant per dataset and run: ``rows_in == rows_valid + rows_quarantined +
rows_deduplicated``. ``rows_in`` counts the rows of the raw files a transform read; rows of files
rejected whole are not countable and are reported as ``rejected_files`` instead.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from peak.core.lake import Lake
from peak.core.layout import RUNS_PREFIX, run_report_key


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``: how errors appear in the CLI and the reports."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip(": ")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@dataclass
class RejectedFile:
    file: str
    code: str
    reason: str
    quarantined_as: str


#: The key a stage of a run report records its Athena bytes scanned under (`peak cost` reads it).
ATHENA_BYTES_SCANNED = "athena_bytes_scanned"


def balanced(rows_in: int, valid: int, quarantined: int, deduplicated: int) -> bool:
    """Nothing lost: every row read ended valid, quarantined or de-duplicated."""
    return rows_in == valid + quarantined + deduplicated


@dataclass
class DatasetStats:
    files_in: int = 0
    files_landed: int = 0
    files_already_landed: int = 0
    rows_landed: int = 0
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    #: Rows written by an earlier run that this run's newer rows replaced (not part of rows_in).
    rows_superseded: int = 0
    partitions_written: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    rejected_files: list[RejectedFile] = field(default_factory=list)
    extra_columns_dropped: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return balanced(
            self.rows_in, self.rows_valid, self.rows_quarantined, self.rows_deduplicated
        )


@dataclass
class RunReport:
    command: str
    run_id: str = field(default_factory=new_run_id)
    started_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    status: str = "running"
    error: str | None = None
    lake: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, DatasetStats] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)

    def dataset(self, name: str) -> DatasetStats:
        return self.datasets.setdefault(name, DatasetStats())

    @property
    def rejected_files(self) -> list[RejectedFile]:
        return [f for stats in self.datasets.values() for f in stats.rejected_files]

    def finish(self, status: str = "ok", error: str | None = None) -> None:
        self.finished_at = utcnow()
        self.status = status
        self.error = error

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, stats in self.datasets.items():
            out["datasets"][name]["reasons"] = dict(sorted(stats.reasons.items()))
            out["datasets"][name]["balanced"] = stats.balanced
        return out

    def save(self, lake: Lake) -> str:
        key = run_report_key(self.run_id)
        lake.write_json(key, self.to_dict())
        return key


# ---------------------------------------------------------------------------------------------
# Reading reports back (the dashboard, `peak cost`)
# ---------------------------------------------------------------------------------------------

#: Run ids begin with their UTC start time (see :func:`new_run_id`).
_RUN_ID_TIME = "%Y%m%dT%H%M%SZ"


def run_id_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".json")


def report_keys(
    lake: Lake, since: dt.datetime | None = None, limit: int | None = None
) -> list[str]:
    """Run report keys, oldest first: those started since ``since`` (naive UTC), the newest
    ``limit`` of them."""
    keys = sorted(k for k in lake.list(RUNS_PREFIX) if k.endswith(".json"))
    if since is not None:
        keys = [k for k in keys if (started := _started(k)) is None or started >= since]
    return keys[-limit:] if limit else keys


def _started(key: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(run_id_of(key).split("-", 1)[0], _RUN_ID_TIME)
    except ValueError:
        return None


def load_reports(lake: Lake, keys: Iterable[str]) -> list[dict[str, Any]]:
    """The reports as dicts (unreadable ones are skipped: a report being written is never
    listed), each with its ``run_id``."""
    out = []
    for key in keys:
        try:
            report = json.loads(lake.read_bytes(key))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict):
            report.setdefault("run_id", run_id_of(key))
            out.append(report)
    return out
