"""dbt from ``peak``: the project's location, its profiles, its generated sources, and running it.

``peak build`` and ``peak docs`` run dbt in-process (``dbtRunner``) with the lake's absolute path
in ``PEAK_LAKE`` (``profiles.yml`` and the sources read it), dbt's target and log folders under
``<lake>/_dbt/`` (so two lakes never share dbt's state) and anonymous usage stats off.

The sources file (``models/staging/_sources.yml``) is generated from ``contracts/``: the column
lists, descriptions and freshness are written once, there. ``peak dbt-sources`` rewrites it and a
test fails when it is out of date.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import contracts
from peak.core.lake import Lake
from peak.core.layout import processed_prefix
from peak.core.report import ATHENA_BYTES_SCANNED
from peak.model import catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = REPO_ROOT / "dbt_project"
SOURCES_FILE = PROJECT_DIR / "models" / "staging" / "_sources.yml"
PROFILES_EXAMPLE = REPO_ROOT / "profiles.yml.example"
#: The dbt source that reads the processed zone.
SOURCE_NAME = "processed"
#: dbt's own state for one lake (target/ and logs/).
DBT_STATE_PREFIX = "_dbt/"

# ---------------------------------------------------------------------------------------------
# Sources, generated from the contracts
# ---------------------------------------------------------------------------------------------


def _local_location() -> str:
    """dbt-duckdb reads a source from this expression (``{name}`` is the table's name)."""
    prefix = processed_prefix("{name}")
    return (
        'read_parquet(\'{{ env_var("PEAK_LAKE", "lake") }}/'
        f"{prefix}*/*.parquet', hive_partitioning = true, union_by_name = true)"
    )


def sources_document() -> dict[str, Any]:
    """The ``_sources.yml`` content derived from the contracts."""
    tables = []
    for contract in contracts.load_all().values():
        pii = {c.name for c in contract.columns if c.pii}
        columns = [
            {
                "name": col["Name"],
                "description": col["Comment"],
                "data_type": col["Type"],
                **({"meta": {"pii": True}} if col["Name"] in pii else {}),
            }
            for col in (*catalog.columns(contract), *catalog.partition_keys(contract))
        ]
        fresh = contract.freshness
        # A snapshot dataset's partial files, for the models that tell who has left
        # (macros/exports.sql reads them from the source's meta).
        meta = (
            {"full_snapshot": True, "partial_files": list(contract.snapshot.partial_files)}
            if contract.snapshot is not None
            else None
        )
        tables.append(
            {
                "name": contract.dataset,
                "description": " ".join(contract.description.split()),
                **({"meta": meta} if meta else {}),
                "loaded_at_field": contracts.INGESTED_AT,
                "freshness": {
                    "warn_after": {"count": fresh.warn_after_hours, "period": "hour"},
                    "error_after": {"count": fresh.error_after_hours, "period": "hour"},
                },
                "columns": columns,
            }
        )
    return {
        "version": 2,
        "sources": [
            {
                "name": SOURCE_NAME,
                "description": (
                    "The processed zone: validated, typed, de-duplicated Parquet partitioned by "
                    "dt. On Athena, Glue tables with partition projection (`peak catalog sync`); "
                    "locally, read_parquet over the same folders."
                ),
                "database": (
                    "{{ 'awsdatacatalog' if target.type == 'athena' else target.database }}"
                ),
                "schema": "{{ env_var('PEAK_GLUE_DATABASE', 'peak_processed') }}",
                "config": {"external_location": _local_location()},
                "tables": tables,
            }
        ],
    }


HEADER = (
    "# GENERATED from contracts/*.yml by `peak dbt-sources`: do not edit by hand.\n"
    "# tests/test_dbt.py fails when this file is out of date.\n"
)


def sources_yaml() -> str:
    body = yaml.safe_dump(sources_document(), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def write_sources(path: Path = SOURCES_FILE) -> bool:
    """Rewrite the sources file; True when it changed."""
    text = sources_yaml()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def missing_sources(lake: Lake) -> list[str]:
    """Datasets with no processed partition yet: dbt cannot read a source with no files."""
    return [ds for ds in contracts.load_all() if not lake.list(processed_prefix(ds))]


# ---------------------------------------------------------------------------------------------
# Profiles and running dbt
# ---------------------------------------------------------------------------------------------


def profiles_dir(lake: Lake) -> Path:
    """Where ``profiles.yml`` is: $DBT_PROFILES_DIR, the current folder, the repository root,
    else the repository's example, copied under the lake's dbt folder."""
    candidates = [os.environ.get("DBT_PROFILES_DIR"), os.getcwd(), str(REPO_ROOT)]
    for folder in candidates:
        if folder and (Path(folder) / "profiles.yml").exists():
            return Path(folder)
    fallback = state_dir(lake) / "profiles"
    fallback.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROFILES_EXAMPLE, fallback / "profiles.yml")
    return fallback


def state_dir(lake: Lake) -> Path:
    if not lake.is_local:
        # dbt's target/ and logs/ are local files even when the lake is on S3.
        return Path(os.environ.get("PEAK_DBT_STATE_DIR", ".peak-dbt")).resolve()
    return lake.path(DBT_STATE_PREFIX)


def target_path(lake: Lake, target: str) -> Path:
    """dbt's target/ folder for one target (so local and athena never share partial parses)."""
    return state_dir(lake) / f"target-{target}"


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    seconds: float
    message: str = ""
    failures: int | None = None
    compiled_code: str | None = None
    #: Source freshness only: the newest loaded_at and its age in seconds.
    max_loaded_at: str | None = None
    age_seconds: float | None = None
    #: Athena only: the bytes its statement scanned (dbt-athena's adapter response).
    bytes_scanned: int | None = None


@dataclass
class DbtResult:
    command: str
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in ("error", "fail", "runtime error")]

    @property
    def bytes_scanned(self) -> int | None:
        """What the nodes' statements scanned on Athena (None on engines that don't say)."""
        scanned = [n.bytes_scanned for n in self.nodes if n.bytes_scanned is not None]
        return sum(scanned) if scanned else None

    def to_dict(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for node in self.nodes:
            by_status[node.status] = by_status.get(node.status, 0) + 1
        extra = {} if self.bytes_scanned is None else {ATHENA_BYTES_SCANNED: self.bytes_scanned}
        return {
            **extra,
            "command": self.command,
            "success": self.success,
            "error": self.error,
            "nodes": len(self.nodes),
            "by_status": by_status,
            "failed": [
                {"name": n.name, "status": n.status, "message": n.message} for n in self.failed
            ],
            "warnings": [
                {"name": n.name, "failures": n.failures, "message": n.message}
                for n in self.nodes
                if n.status == "warn"
            ],
        }


def dbt_environment(lake: Lake) -> dict[str, str]:
    """The environment dbt runs in: the lake's absolute root and no usage stats."""
    env = {"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if lake.is_local:
        env["PEAK_LAKE"] = str(lake.path("").resolve())
    return env


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def freshness(lake: Lake, target: str) -> list[dict[str, Any]]:
    """``dbt source freshness``: per source table, pass/warn/error and the newest load's age."""
    result = invoke(lake, "source freshness", target=target, on_node=lambda *_: None)
    return [
        {
            "source": node.name,
            "status": node.status,
            "max_loaded_at": node.max_loaded_at,
            "age_hours": None if node.age_seconds is None else round(node.age_seconds / 3600, 1),
        }
        for node in result.nodes
    ]


def _node_callback(on_node: Callable[[str, str], None]) -> Callable[[Any], None]:
    def callback(event: Any) -> None:
        if event.info.name == "NodeFinished":
            info = event.data.node_info
            on_node(info.node_name, info.node_status)

    return callback


def invoke(
    lake: Lake,
    command: str,
    *,
    target: str = "local",
    args: Sequence[str] = (),
    vars: dict[str, Any] | None = None,
    on_node: Callable[[str, str], None] | None = None,
) -> DbtResult:
    """Run one dbt command in-process and summarise its results.

    dbt's own console output is quiet (its full log is under ``<lake>/_dbt/logs``); ``on_node``
    is called with each node's name and status as it finishes, for a progress bar.
    """
    from dbt.cli.main import dbtRunner

    for key, value in dbt_environment(lake).items():
        os.environ[key] = value
    state = state_dir(lake)
    if target == "local":
        lake.path("").mkdir(parents=True, exist_ok=True)
    argv = [
        *command.split(),
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(profiles_dir(lake)),
        "--target",
        target,
        "--target-path",
        str(target_path(lake, target)),
        "--log-path",
        str(state / "logs"),
        *args,
    ]
    if vars:
        argv += ["--vars", yaml.safe_dump(vars, default_flow_style=True).strip()]
    outcome = dbtRunner(callbacks=[_node_callback(on_node)] if on_node else None).invoke(
        ["--quiet", *argv] if on_node else argv
    )
    result = DbtResult(command=command, success=bool(outcome.success))
    if outcome.exception is not None:
        result.error = (
            str(outcome.exception).strip().splitlines()[0]
            if str(outcome.exception)
            else type(outcome.exception).__name__
        )
    for item in getattr(outcome.result, "results", None) or []:
        result.nodes.append(node_result(item))
    if not result.success and result.error is None and result.failed:
        first = result.failed[0]
        result.error = f"{len(result.failed)} failed, first: {first.name}: {first.message}"
    return result


def node_result(item: Any) -> NodeResult:
    """One of dbt's run results (a model, test, seed, snapshot or source freshness)."""
    node = getattr(item, "node", None)
    scanned = (getattr(item, "adapter_response", None) or {}).get("data_scanned_in_bytes")
    return NodeResult(
        name=getattr(node, "name", "?"),
        resource_type=str(getattr(node, "resource_type", "?")),
        status=str(getattr(item, "status", "?")),
        seconds=float(getattr(item, "execution_time", 0.0) or 0.0),
        message=str(getattr(item, "message", "") or ""),
        failures=getattr(item, "failures", None),
        compiled_code=getattr(node, "compiled_code", None),
        max_loaded_at=_iso(getattr(item, "max_loaded_at", None)),
        age_seconds=getattr(item, "age", None),
        bytes_scanned=int(scanned) if isinstance(scanned, int | float) else None,
    )


# ---------------------------------------------------------------------------------------------
# Compile-only: every compiled model parsed as its engine's SQL (Athena: peak.model.athena)
# ---------------------------------------------------------------------------------------------

#: sqlglot's dialect for each target's engine.
DIALECTS = {"local": "duckdb", "athena": "athena"}


@dataclass
class ParseCheck:
    model: str
    ok: bool
    error: str = ""


def check_compiled(result: DbtResult, target: str) -> list[ParseCheck]:
    """Parse every compiled model with sqlglot in the target engine's dialect."""
    import sqlglot
    from sqlglot.errors import ParseError

    checks = []
    for node in result.nodes:
        if not node.resource_type.endswith("model") or node.compiled_code is None:
            continue
        try:
            sqlglot.parse_one(node.compiled_code, read=DIALECTS[target])
            checks.append(ParseCheck(node.name, True))
        except ParseError as exc:
            checks.append(ParseCheck(node.name, False, str(exc).splitlines()[0]))
    return checks
