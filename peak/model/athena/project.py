"""The dbt project compiled for Athena, in both forms, and typed from the contracts.

:func:`compile_project` compiles every model and snapshot twice against the local Athena of
:mod:`.emulator`:

1. **full refresh**: ``dbt compile --full-refresh`` against an empty catalog: every model as a
   first build (or ``--full-refresh``) runs it;
2. **incremental**: the catalog then holds a Glue table for every relation the project builds,
   so ``is_incremental()`` is true, and dbt compiles each incremental model as the daily run
   does. Its macros' introspective queries (``days_to_rebuild``, ``changed_periods``) reach the
   emulator, which records them and answers each by running it, translated by sqlglot, on the
   local lake (:class:`.transpile.DuckDBSession`: the processed zone, and the published local
   warehouse when there is one; empty relations of the right types when there is none).

Between the two, every relation is typed: the sources from their contract-generated columns
(``_sources.yml``), then each model, in DAG order, from the Trino types of its full-refresh
query's output (:mod:`.trino_types`); a snapshot adds dbt's four metadata columns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot.errors import SqlglotError

from peak.core.lake import Lake
from peak.core.layout import SERVING_WAREHOUSE_KEY
from peak.model import dbt
from peak.model.athena.emulator import CatalogRelation, Query, athena_emulator
from peak.model.athena.transpile import CATALOG, DuckDBSession
from peak.model.athena.trino_types import DIALECT, annotate, output_types

PACKAGE = "peak_fitness"
#: The columns dbt adds to a snapshot, with their types on Athena.
SNAPSHOT_COLUMNS = {
    "dbt_scd_id": "varchar",
    "dbt_updated_at": "timestamp",
    "dbt_valid_from": "timestamp",
    "dbt_valid_to": "timestamp",
}
#: Glue's (Hive's) column types as Trino names them.
_HIVE_TYPES = {"string": "varchar", "int": "integer"}


@dataclass
class Node:
    """A model or snapshot, as the manifest describes it."""

    unique_id: str
    name: str
    resource_type: str
    materialized: str
    file: str
    schema: str
    depends_on: list[str]
    partition: str | None = None
    #: The compiled SQL of each form ("full-refresh", "incremental").
    sql: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema.lower(), self.name.lower())

    @property
    def incremental(self) -> bool:
        return self.materialized == "incremental"


@dataclass
class Source:
    name: str  # source_name.table
    dataset: str
    schema: str
    table: str
    columns: dict[str, str]

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema.lower(), self.table.lower())


@dataclass
class CompiledProject:
    nodes: dict[str, Node]  # by name
    sources: list[Source]
    schema: dict[str, dict[str, dict[str, dict[str, str]]]]
    queries: list[Query]
    #: Models that could not be typed, and why.
    untyped: dict[str, str]
    session: DuckDBSession
    vars: dict[str, Any] | None
    lake: Lake | None = None

    def by_key(self) -> dict[tuple[str, str], str]:
        """Every relation's key -> its display name (a model's name, a source's dotted name)."""
        found = {node.key: node.name for node in self.nodes.values()}
        found.update({source.key: source.name for source in self.sources})
        return found

    def close(self) -> None:
        self.session.close()


def _nodes(manifest: dict[str, Any]) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for uid, raw in manifest["nodes"].items():
        if raw["resource_type"] not in ("model", "snapshot") or raw["package_name"] != PACKAGE:
            continue
        partitioned = raw["config"].get("partitioned_by") or []
        nodes[raw["name"]] = Node(
            unique_id=uid,
            name=raw["name"],
            resource_type=raw["resource_type"],
            materialized=raw["config"]["materialized"],
            file=raw["original_file_path"],
            schema=raw["schema"],
            depends_on=list(raw["depends_on"]["nodes"]),
            partition=partitioned[0].lower() if partitioned else None,
        )
    return nodes


def _sources(manifest: dict[str, Any]) -> list[Source]:
    return [
        Source(
            name=f"{raw['source_name']}.{raw['name']}",
            dataset=raw["name"],
            schema=raw["schema"],
            table=raw["identifier"],
            columns={
                name: _HIVE_TYPES.get(col["data_type"].lower(), col["data_type"].lower())
                for name, col in raw["columns"].items()
            },
        )
        for raw in manifest["sources"].values()
        if raw["package_name"] == PACKAGE
    ]


