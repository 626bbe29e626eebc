"""An atomic write that fails (a full disk) leaves nothing behind: no hidden part-file.

`Lake.write_bytes` and `Lake.put_file` write a hidden `.<name>.tmp-<hex>` beside the target and
rename it; a write that failed half-way left that file in the lake forever.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from peak.core.lake import Lake


def disk_full_after(limit: int):
    """A stand-in for the OS: a write of more than ``limit`` bytes fails with ENOSPC after
    writing ``limit`` of them."""

    def write_bytes(path: Path, data: bytes) -> int:
        with open(path, "wb") as fh:
            fh.write(data[:limit])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    return write_bytes


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".*") if p.is_file())


def test_a_failed_write_leaves_no_hidden_part_file(tmp_path, monkeypatch):
    lake = Lake.from_uri(str(tmp_path / "lake"))
    lake.write_bytes("_state/a.json", b"{}")
    monkeypatch.setattr(Path, "write_bytes", disk_full_after(10))
    with pytest.raises(OSError, match="No space left"):
        lake.write_bytes("_state/b.json", b"x" * 1000)
    assert leftovers(tmp_path / "lake") == []
    assert not lake.path("_state/b.json").exists()


def test_a_failed_copy_leaves_no_hidden_part_file(tmp_path, monkeypatch):
    lake = Lake.from_uri(str(tmp_path / "lake"))
    src = tmp_path / "export.csv"
    src.write_bytes(b"x" * 1000)

    def copyfile(a, b, **kwargs):
        Path(b).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(b))

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with pytest.raises(OSError, match="No space left"):
        lake.put_file(src, "raw/x/export.csv")
    assert leftovers(tmp_path / "lake") == []
    assert src.exists()  # the source is untouched
