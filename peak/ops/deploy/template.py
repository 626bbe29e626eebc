"""``peak deploy package``: everything the AWS deployment needs, built into ``dist/``.

The stack is ``infra/template.yaml`` (plain CloudFormation, see ``docs/deploy.md``). That file is
the *source*; :func:`package` builds the artefacts, then renders ``dist/template.json`` from it
with the parts that must never drift from the code:

- ``Mappings.Peak``: the lake's URI and the uploaded artefacts' keys. Artefact names carry
  their content's sha256 (``ingest-3f2a…zip``), so CloudFormation updates the Lambda code, the
  layer and the Glue job exactly when their content changed. Zips are deterministic (sorted
  entries, fixed timestamps): the same code packages to the same bytes.
- the lifecycle rules of every bucket, from :data:`peak.ops.prune.RETENTION_DAYS`;
- one ``lake-access`` policy per role (:data:`LAKE_ACCESS`), scoped to the lake prefixes of
  :mod:`peak.core.lake`;
- one ``AWS::Glue::Table`` per contract, exactly :func:`peak.model.catalog.table_input` for the lake
  (so ``peak catalog sync --dry-run`` after a deploy reports every table unchanged).

The artefacts (``dist/artifacts/``, uploaded as they are with ``aws s3 sync``):

- ``lambda/ingest-<sha>.zip``: our packages ``peak``, ``ingestion`` and ``contracts`` (with the
  YAML contracts) and nothing else. pyarrow and numpy come from the AWS SDK for pandas managed
  layer (a template parameter), boto3 from the Lambda runtime.
- ``lambda/ingest-deps-<sha>.zip``: a small layer of what the managed layer lacks (pydantic,
  pydantic-settings, PyYAML and their dependencies), copied from the installed packages after
  checking their wheel tags run on Lambda's python3.11 x86_64 (a manylinux wheel up to glibc
  2.26, or pure Python).
- ``glue/peak_transform-<sha>.py``: the Glue job's script, a three-line entry point calling
  :func:`glue.job.main`; and ``glue/peak_glue-<version>-py3-none-any.whl``: the packages it
  imports (``glue``, ``peak``, ``contracts`` with the YAML files) as a wheel whose
  ``Requires-Dist`` pins what Glue 5.0 lacks. The job installs it with
  ``--additional-python-modules``: a wheel is installed as files, where ``--extra-py-files``
  would import from the zip and ``contracts`` could not list its YAML files.
- ``codebuild/source-<sha>.zip``: the source the dbt and activation CodeBuild projects run
  (``python -m peak build|activate``), with ``requirements-codebuild.txt``: every package,
  dependencies included, pinned to the versions the tests ran with.

``deploy package`` writes no run report into the lake: the lake it renders for may not exist
yet. ``dist/manifest.json`` is its record (artefact, key, size, sha256, and the lake).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.metadata as metadata
import io
import json
import re
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

import contracts
from peak.core import layout
from peak.core.lake import Lake
from peak.model import catalog
from peak.ops import prune

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
DEFAULT_OUT = REPO_ROOT / "dist"

# ---------------------------------------------------------------------------------------------
# What goes where.
# ---------------------------------------------------------------------------------------------

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

#: The packages the Glue job imports, in its wheel.
GLUE_PACKAGES: dict[str, tuple[str, ...]] = {
    "glue": (),
    "peak.core": (),
    "contracts": ("*.yml",),
}
GLUE_WHEEL_NAME = "peak_glue"
#: Pinned in the wheel's Requires-Dist for the Spark job (Glue 5.0, Python 3.11), at the
#: versions installed here: Glue 5.0 lacks them or ships other versions. pyspark, pyarrow,
#: pandas, numpy and boto3 are Glue 5.0's own and are left alone.
GLUE_REQUIRES = (
    "sqlglot",
    "duckdb",
    "great-expectations",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
)

#: The Python-shell job's (Python 3.9) pins: it brings every dependency itself.
PYSHELL_REQUIREMENTS = REPO_ROOT / "glue" / "requirements-pyshell.txt"
PYSHELL_PYTHON = "3.9"
#: Lambda's and Glue 5.0's Python: what the project runs and is packaged with.
RUNTIME_PYTHON = "3.11"

#: The CodeBuild source: these paths of the repository, and a pinned requirements file.
SOURCE_PATHS = (
    "peak",
    "contracts",
    "ingestion",
    "glue",
    "activation",
    "dbt_project",
    "pyproject.toml",
    "profiles.yml.example",
    "README.md",
)
SOURCE_EXCLUDE = ("target", "logs", "dbt_packages", "__pycache__", ".user.yml")
#: What ``python -m peak build --target athena`` and ``activate`` import, pinned.
CODEBUILD_REQUIRES = (
    "typer",
    "rich",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "pyarrow",
    "pandas",
    "numpy",
    "boto3",
    "awswrangler",
    "sqlglot",
    "duckdb",
    "dbt-core",
    "dbt-athena",
    "redis",
    "hubspot-api-client",
)
CODEBUILD_REQUIREMENTS = "requirements-codebuild.txt"

#: The Athena bucket's layout: query results (7 days) and dbt's s3_data_dir.
ATHENA_RESULTS_PREFIX = "results/"
DBT_DATA_PREFIX = "dbt/"

#: The template's Spark defaults and the Python-shell (DuckDB) job's ``MaxCapacity`` (1 DPU:
#: 4 vCPU, 16 GB; the other choice, 1/16 DPU, has 1 GB), read by ``peak cost``.
GLUE_DEFAULT_WORKER_TYPE = "G.1X"
GLUE_DEFAULT_WORKERS = 2
PYSHELL_MAX_CAPACITY = 1.0
GLUE_DPU_PER_WORKER = {"G.1X": 1.0, "G.2X": 2.0, "G.4X": 4.0, "G.8X": 8.0}
LAMBDA_MEMORY_MB = 1024

# ---------------------------------------------------------------------------------------------
# The lake's prefixes, from peak/lake.py, and who may do what under them.
# ---------------------------------------------------------------------------------------------


def lake_prefixes() -> dict[str, str]:
    """Name -> lake prefix of every area a role is granted (relative to the lake root)."""
    stem = prune.key_stem
    return {
        "raw": stem(layout.raw_key),
        "raw_parquet": stem(layout.raw_parquet_key),
        "processed": stem(layout.processed_key),
        "quarantine": stem(layout.quarantine_rows_key),
        "ingest_ledger": stem(layout.ingest_ledger_key),
        "transform_ledger": stem(layout.transform_ledger_key),
        "transform_lock": layout.TRANSFORM_LOCK_KEY,
        "activation_state": stem(layout.activation_state_key),
        "runs": stem(layout.run_report_key),
        "staging": stem(layout.staging_prefix),
        "quality": layout.QUALITY_PREFIX,
        "outbox": stem(layout.outbox_prefix),
    }


@dataclass(frozen=True)
class LakeGrant:
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    #: s3:ListBucket on the lake: unconditional (a missing key answers 404, not 403, which
    #: Lake.exists relies on), only under ``list_prefixes``, or not at all.
    list_all: bool = False
    list_prefixes: tuple[str, ...] = ()


#: Role (logical id) -> what it may do in the lake. Nothing else is granted on the lake bucket.
LAKE_ACCESS: dict[str, LakeGrant] = {
    "IngestRole": LakeGrant(
        read=("ingest_ledger",),
        write=("raw", "raw_parquet", "quarantine", "ingest_ledger", "runs"),
        list_all=True,
    ),
    "TransformRole": LakeGrant(
        read=(
            "ingest_ledger",
            "transform_ledger",
            "raw_parquet",
            "processed",
            "staging",
            "quality",
            "transform_lock",
        ),
        write=(
            "staging",
            "processed",
            "quarantine",
            "transform_ledger",
            "transform_lock",
            "quality",
            "runs",
        ),
        delete=("staging", "processed", "transform_lock"),
        list_all=True,
    ),
    # dbt reads the processed zone through Athena (with its own credentials) and writes only
    # its run report to the lake: its tables go to the Athena bucket's dbt/ prefix.
    "DbtRole": LakeGrant(read=("processed",), write=("runs",), list_prefixes=("processed",)),
    "ActivationRole": LakeGrant(
        read=("activation_state", "outbox"),
        write=("activation_state", "outbox", "runs"),
        delete=("activation_state",),
        list_all=True,
    ),
}


def _object_arn(lake: Lake, prefix: str) -> dict[str, str]:
    pattern = prefix.rstrip("/") + "*" if prefix == lake_prefixes()["staging"] else prefix + "*"
    # Spark on Glue may write a "_staging_$folder$" marker beside the staging folder.
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{LakeBucketName}}/{lake.prefix}{pattern}"}


def lake_policy(lake: Lake, grant: LakeGrant) -> dict[str, Any]:
    """The ``lake-access`` inline policy of one role."""
    names = lake_prefixes()
    statements: list[dict[str, Any]] = []
    for sid, actions, areas in (
        ("LakeRead", ["s3:GetObject"], grant.read),
        ("LakeWrite", ["s3:PutObject", "s3:AbortMultipartUpload"], grant.write),
        ("LakeDelete", ["s3:DeleteObject"], grant.delete),
    ):
        if areas:
            statements.append(
                {
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": [_object_arn(lake, names[a]) for a in areas],
                }
            )
    bucket = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${LakeBucketName}"}
    if grant.list_all:
        statements.append(
            {"Sid": "LakeList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket}
        )
    elif grant.list_prefixes:
        statements.append(
            {
                "Sid": "LakeList",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket,
                "Condition": {
                    "StringLike": {
                        "s3:prefix": [lake.prefix + names[a] + "*" for a in grant.list_prefixes]
                    }
                },
            }
        )
    return {
        "PolicyName": "lake-access",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
    }


# ---------------------------------------------------------------------------------------------
# CloudFormation YAML (short-form intrinsic functions) as plain data.
# ---------------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = SOURCE_TEMPLATE) -> dict[str, Any]:
    """A CloudFormation YAML template as data (``!Sub x`` -> ``{"Fn::Sub": x}``)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)


