"""What every artefact is built with: the repository root, deterministic zips (sorted
entries, fixed timestamps) written under their content hash, our packages' files, and the
installed distributions' dependency closure and pins."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The repository (this file is peak/ops/deploy/artefacts.py).
REPO_ROOT = Path(__file__).resolve().parents[3]

#: Lambda's and Glue 5.0's Python: what the project runs and is packaged with.
RUNTIME_PYTHON = "3.11"


@dataclass
class Artefact:
    name: str  # what it is
    key: str  # relative to the artefacts prefix (and to dist/artifacts/)
    size: int
    sha256: str
    contents: list[str] = field(default_factory=list)


_EPOCH = (1980, 1, 1, 0, 0, 0)


def _zip_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A deterministic zip: sorted names, fixed timestamps and modes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _package_files(name: str, data_patterns: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """A package's Python files (and data files matching its patterns), by archive name; a
    subpackage (``peak.core``) comes with its parents' ``__init__.py``."""
    parts = name.split(".")
    root = REPO_ROOT.joinpath(*parts)
    if not (root / "__init__.py").exists():
        raise FileNotFoundError(f"{root} is not a package")
    parents = [REPO_ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    out = [(p.relative_to(REPO_ROOT).as_posix(), p.read_bytes()) for p in parents]
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(REPO_ROOT).as_posix()
        if path.suffix == ".py" or any(path.match(p) for p in data_patterns):
            out.append((rel, path.read_bytes()))
    return out


def _top_level(packages: Iterable[str]) -> list[str]:
    return sorted({p.split(".")[0] for p in packages})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(out: Path, key: str, data: bytes, name: str, contents: list[str]) -> Artefact:
    path = out / "artifacts" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Artefact(name=name, key=key, size=len(data), sha256=_sha(data), contents=contents)


def _hashed(folder: str, stem: str, data: bytes, suffix: str) -> str:
    return f"{folder}/{stem}-{_sha(data)[:12]}{suffix}"


def _zip_artefact(
    out: Path, name: tuple[str, str], files: list[Any], title: str, contents: list[str]
) -> Artefact:
    """A zip of ``files`` written under its content hash (``name`` = kind, stem)."""
    blob = _zip_bytes(files)
    return _write(out, _hashed(*name, blob, ".zip"), blob, title, contents)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(names: Iterable[str]) -> set[str]:
    """Installed distributions needed by ``names`` (markers evaluated for this Python, the
    extras a requirement asks for included)."""
    from packaging.requirements import Requirement

    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(_canonical(n), frozenset[str]()) for n in names]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            wanted = {"", *extras}
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": e}) for e in wanted
            ):
                continue
            todo.append((_canonical(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def _pinned(names: Iterable[str]) -> list[str]:
    return [f"{metadata.distribution(n).metadata['Name']}=={metadata.version(n)}" for n in names]
