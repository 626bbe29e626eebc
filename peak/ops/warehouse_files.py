"""Removing rows from the local warehouse's DuckDB files so that nothing of them is left.

A DuckDB ``DELETE`` only marks rows: their bytes stay in the file until DuckDB happens to reuse
the blocks. When removed values must really be gone (a snapshot's versions past their retention,
an erased member), the file is rebuilt instead: every schema, table and view is copied into a new
file (``COPY FROM DATABASE ... (SCHEMA)``), each table's rows without the ones to remove, and the
new file replaces the old one atomically (``os.replace``). A reader of the serving copy keeps the
file it opened or gets the new one, never a mix; a write-ahead log left beside the old file is
removed with it.

Both ``warehouse.duckdb`` (dbt's) and ``warehouse.serving.duckdb`` (the published copy) are
rewritten, so the change is visible at once and survives the next publish. The warehouse must
not be in use by a writer (``dbt build``): DuckDB's own file lock makes the rewrite fail then,
and it is simply run again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peak.core import layout, sql
from peak.core.lake import Lake


@dataclass(frozen=True)
class Table:
    """A base table of a warehouse file: where it is and its columns (name -> DuckDB type)."""

    schema: str
    name: str
    columns: dict[str, str]

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"

    def text_columns(self) -> list[str]:
        return [c for c, t in self.columns.items() if t.upper() in ("VARCHAR", "TEXT", "STRING")]


#: Chooses the rows to remove from a table: a SQL predicate over its columns, or None to keep
#: the table whole.
Chooser = Callable[[Table], str | None]


quote = sql.identifier
literal = sql.literal


def warehouse_files(lake: Lake) -> list[Path]:
    """The local warehouse files that exist (none on an S3 lake)."""
    if not lake.is_local:
        return []
    paths = [lake.path(layout.WAREHOUSE_KEY), lake.path(layout.SERVING_WAREHOUSE_KEY)]
    return [p for p in paths if p.exists()]


def tables(con: Any, catalog: str) -> list[Table]:
    rows = con.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns"
        " where table_catalog = ? and (table_schema, table_name) in (select table_schema,"
        " table_name from information_schema.tables where table_catalog = ?"
        " and table_type = 'BASE TABLE') order by table_schema, table_name, ordinal_position",
        [catalog, catalog],
    ).fetchall()
    found: dict[tuple[str, str], dict[str, str]] = {}
    for schema, name, column, type_ in rows:
        found.setdefault((schema, name), {})[column] = str(type_)
    return [Table(schema, name, columns) for (schema, name), columns in found.items()]


def count(path: Path, choose: Chooser) -> dict[str, int]:
    """How many rows ``choose`` picks in each table (``schema.table`` -> rows; 0 for a table
    it keeps whole), reading only."""
    import duckdb  # deferred: duckdb

    con = duckdb.connect()
    try:
        con.execute(f"attach {literal(str(path))} as src (read_only)")
        found = {}
        for table in tables(con, "src"):
            where = choose(table)
            row = (
                con.execute(f"select count(*) from src.{table.qualified} where {where}").fetchone()
                if where
                else None
            )
            found[f"{table.schema}.{table.name}"] = int(row[0]) if row else 0
        return found
    finally:
        con.close()


def remove(path: Path, choose: Chooser, *, dry_run: bool = False) -> dict[str, int]:
    """Remove the rows ``choose`` picks from every table of one warehouse file, rebuilding the
    file (nothing is rewritten when no row is picked). Returns the rows removed per table."""
    import duckdb  # deferred: duckdb

    found = count(path, choose)
    if dry_run or not any(found.values()):
        return {k: v for k, v in found.items() if v}
    fresh = path.with_name(f".{path.name}.rewrite")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)  # a rewrite killed before its rename
    con = duckdb.connect()
    try:
        con.execute(f"attach {literal(str(path))} as src (read_only)")
        con.execute(f"attach {literal(str(fresh))} as fresh")
        con.execute("copy from database src to fresh (schema)")
        for table in tables(con, "src"):
            where = choose(table)
            keep = f" where not coalesce({where}, false)" if where else ""
            con.execute(
                f"insert into fresh.{table.qualified} select * from src.{table.qualified}{keep}"
            )
        con.execute("detach fresh")
    finally:
        con.close()
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    return {k: v for k, v in found.items() if v}