# ---------------------------------------------------------------------------------------------
# Artefacts.
# ---------------------------------------------------------------------------------------------


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


# -- Lambda -----------------------------------------------------------------------------------


def _zip_artefact(
    out: Path, name: tuple[str, str], files: list[Any], title: str, contents: list[str]
) -> Artefact:
    """A zip of ``files`` written under its content hash (``name`` = kind, stem)."""
    blob = _zip_bytes(files)
    return _write(out, _hashed(*name, blob, ".zip"), blob, title, contents)


def build_lambda_function(out: Path) -> Artefact:
    files = [f for pkg, data in LAMBDA_PACKAGES.items() for f in _package_files(pkg, data)]
    return _zip_artefact(
        out, ("lambda", "ingest"), files, "Lambda function", _top_level(LAMBDA_PACKAGES)
    )


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
        path = Path(dist.locate_file(item))
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


# -- Glue -------------------------------------------------------------------------------------

GLUE_ENTRY = '''"""AWS Glue entry point of the Peak Fitness transform.

Generated by `peak deploy package`. Glue runs this file as __main__. The code is the
peak_glue wheel the job installs with --additional-python-modules; glue.job.main resolves
the job's arguments (--lake, --engine...).
"""

from glue.job import main

if __name__ == "__main__":
    main()
'''


