"""Killed runs' temporary folders (a landing's ``peak-land-*``...) are swept by `peak prune`."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from peak.ops import prune


def _aged(path: Path, days: float) -> Path:
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_prune_removes_the_temp_folders_killed_runs_left(lake, tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # the system temporary folder
    killed = temp / "peak-land-killed"
    (killed / "inner").mkdir(parents=True)
    _aged(_aged(killed / "inner", 3), 3)
    _aged(killed, 3)
    live = temp / "peak-transform-live"  # an old folder a run still writes into
    live.mkdir()
    (live / "spill.tmp").write_bytes(b"x")
    _aged(live, 3)
    recent = temp / "peak-quality-recent"
    recent.mkdir()
    _aged(recent, 0.5)
    other = _aged(Path(tempfile.mkdtemp(prefix="other-", dir=temp)), 3)

    dry = prune.prune(lake, as_of=dt.date(2026, 12, 8), dry_run=True)
    assert dry.temp_folders == [str(killed)] and killed.exists()
    result = prune.prune(lake, as_of=dt.date(2026, 12, 8))
    assert result.to_dict()["temp_folders"] == [str(killed)]
    assert not killed.exists()
    assert live.exists() and recent.exists() and other.exists()
