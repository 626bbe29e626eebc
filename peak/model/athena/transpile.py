"""Athena SQL run on DuckDB: sqlglot's translation, over the local lake's relations.

:func:`to_duckdb` types the Athena query as Trino would (:mod:`.trino_types`) before sqlglot
writes it as DuckDB SQL, so Trino's integer division stays an integer division (sqlglot emits a
truncating division for integer-typed operands). Decimals are another matter: DuckDB computes
them with its own rules, so a run here cannot show Trino's decimal rounding (the type check's
``exact-division`` rule does).

:class:`DuckDBSession` is an in-memory DuckDB where Athena's three-part names resolve: a catalog
``awsdatacatalog`` with one schema per Glue database, whose relations are views over the local
lake (the processed zone's Parquet for the sources, the published warehouse's tables for the
models), or empty tables of the right types where the lake has none.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from peak.core.lake import Lake
from peak.core.layout import processed_prefix
from peak.core.sql import identifier, literal
from peak.model.athena.emulator import Answer
from peak.model.athena.trino_types import DIALECT, Schema, annotate

#: The Glue catalog's name in Athena SQL.
CATALOG = "awsdatacatalog"
#: The local warehouse's name inside the session (dbt-duckdb's views refer to it).
WAREHOUSE = "warehouse"
#: The schema of the incremental models as the previous daily run left them.
PREVIOUS = "previous_run"
_NODE_ID = re.compile(r'"node_id":\s*"([^"]+)"')


def to_duckdb(sql: str, schema: Schema, moved: Mapping[tuple[str, str], str] | None = None) -> str:
    """``sql`` (Athena) written as DuckDB SQL, typed first so integer division survives;
    ``moved`` sends a relation's reads to another database ((database, table) -> database)."""
    tree = annotate(sqlglot.parse_one(sql, read=DIALECT), schema)
    for table in tree.find_all(exp.Table):
        target = (moved or {}).get((table.db.lower(), table.name.lower()))
        if target is not None:
            table.set("db", exp.to_identifier(target))
    return tree.sql(dialect="duckdb", identify=True, unsupported_level=ErrorLevel.RAISE)


def _duckdb_type(trino_type: str) -> str:
    if trino_type == "unknown":
        return "varchar"
    return exp.DataType.build(trino_type, dialect="trino").sql("duckdb")


def _athena_type(duckdb_type: str) -> str:
    name = duckdb_type.lower()
    for prefix in ("varchar", "bigint", "integer", "double", "date", "boolean", "decimal"):
        if name.startswith(prefix):
            return prefix
    return "timestamp" if name.startswith("timestamp") else "varchar"


_quote = identifier
_literal = literal


class DuckDBSession:
    """An in-memory DuckDB resolving Athena's names to the local lake's relations.

    ``schema`` is the Trino schema of every relation (catalog -> database -> table -> columns);
    ``sources`` maps a source's (database, table) to its dataset in the processed zone;
    ``warehouse`` is the published local warehouse, when there is one.

    ``incremental`` maps each incremental model's node id to its (database, table, partition
    column). A query such a model's macros send while it compiles reads the model's own table
    *as the previous daily run left it*: the warehouse's table without its newest partition. So
    the incremental form is compiled as on the day after the local build, with a period to
    rebuild (a warehouse that is up to date would answer "nothing changed", and the model would
    compile to its empty branch).
    """

    def __init__(
        self,
        lake: Lake,
        schema: Schema,
        sources: Mapping[tuple[str, str], str],
        warehouse: Path | None,
        incremental: Mapping[str, tuple[str, str, str]] | None = None,
    ) -> None:
        import duckdb

        self.schema = schema
        self.con = duckdb.connect()
        self.lock = threading.Lock()
        self.con.execute("set TimeZone = 'UTC'")
        built: set[str] = set()
        if warehouse is not None and warehouse.exists():
            self.con.execute(f"attach {_literal(str(warehouse))} as {WAREHOUSE} (read_only)")
            built = {
                row[0]
                for row in self.con.execute(
                    "select table_name from duckdb_tables() where database_name = ? "
                    "union all select view_name from duckdb_views() where database_name = ?",
                    [WAREHOUSE, WAREHOUSE],
                ).fetchall()
            }
        self.con.execute(f"attach ':memory:' as {CATALOG}")
        for database, tables in schema.get(CATALOG, {}).items():
            self.con.execute(f"create schema if not exists {CATALOG}.{_quote(database)}")
            for table, columns in tables.items():
                name = f"{CATALOG}.{_quote(database)}.{_quote(table)}"
                dataset = sources.get((database, table))
                files = lake.list(processed_prefix(dataset)) if dataset and lake.is_local else []
                if dataset and any(key.endswith(".parquet") for key in files):
                    pattern = str(lake.path(processed_prefix(dataset))) + "/*/*.parquet"
                    self.con.execute(
                        f"create view {name} as select * from read_parquet({_literal(pattern)}, "
                        "hive_partitioning = true, union_by_name = true)"
                    )
                elif not dataset and table in built:
                    self.con.execute(
                        f"create view {name} as select * from {WAREHOUSE}.main.{_quote(table)}"
                    )
                else:
                    defined = ", ".join(
                        f"{_quote(c)} {_duckdb_type(t)}" for c, t in columns.items()
                    )
                    self.con.execute(f"create table {name} ({defined})")
        self.warehouse_models = built
        self.incremental = dict(incremental or {})
        self.con.execute(f"create schema {CATALOG}.{PREVIOUS}")
        for database, table, partition in self.incremental.values():
            current = f"{CATALOG}.{_quote(database)}.{_quote(table)}"
            self.con.execute(
                f"create view {CATALOG}.{PREVIOUS}.{_quote(table)} as select * from {current} "
                f"where {_quote(partition)} < (select max({_quote(partition)}) from {current})"
            )

    def previous_run(self, node_id: str | None) -> dict[tuple[str, str], str]:
        """The relation moved to the previous run's state for a query of ``node_id``."""
        if node_id not in self.incremental:
            return {}
        database, table, _partition = self.incremental[node_id]
        return {(database.lower(), table.lower()): PREVIOUS}

    def execute(self, athena_sql: str, previous_run_of: str | None = None) -> Any:
        """Run Athena SQL (translated); ``previous_run_of``: read that node's own table as the
        previous daily run left it."""
        with self.lock:
            moved = self.previous_run(previous_run_of)
            return self.con.execute(to_duckdb(athena_sql, self.schema, moved))

    def answer(self, athena_sql: str) -> Answer:
        """The emulator's answer to a query: names, Athena types, rows."""
        node = _NODE_ID.search(athena_sql)
        with self.lock:
            moved = self.previous_run(node.group(1) if node else None)
            result = self.con.execute(to_duckdb(athena_sql, self.schema, moved))
            names = [d[0] for d in result.description]
            types = [_athena_type(str(d[1])) for d in result.description]
            rows: Sequence[Sequence[Any]] = result.fetchall()
        return names, types, rows

    def close(self) -> None:
        self.con.close()
