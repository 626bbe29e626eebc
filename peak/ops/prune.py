"""Retention: how long each zone keeps its files, written once, applied twice.

The design keeps the raw zone 30 days, the processed zone a year and the quarantine 90 days
(Athena's query results 7 days). :data:`RETENTION_DAYS` is the only place those numbers live:

- on AWS, ``peak deploy package`` renders them into the buckets' S3 lifecycle rules
  (:func:`lifecycle_rules`; ``tests/test_infra.py`` asserts the template's rules equal them);
- on a local lake, ``peak prune`` (:func:`prune`) applies the same rules to the same prefixes.

Which prefixes a zone covers comes from the lake layout (:mod:`peak.core.lake`), never re-spelled:
the raw zone is ``raw/`` *and* ``raw_parquet/`` (the same rows, kept for the same audit window),
the quarantine both its ``rows/`` and its ``files/``.

**Age.** A file's age is the date in its key (``ingest_date=D`` or ``dt=D``, whatever the
partition is called), else its modification time. The key's date is what the retention is
about (a partition of check-ins from day D), and unlike an mtime it survives copies and
restores. A file dated D expires once ``as_of - D > days``, the day S3's lifecycle would
expire an object created on D (it adds the days to the creation time and rounds up to the next
midnight UTC). For ``raw/`` the two agree (a file is written on its ingest date); for
``processed/`` S3 counts from a partition's last rewrite, so S3 keeps a late-rewritten old
partition a little longer than ``prune`` does, never shorter.

**The ledgers stay consistent.** The transform decides what is new by diffing the ingest ledger
(``_state/ingest/``) against its own (``_state/transform/``); neither is touched here, exactly
as S3's lifecycle rules do not touch them:

- a pruned raw file's id stays in both ledgers, so the next transform does not see it as new
  (and a re-delivered copy of the same bytes is still ``already_landed``, never re-processed);
- a raw file the transform has *not* processed yet is never pruned, however old (it is counted
  as ``kept_unprocessed``): deleting it would lose rows that never reached the processed zone.
  S3's lifecycle cannot make that check; a transform failing for 30 days in a row (which pages
  someone daily through the pipeline's alerts) is the only way to hit it there;
- ``peak transform --reprocess`` rebuilds the processed zone *from the raw zone*, so after
  retention it can only fail: it stops on the first missing raw Parquet file (see
  ``docs/deploy.md``, "Retention and the ledgers") instead of silently rebuilding a year of
  partitions from 30 days of files.

**Snapshots.** The warehouse's snapshots (``snap_member_status``, ``snap_churn_status``) keep
a version per change: a member's every e-mail address would stay forever. A closed version (a
newer one replaced it, or the member left) is kept :data:`SNAPSHOT_RETENTION_DAYS` after it was
closed (its ``dbt_valid_to``), as long as the processed zone keeps the exports it came from;
the current version is never removed. ``prune`` removes the older ones from the local
warehouse's files, rebuilding them so that nothing of the removed rows is left
(:mod:`peak.ops.warehouse_files`). The zone ``snapshots`` counts rows, not files.

**Temporary folders.** Every stage works in a ``peak-*`` folder of the system's temporary
folder and removes it when it ends; a killed run (``SIGKILL``, a lost container) cannot. ``prune``
also removes this user's ``peak-*`` folders in which nothing changed for :data:`STALE_TEMP_AGE`
(a live run keeps writing into its own; no stage runs for that long).

``prune`` holds the transform's lock (:func:`peak.core.locks.transform_lock`: an ``flock``
locally, the lock object on S3), so it never runs beside a transform.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from peak.core import layout, ledger
from peak.core.lake import Lake
from peak.core.locks import transform_lock
from peak.model.dbt import PROJECT_DIR
from peak.ops import warehouse_files


def _dbt_var(name: str) -> Any:
    """A var of the dbt project (``dbt_project/dbt_project.yml``), where the warehouse reads it."""
    document = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return document["vars"][name]


#: Days each zone keeps a file: the design's retention (docs/architecture.md, "Design targets").
#: The processed zone's is the dbt var ``processed_retention_days``: the warehouse keeps the
#: same window (``docs/operations.md``).
RETENTION_DAYS: dict[str, int] = {
    "raw": 30,
    "processed": int(_dbt_var("processed_retention_days")),
    "quarantine": 90,
}
#: Athena's query results (their own bucket; only the template's lifecycle rule applies it).
ATHENA_RESULTS_RETENTION_DAYS = 7
#: The inbox bucket keeps an upload as long as the raw zone keeps its copy.
INBOX_RETENTION_DAYS = RETENTION_DAYS["raw"]
#: Incomplete multipart uploads are aborted after this many days on every bucket.
ABORT_MULTIPART_DAYS = 7
#: Days a closed snapshot version is kept after it was closed: as long as the processed zone
#: keeps the exports it was taken from (older history could not be rebuilt from them anyway).
SNAPSHOT_RETENTION_DAYS = RETENTION_DAYS["processed"]
#: The zone name of the snapshots' retention (rows of the warehouse, not files of the lake).
SNAPSHOTS = "snapshots"
#: Every zone ``prune`` applies a retention to.
ZONES = (*RETENTION_DAYS, SNAPSHOTS)

#: A temporary ``peak-*`` folder in which nothing changed this long belongs to a killed run.
STALE_TEMP_AGE = dt.timedelta(days=1)
#: The prefix of every temporary folder a stage makes (``peak-land-``, ``peak-transform-``...).
TEMP_PREFIX = "peak-"

_MARK = "\x00"


def key_stem(key_function: Callable[..., str], arity: int | None = None) -> str:
    """The constant folder a layout function's keys start with (``raw_key`` -> ``raw/``).

    Calls the function with placeholders and keeps everything up to the last ``/`` before the
    first placeholder, so prefixes are derived from :mod:`peak.core.lake` and never re-spelled.
    """
    import inspect

    count = arity if arity is not None else len(inspect.signature(key_function).parameters)
    key = key_function(*([_MARK] * count))
    head = key.split(_MARK, 1)[0]
    return head[: head.rfind("/") + 1]


def zone_prefixes() -> dict[str, tuple[str, ...]]:
    """Zone -> the lake prefixes it covers (relative to the lake root)."""
    quarantine = {key_stem(layout.quarantine_rows_key), key_stem(layout.quarantine_file_key)}
    return {
        "raw": (key_stem(layout.raw_key), key_stem(layout.raw_parquet_key)),
        "processed": (key_stem(layout.processed_key),),
        "quarantine": tuple(sorted(quarantine)),
    }


def lifecycle_rules(lake_prefix: str = "") -> list[dict[str, Any]]:
    """The lake bucket's S3 lifecycle rules (CloudFormation's ``Rules`` shape)."""
    rules = []
    for zone, prefixes in zone_prefixes().items():
        for prefix in prefixes:
            rules.append(
                {
                    "Id": f"retention-{zone}-{_rule_name(prefix)}",
                    "Status": "Enabled",
                    "Prefix": lake_prefix + prefix,
                    "ExpirationInDays": RETENTION_DAYS[zone],
                }
            )
    rules.append(abort_multipart_rule())
    return rules


def expiry_rule(rule_id: str, days: int, prefix: str = "") -> dict[str, Any]:
    """One expiration rule (a whole bucket when ``prefix`` is empty)."""
    rule: dict[str, Any] = {"Id": rule_id, "Status": "Enabled", "ExpirationInDays": days}
    if prefix:
        rule["Prefix"] = prefix
    return rule


def abort_multipart_rule() -> dict[str, Any]:
    return {
        "Id": "abort-incomplete-multipart-uploads",
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
    }


def _rule_name(prefix: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", prefix).strip("-") or "all"


# ---------------------------------------------------------------------------------------------
# Listing with sizes and times (Lake.list gives keys only).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    modified: dt.datetime  # naive UTC


def scan(lake: Lake, prefix: str) -> Iterator[Entry]:
    """Every object under a lake prefix with its size and modification time.

    Locally ``os.scandir`` (one ``stat`` each); on S3 ``list_objects_v2`` pages, which carry
    ``Size`` and ``LastModified``. Hidden names (temporary files) are skipped, like
    :meth:`Lake.list`.
    """
    if lake.is_local:
        base = lake.path(prefix.rstrip("/")) if prefix else Path(lake.root)
        if base.is_dir():
            yield from _scan_local(str(base), len(str(Path(lake.root))) + 1)
        return
    import boto3

    session = lake.boto3_session or boto3.session.Session()
    paginator = session.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=lake.bucket, Prefix=lake.prefix + prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"][len(lake.prefix) :]
            if key.rsplit("/", 1)[-1].startswith("."):
                continue
            modified = obj["LastModified"].astimezone(dt.UTC).replace(tzinfo=None)
            yield Entry(key, int(obj["Size"]), modified)


def _scan_local(folder: str, cut: int) -> Iterator[Entry]:
    with os.scandir(folder) as entries:
        for item in entries:
            if item.name.startswith("."):
                continue
            if item.is_dir(follow_symlinks=False):
                yield from _scan_local(item.path, cut)
            elif item.is_file(follow_symlinks=False):
                st = item.stat(follow_symlinks=False)
                modified = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).replace(tzinfo=None)
                yield Entry(item.path[cut:].replace(os.sep, "/"), st.st_size, modified)


# ---------------------------------------------------------------------------------------------
# Prune.
# ---------------------------------------------------------------------------------------------

#: A Hive partition folder holding a date: ``ingest_date=2026-11-24``, ``dt=2026-11-24``.
_DATED = re.compile(r"(?:^|/)[A-Za-z_][A-Za-z0-9_]*=(\d{4}-\d{2}-\d{2})(?=/|$)")


def key_date(key: str) -> dt.date | None:
    """The date of the first date-valued partition folder in a key, if any."""
    match = _DATED.search(key)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def expired(day: dt.date, days: int, as_of: dt.date) -> bool:
    """Whether a file dated ``day`` is past a ``days`` retention on ``as_of``."""
    return (as_of - day).days > days


@dataclass
class ZoneResult:
    zone: str
    days: int
    cutoff: str  # files dated before this day are removed
    files: int = 0
    bytes: int = 0
    kept_unprocessed: int = 0
    datasets: dict[str, int] = field(default_factory=dict)
    rows: int = 0  # snapshots: versions removed
    note: str = ""


@dataclass
class PruneResult:
    as_of: str
    dry_run: bool
    zones: dict[str, ZoneResult] = field(default_factory=dict)
    #: The keys removed (or, on a dry run, that would be), in listing order.
    keys: list[str] = field(default_factory=list)
    #: Killed runs' temporary folders removed (or, on a dry run, that would be).
    temp_folders: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(z.files for z in self.zones.values())

    @property
    def bytes(self) -> int:
        return sum(z.bytes for z in self.zones.values())

    def to_dict(self, max_keys: int = 1000) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "dry_run": self.dry_run,
            "files": self.files,
            "bytes": self.bytes,
            "zones": {name: asdict(zone) for name, zone in self.zones.items()},
            "keys": self.keys[:max_keys],
            "keys_truncated": len(self.keys) > max_keys,
            "temp_folders": self.temp_folders,
        }


def _raw_id(key: str) -> str:
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


def _dataset(key: str, prefix: str) -> str:
    return key[len(prefix) :].split("/", 1)[0]


def candidates(
    lake: Lake, as_of: dt.date, zones: Iterable[str] | None = None
) -> tuple[PruneResult, list[Entry]]:
    """What a prune on ``as_of`` removes (nothing is deleted here)."""
    result = PruneResult(as_of=as_of.isoformat(), dry_run=True)
    chosen: list[Entry] = []
    processed: dict[str, set[str]] = {}
    for zone, prefixes in zone_prefixes().items():
        if zones is not None and zone not in zones:
            continue
        days = RETENTION_DAYS[zone]
        stats = ZoneResult(zone, days, (as_of - dt.timedelta(days=days)).isoformat())
        result.zones[zone] = stats
        for prefix in prefixes:
            folder_dates: dict[str, dt.date | None] = {}
            for entry in scan(lake, prefix):
                folder = entry.key.rpartition("/")[0]
                if folder not in folder_dates:  # every file of a partition shares its date
                    folder_dates[folder] = key_date(folder)
                day = folder_dates[folder] or entry.modified.date()
                if not expired(day, days, as_of):
                    continue
                dataset = _dataset(entry.key, prefix)
                if zone == "raw":
                    if dataset not in processed:
                        processed[dataset] = ledger.processed_raw_ids(lake, dataset)
                    if _raw_id(entry.key) not in processed[dataset]:
                        stats.kept_unprocessed += 1
                        continue
                stats.files += 1
                stats.bytes += entry.size
                stats.datasets[dataset] = stats.datasets.get(dataset, 0) + 1
                chosen.append(entry)
                result.keys.append(entry.key)
    return result, chosen


def prune(
    lake: Lake,
    *,
    as_of: dt.date | None = None,
    dry_run: bool = False,
    zones: Iterable[str] | None = None,
    run_id: str = "prune",
) -> PruneResult:
    """Remove every file past its zone's retention (or, with ``dry_run``, only list them)."""
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    zones = list(zones) if zones is not None else None
    for zone in zones or []:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r} (known: {', '.join(ZONES)})")
    with transform_lock(lake, run_id):
        result, chosen = candidates(lake, as_of, zones)
        result.dry_run = dry_run
        if not dry_run:
            _delete(lake, [e.key for e in chosen])
        if zones is None or SNAPSHOTS in zones:
            result.zones[SNAPSHOTS] = prune_snapshots(lake, as_of, dry_run=dry_run)
    result.temp_folders = sweep_temp(dry_run=dry_run)
    return result


