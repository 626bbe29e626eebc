"""One run at a time per lake for a stage: the transform (and prune), and activation.

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
from collections.abc import Iterator
from contextlib import contextmanager

from peak.lake import Lake


class LockHeld(RuntimeError):
    """Another run holds the lock."""


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