def dag_order(nodes: Mapping[str, Node]) -> list[Node]:
    """The nodes, each after every node it depends on."""
    by_id = {node.unique_id: node for node in nodes.values()}
    ordered: list[Node] = []
    seen: set[str] = set()

    def visit(node: Node) -> None:
        if node.unique_id in seen:
            return
        seen.add(node.unique_id)
        for parent in node.depends_on:
            if parent in by_id:
                visit(by_id[parent])
        ordered.append(node)

    for node in sorted(nodes.values(), key=lambda n: n.name):
        visit(node)
    return ordered


def type_project(
    nodes: Mapping[str, Node], sources: list[Source]
) -> tuple[dict[str, dict[str, dict[str, dict[str, str]]]], dict[str, str]]:
    """The Trino schema of every relation, and the models that could not be typed (why)."""
    schema: dict[str, dict[str, dict[str, dict[str, str]]]] = {CATALOG: {}}
    for source in sources:
        schema[CATALOG].setdefault(source.schema.lower(), {})[source.table.lower()] = source.columns
    untyped: dict[str, str] = {}
    for node in dag_order(nodes):
        code = node.sql.get("full-refresh")
        if code is None:
            continue
        try:
            columns = output_types(annotate(sqlglot.parse_one(code, read=DIALECT), schema))
        except SqlglotError as exc:
            untyped[node.name] = str(exc).strip().splitlines()[0]
            continue
        if node.resource_type == "snapshot":
            columns = {**columns, **SNAPSHOT_COLUMNS}
        schema[CATALOG].setdefault(node.schema.lower(), {})[node.name.lower()] = columns
    return schema, untyped


class _Deferred:
    """The emulator's answerer, set once the session exists."""

    def __init__(self) -> None:
        self.target: Callable[[str], Any] | None = None

    def __call__(self, sql: str) -> Any:
        if self.target is None:
            raise RuntimeError("a query before the project was typed: nothing can answer it")
        return self.target(sql)


def _compile(lake: Lake, args: list[str], vars: dict[str, Any] | None) -> dbt.DbtResult:
    result = dbt.invoke(
        lake, "compile", target="athena", args=args, vars=vars, on_node=lambda *_: None
    )
    if not result.success:
        raise RuntimeError(result.error or "dbt compile failed")
    return result


def compile_project(
    lake: Lake, *, vars: dict[str, Any] | None = None, work_group: str = "peak"
) -> CompiledProject:
    """Compile every model and snapshot in both forms and type them (see the module doc)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    answers = _Deferred()
    with athena_emulator(answer=answers, work_group=work_group) as emulator:
        full = _compile(
            lake,
            ["--select", "resource_type:model", "resource_type:snapshot", "--full-refresh"],
            vars,
        )
        manifest_path = dbt.target_path(lake, "athena") / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        nodes, sources = _nodes(manifest), _sources(manifest)
        for result in full.nodes:
            if result.name in nodes and result.compiled_code is not None:
                nodes[result.name].sql["full-refresh"] = result.compiled_code
        schema, untyped = type_project(nodes, sources)
        emulator.add_relations(
            CatalogRelation(n.schema, n.name, n.materialized == "view", n.partition)
            for n in nodes.values()
        )
        warehouse: Path | None = lake.path(SERVING_WAREHOUSE_KEY) if lake.is_local else None
        session = DuckDBSession(
            lake,
            schema,
            {s.key: s.dataset for s in sources},
            warehouse=warehouse,
            incremental={
                n.unique_id: (n.schema, n.name, n.partition)
                for n in nodes.values()
                if n.incremental and n.partition
            },
        )
        answers.target = session.answer
        try:
            incremental = _compile(lake, ["--select", "config.materialized:incremental"], vars)
        except BaseException:
            session.close()
            raise
        for result in incremental.nodes:
            if result.name in nodes and result.compiled_code is not None:
                nodes[result.name].sql["incremental"] = result.compiled_code
        queries = list(emulator.queries)
    return CompiledProject(nodes, sources, schema, queries, untyped, session, vars, lake)


def compiled_path(lake: Lake, node: Node) -> Path:
    """Where dbt wrote the node's compiled SQL (the last form compiled)."""
    return dbt.target_path(lake, "athena") / "compiled" / PACKAGE / node.file