def _b64_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _pinned(names: Iterable[str]) -> list[str]:
    return [f"{metadata.distribution(n).metadata['Name']}=={metadata.version(n)}" for n in names]


def project_version() -> str:
    import tomllib

    with open(REPO_ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def pyshell_requirements() -> list[str]:
    """The Python-shell job's pins (``name==version``), from ``glue/requirements-pyshell.txt``."""
    lines = PYSHELL_REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    pins = [line.split("#", 1)[0].strip() for line in lines]
    pins = [p for p in pins if p]
    for pin in pins:
        if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", pin):
            raise ValueError(f"{PYSHELL_REQUIREMENTS.name}: {pin!r} is not name==version")
    return pins


def glue_wheel_requires() -> list[str]:
    """Requires-Dist of the Glue wheel: one wheel serves both Glue jobs, the Spark job on
    Python 3.11 (Glue 5.0) and the Python-shell job on Python 3.9, told apart by markers."""
    spark = [f'{r}; python_version >= "{RUNTIME_PYTHON}"' for r in _pinned(GLUE_REQUIRES)]
    shell = [f'{r}; python_version < "{RUNTIME_PYTHON}"' for r in pyshell_requirements()]
    return spark + shell


def build_glue_wheel(out: Path) -> Artefact:
    files = [f for pkg, data in GLUE_PACKAGES.items() for f in _package_files(pkg, data)]
    digest = _sha(_zip_bytes(files))[:12]
    version = f"{project_version()}+g{digest}"
    info = f"{GLUE_WHEEL_NAME}-{version}.dist-info"
    requires = "".join(f"Requires-Dist: {r}\n" for r in glue_wheel_requires())
    meta = (
        "Metadata-Version: 2.1\n"
        f"Name: {GLUE_WHEEL_NAME.replace('_', '-')}\n"
        f"Version: {version}\n"
        "Summary: Peak Fitness transform for AWS Glue (glue, peak, contracts)\n"
        f"Requires-Python: >={PYSHELL_PYTHON},<3.12\n"
        f"{requires}"
    )
    wheel = (
        "Wheel-Version: 1.0\nGenerator: peak deploy package\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    entries = [*files, (f"{info}/METADATA", meta.encode()), (f"{info}/WHEEL", wheel.encode())]
    top_level = "".join(f"{p}\n" for p in _top_level(GLUE_PACKAGES))
    entries.append((f"{info}/top_level.txt", top_level.encode()))
    record = "".join(f"{n},sha256={_b64_digest(d)},{len(d)}\n" for n, d in sorted(entries))
    record += f"{info}/RECORD,,\n"
    entries.append((f"{info}/RECORD", record.encode()))
    blob = _zip_bytes(entries)
    key = f"glue/{GLUE_WHEEL_NAME}-{version}-py3-none-any.whl"
    return _write(
        out, key, blob, "Glue wheel", [*_top_level(GLUE_PACKAGES), *glue_wheel_requires()]
    )


def build_glue_script(out: Path) -> Artefact:
    data = GLUE_ENTRY.encode()
    return _write(
        out, _hashed("glue", "peak_transform", data, ".py"), data, "Glue script", ["glue.job.main"]
    )


# -- CodeBuild --------------------------------------------------------------------------------


def codebuild_requirements() -> str:
    lines = [
        "# GENERATED by `peak deploy package`: the versions the test suite ran with (uv.lock),",
        "# every package pinned, dependencies included.",
        *_pinned(sorted(dependency_closure(CODEBUILD_REQUIRES))),
    ]
    return "\n".join(lines) + "\n"


def _source_files() -> list[tuple[str, bytes]]:
    out = []
    for item in SOURCE_PATHS:
        path = REPO_ROOT / item
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            rel = file.relative_to(REPO_ROOT)
            if not file.is_file() or any(part in SOURCE_EXCLUDE for part in rel.parts):
                continue
            if file.suffix in (".pyc", ".duckdb") or file.name.startswith("."):
                continue
            out.append((rel.as_posix(), file.read_bytes()))
    return out


def build_codebuild_source(out: Path) -> Artefact:
    files = [*_source_files(), (CODEBUILD_REQUIREMENTS, codebuild_requirements().encode())]
    contents = [*SOURCE_PATHS, CODEBUILD_REQUIREMENTS]
    return _zip_artefact(out, ("codebuild", "source"), files, "CodeBuild source", contents)


# ---------------------------------------------------------------------------------------------
# The template.
# ---------------------------------------------------------------------------------------------

#: Mapping key -> which artefact's key it holds.
ARTIFACT_MAPPING = {
    "LambdaFunction": "Lambda function",
    "LambdaDepsLayer": "Lambda deps layer",
    "GlueScript": "Glue script",
    "GlueWheel": "Glue wheel",
    "Source": "CodeBuild source",
}
#: Bucket (logical id) -> its lifecycle rules, rendered from peak/prune.py.
LAKE_BUCKET, INBOX_BUCKET, ATHENA_BUCKET = "LakeBucket", "InboxBucket", "AthenaBucket"


def table_logical_id(dataset: str) -> str:
    return "Table" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", dataset))


def bucket_rules(lake: Lake) -> dict[str, list[dict[str, Any]]]:
    return {
        LAKE_BUCKET: prune.lifecycle_rules(lake.prefix),
        INBOX_BUCKET: [
            prune.expiry_rule("retention-inbox", prune.INBOX_RETENTION_DAYS),
            prune.abort_multipart_rule(),
        ],
        ATHENA_BUCKET: [
            prune.expiry_rule(
                "retention-query-results",
                prune.ATHENA_RESULTS_RETENTION_DAYS,
                ATHENA_RESULTS_PREFIX,
            ),
            prune.abort_multipart_rule(),
        ],
    }


def render_template(
    lake: Lake,
    artefacts: dict[str, Artefact],
    source: Path = SOURCE_TEMPLATE,
) -> dict[str, Any]:
    """The deployable template for ``lake`` (an ``s3://`` URI) and the built artefacts."""
    if lake.is_local:
        raise ValueError(
            f"the deployment's lake must be on S3, not the local folder {lake.root} "
            "(pass --lake s3://bucket[/prefix] or set PEAK_LAKE)"
        )
    template = copy.deepcopy(load_template(source))
    resources = template["Resources"]
    template.setdefault("Metadata", {})["Peak"] = {
        "RenderedBy": "peak deploy package",
        "Lake": lake.root,
        "Contracts": sorted(contracts.load_all()),
        "RetentionDays": dict(prune.RETENTION_DAYS),
    }
    param = template["Parameters"]["LakeBucketName"]
    param["Default"] = lake.bucket
    param["AllowedValues"] = [lake.bucket]
    param["Description"] = (
        f"The lake bucket; the Glue tables and lifecycle rules were rendered for {lake.root}."
    )
    template.setdefault("Mappings", {})["Peak"] = {
        "Lake": {"Uri": lake.root},
        "Artifacts": {m: artefacts[name].key for m, name in ARTIFACT_MAPPING.items()},
        "Athena": {"ResultsPrefix": ATHENA_RESULTS_PREFIX, "DbtPrefix": DBT_DATA_PREFIX},
    }
    for bucket, rules in bucket_rules(lake).items():
        resources[bucket]["Properties"]["LifecycleConfiguration"] = {"Rules": rules}
    for role, grant in LAKE_ACCESS.items():
        resources[role]["Properties"].setdefault("Policies", []).append(lake_policy(lake, grant))
    for contract in contracts.load_all().values():
        resources[table_logical_id(contract.dataset)] = {
            "Type": "AWS::Glue::Table",
            "Properties": {
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseName": {"Ref": "ProcessedDatabase"},
                "TableInput": catalog.table_input(contract, lake),
            },
        }
    return template


# ---------------------------------------------------------------------------------------------
# Package.
# ---------------------------------------------------------------------------------------------


@dataclass
class PackageResult:
    out: str
    lake: str
    artefacts: list[Artefact]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "lake": self.lake,
            "artefacts": [asdict(a) for a in self.artefacts],
        }


def package(lake: Lake, out: Path = DEFAULT_OUT) -> PackageResult:
    """Build every artefact into ``out/artifacts/`` and render ``out/template.json``."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != RUNTIME_PYTHON:
        raise RuntimeError(f"package with Python {RUNTIME_PYTHON} (Lambda's and Glue 5.0's Python)")
    if lake.is_local:
        render_template(lake, {})  # raises the explanatory error
    artefacts_dir = out / "artifacts"
    if artefacts_dir.exists():
        import shutil

        shutil.rmtree(artefacts_dir)
    built = [
        build_lambda_function(out),
        build_lambda_deps(out),
        build_glue_script(out),
        build_glue_wheel(out),
        build_codebuild_source(out),
    ]
    by_name = {a.name: a for a in built}
    template = render_template(lake, by_name)
    text = json.dumps(template, indent=1, sort_keys=False) + "\n"
    (out / "template.json").write_text(text, encoding="utf-8")
    data = text.encode()
    built.append(Artefact("CloudFormation template", "../template.json", len(data), _sha(data)))
    result = PackageResult(out=str(out), lake=lake.root, artefacts=built)
    (out / "manifest.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result
