"""The Lambdas' artefacts: the ingestion function's zip and the unsubscribe function's (our
packages only), and the deps layer both use (what the AWS SDK for pandas layer and the runtime
lack), whose wheels are checked to run on Lambda's python3.11 x86_64."""

from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

from peak.ops.deploy.artefacts import (
    REPO_ROOT,
    Artefact,
    _hashed,
    _package_files,
    _top_level,
    _write,
    _zip_artefact,
    _zip_bytes,
    dependency_closure,
)

#: Our packages in the Lambda function's zip, and the data files each carries.
LAMBDA_PACKAGES: dict[str, tuple[str, ...]] = {
    "peak.core": (),
    "ingestion": (),
    "contracts": ("*.yml",),
}
#: What the Lambda code imports from outside the repository (distribution names).
LAMBDA_REQUIRES = ("pydantic", "pydantic-settings", "pyyaml", "pyarrow", "numpy", "boto3")
#: Already in the Lambda environment: the AWS SDK for pandas layer and the runtime's boto3.
LAMBDA_PROVIDED = ("pyarrow", "numpy", "pandas", "boto3")


#: The unsubscribe function (``activation.unsubscribe.handler.handler``): the packages and the
#: single modules it imports, nothing of the sinks. It needs pydantic (the settings) from the
#: deps layer and boto3 from the runtime, not the AWS SDK for pandas layer.
UNSUBSCRIBE_PACKAGES: dict[str, tuple[str, ...]] = {"peak.core": (), "activation.unsubscribe": ()}
UNSUBSCRIBE_MODULES = ("activation/addresses.py",)
UNSUBSCRIBE_HANDLER = "activation.unsubscribe.handler.handler"


def build_lambda_function(out: Path) -> Artefact:
    files = [f for pkg, data in LAMBDA_PACKAGES.items() for f in _package_files(pkg, data)]
    return _zip_artefact(
        out, ("lambda", "ingest"), files, "Lambda function", _top_level(LAMBDA_PACKAGES)
    )


def build_unsubscribe_function(out: Path) -> Artefact:
    files = [f for pkg, data in UNSUBSCRIBE_PACKAGES.items() for f in _package_files(pkg, data)]
    files += [(m, (REPO_ROOT / m).read_bytes()) for m in UNSUBSCRIBE_MODULES]
    contents = sorted([*UNSUBSCRIBE_PACKAGES, *UNSUBSCRIBE_MODULES])
    return _zip_artefact(
        out, ("lambda", "unsubscribe"), files, "Unsubscribe Lambda function", contents
    )


def lambda_vendored() -> list[str]:
    """The distributions the deps layer carries: our Lambda code's closure, minus what the
    managed layer and the runtime provide (and their own dependencies)."""
    return sorted(dependency_closure(LAMBDA_REQUIRES) - dependency_closure(LAMBDA_PROVIDED))


#: glibc of Lambda's python3.11 runtime (Amazon Linux 2).
LAMBDA_GLIBC = (2, 26)
_MANYLINUX_ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def runs_on_lambda(tag: str) -> bool:
    """Whether a wheel tag (``cp311-cp311-manylinux_2_17_x86_64``) runs on python3.11 x86_64."""
    python, abi, platform = tag.split("-")
    if platform == "any":
        return python.startswith("py3") or python in ("cp311", "py2.py3")
    if python not in ("cp311", "py3") and not python.startswith("cp3"):
        return False
    if abi not in ("cp311", "abi3", "none"):
        return False
    match = re.fullmatch(r"(manylinux\d+|manylinux_(\d+)_(\d+))_x86_64", platform)
    if not match:
        return False
    if match.group(2):
        glibc = (int(match.group(2)), int(match.group(3)))
    else:
        glibc = _MANYLINUX_ALIASES.get(match.group(1), (99, 0))
    return glibc <= LAMBDA_GLIBC


def _distribution_files(name: str) -> list[tuple[str, bytes]]:
    dist = metadata.distribution(name)
    wheel = dist.read_text("WHEEL")
    if wheel is None:
        raise RuntimeError(f"{name} was not installed from a wheel: cannot tell where it runs")
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    if not any(runs_on_lambda(t) for t in tags):
        raise RuntimeError(
            f"{name} {dist.version} is built for {', '.join(tags)}, not Lambda's python3.11 "
            "x86_64: install the project on Linux x86_64 with Python 3.11, or pip download "
            "--platform manylinux2014_x86_64 --python-version 3.11 --only-binary=:all: it"
        )
    out = []
    for item in dist.files or []:
        rel = str(item)
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        path = Path(str(dist.locate_file(item)))
        if path.is_file():
            out.append((rel.replace("\\", "/"), path.read_bytes()))
    return out


def build_lambda_deps(out: Path) -> Artefact:
    names = lambda_vendored()
    files = [(f"python/{rel}", data) for name in names for rel, data in _distribution_files(name)]
    blob = _zip_bytes(files)
    versions = [f"{n}=={metadata.version(n)}" for n in names]
    return _write(
        out, _hashed("lambda", "ingest-deps", blob, ".zip"), blob, "Lambda deps layer", versions
    )
