"""One run at a time per lake for a stage: the transform (and prune, :func:`transform_lock`), and
activation.

Locally the lock is an ``flock`` on a file in the lake (the kernel releases it when a run dies).
On S3 it is an object created with a conditional PUT (``Lake.create``) holding the owner's run
id and start time; the owner deletes it when done, and a lock older than ``stale_after`` is a
killed run's and is taken over. ``stale_after`` must exceed the longest a live run can last
(the deployed job's timeout): the infrastructure tests check both stages' values.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from peak.core import layout
from peak.core.errors import LockHeld, TransformError
from peak.core.lake import Lake


@contextmanager
def lake_lock(
    lake: Lake,
    key: str,
    run_id: str,
    *,
    what: str,
    stale_after: dt.timedelta,
    error: type[Exception] = LockHeld,
) -> Iterator[None]:
    """Hold the lock object ``key`` for ``run_id`` or raise ``error`` naming the holder."""
    if lake.is_local:
        path = lake.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise error(f"another {what} is running on {lake.root}") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    _take(lake, key, run_id, what, stale_after, error)
    try:
        yield
    finally:
        held = lake.read_json(key, default={}) or {}
        if held.get("run_id") == run_id:
            lake.delete(key)


def _take(
    lake: Lake,
    key: str,
    run_id: str,
    what: str,
    stale_after: dt.timedelta,
    error: type[Exception],
) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    body = json.dumps({"run_id": run_id, "since": now.isoformat()}).encode()
    if lake.create(key, body):
        return
    held = lake.read_json(key, default={}) or {}
    if not held and lake.create(key, body):  # released in between
        return
    try:
        since = dt.datetime.fromisoformat(held["since"])
    except (KeyError, TypeError, ValueError):
        since = None
    if since is None or now - since < stale_after:
        raise error(
            f"another {what} ({held.get('run_id', '?')}, since {held.get('since', '?')})"
            f" is running on {lake.root}; a lock older than {stale_after} is taken over"
        )
    lake.delete(key)  # a killed run's: whoever creates it next wins
    if not lake.create(key, body):
        raise error(f"another {what} took over the stale lock on {lake.root}")


#: When an S3 transform lock is a killed run's: the Glue jobs time out at 60 minutes, so a lock
#: twice that old has no live owner.
TRANSFORM_STALE_AFTER = dt.timedelta(minutes=120)


@contextmanager
def transform_lock(lake: Lake, run_id: str) -> Iterator[None]:
    """One transform (or prune) at a time per lake (:func:`lake_lock`); staging
    left by a killed run is removed. On S3 the Spark and the Python-shell Glue job may both be
    started on one lake: the second fails naming the first."""
    with lake_lock(
        lake,
        layout.TRANSFORM_LOCK_KEY,
        run_id,
        what="transform",
        stale_after=TRANSFORM_STALE_AFTER,
        error=TransformError,
    ):
        if not lake.is_local:
            yield
            return
        staging_root = lake.path(layout.staging_prefix(run_id)).parent
        if staging_root.exists():
            for stale in staging_root.iterdir():
                if stale.name != run_id:
                    shutil.rmtree(stale, ignore_errors=True)
        try:
            yield
        finally:
            shutil.rmtree(staging_root / run_id, ignore_errors=True)
            with suppress(OSError):
                staging_root.rmdir()  # only when empty