def sweep_temp(*, dry_run: bool = False) -> list[str]:
    """Remove this user's ``peak-*`` temporary folders in which nothing (the folder, any file
    or folder inside) changed for :data:`STALE_TEMP_AGE`: what killed runs left behind."""
    limit = dt.datetime.now(dt.UTC).timestamp() - STALE_TEMP_AGE.total_seconds()
    stale: list[str] = []
    for path in sorted(Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*")):
        try:
            if path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
            if _newest_change(path) >= limit:
                continue
        except OSError:  # removed meanwhile, or not ours to read
            continue
        stale.append(str(path))
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
    return stale


def _newest_change(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
    return newest


def snapshot_names() -> list[str]:
    """The dbt project's snapshots (``dbt_project/snapshots/*.yml``)."""
    names = []
    for path in sorted((PROJECT_DIR / "snapshots").glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names += [s["name"] for s in document.get("snapshots") or []]
    return names


def prune_snapshots(lake: Lake, as_of: dt.date, *, dry_run: bool = False) -> ZoneResult:
    """Remove the snapshot versions closed more than :data:`SNAPSHOT_RETENTION_DAYS` before
    ``as_of`` from the local warehouse's files (both: dbt's and the serving copy)."""
    cutoff = as_of - dt.timedelta(days=SNAPSHOT_RETENTION_DAYS)
    stats = ZoneResult(SNAPSHOTS, SNAPSHOT_RETENTION_DAYS, cutoff.isoformat())
    if not lake.is_local:
        stats.note = "the warehouse is Athena's: its snapshots are not pruned here"
        return stats
    names = set(snapshot_names())
    # Closed more than the retention ago: the day it was closed is before the cutoff.
    expired = f"dbt_valid_to is not null and cast(dbt_valid_to as date) < date '{cutoff}'"

    def choose(table: warehouse_files.Table) -> str | None:
        if table.name not in names or "dbt_valid_to" not in table.columns:
            return None
        return expired

    files = warehouse_files.warehouse_files(lake)
    for path in files:
        removed = warehouse_files.remove(path, choose, dry_run=dry_run)
        if path == files[0]:  # counted once: the serving copy holds the same versions
            for table, rows in removed.items():
                name = table.rsplit(".", 1)[-1]
                stats.datasets[name] = stats.datasets.get(name, 0) + rows
                stats.rows += rows
    return stats


def _delete(lake: Lake, keys: list[str]) -> None:
    if not keys:
        return
    if lake.is_local:
        root = str(Path(lake.root))
        folders: set[str] = set()
        for key in keys:
            path = os.path.join(root, key)
            try:  # noqa: SIM105 (contextlib.suppress costs a context manager per file)
                os.unlink(path)
            except FileNotFoundError:
                pass
            folders.add(path.rpartition(os.sep)[0])
        _remove_empty(folders, Path(root))
        return
    import boto3

    s3 = (lake.boto3_session or boto3.session.Session()).client("s3")
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        answer = s3.delete_objects(
            Bucket=lake.bucket,
            Delete={"Objects": [{"Key": lake.prefix + k} for k in chunk], "Quiet": True},
        )
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"{len(errors)} object(s) not deleted, first {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message')}"
            )


def _remove_empty(folders: set[str], root: Path) -> None:
    """Remove the partition folders a prune emptied, then their parents if that left them
    empty (each parent tried once); the zone folders (``raw/``, ``processed/``...) stay."""
    base = len(root.parts)
    parents: set[Path] = set()
    for folder in folders:
        path = Path(folder)
        if len(path.parts) - base < 2:
            continue
        try:
            os.rmdir(path)
        except OSError:  # not empty (or already gone)
            continue
        parents.add(path.parent)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        while len(parent.parts) - base >= 2:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
