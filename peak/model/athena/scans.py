"""Which partitions a query reads: the ``unbounded-partition-scan`` rule's analysis.

Athena bills the bytes it reads, and reads only the partitions a query's filter on the partition
column selects (the processed zone's tables and the incremental models are Hive tables
partitioned by ``dt``, or by their period). An incremental model exists to read a few days; when
its filter bounds another column (``local_date``, ``week_start``) instead, Athena reads the whole
table every day.

The analysis does what Trino's planner does with a query, on sqlglot's tree: every view the query
reads is inlined (a view is its SQL: Trino plans through it), the filters are pushed down to the
table scans through CTEs, subqueries and renames (sqlglot's ``pushdown_predicates``), and the
columns each scan needs are pruned (``pushdown_projections``). A scan of a partitioned table is
then *bounded* when a conjunct of its scan's filter constrains the partition column alone (or is
constant false). A scan that reads only the partition column is no finding: Athena reads no
column data for it, only the files' footers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.normalize import normalize
from sqlglot.optimizer.pushdown_predicates import pushdown_predicates
from sqlglot.optimizer.pushdown_projections import pushdown_projections
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.optimizer.simplify import simplify

from peak.model.athena.trino_types import DIALECT, Schema

#: A relation's key: (database, name), lower case.
Key = tuple[str, str]
_LINE = "peak_line"


@dataclass(frozen=True)
class Scan:
    """One read of a partitioned table by a query."""

    relation: str
    partition: str
    #: The other columns it reads (what Athena bills).
    columns: tuple[str, ...]
    bounded: bool
    #: The line, in the query's text, of the reference the scan comes from.
    line: int | None


def key_of(table: exp.Table) -> Key:
    return (table.db.lower(), table.name.lower())


def first_line(node: exp.Expr) -> int | None:
    """The first line of ``node`` in its query's text (sqlglot keeps the lines of identifiers
    and literals: a node without any, ``current_timestamp``, takes its parent's)."""
    scope: exp.Expr | None = node
    for _ in range(3):
        if scope is None:
            break
        lines = [n.meta["line"] for n in scope.walk() if "line" in n.meta]
        if lines:
            return min(lines)
        scope = scope.parent
    return None


def inline_views(tree: exp.Expr, views: Mapping[Key, str], depth: int = 0) -> exp.Expr:
    """Replace every reference to a view by the view's own query (recursively)."""
    if depth > 20:
        raise RecursionError("views nest more than 20 deep")

    def replace(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and key_of(node) in views:
            body = inline_views(
                sqlglot.parse_one(views[key_of(node)], read=DIALECT), views, depth + 1
            )
            alias = exp.TableAlias(this=exp.to_identifier(node.alias_or_name))
            inlined = exp.Subquery(this=body, alias=alias)
            inlined.meta[_LINE] = first_line(node)
            return inlined
        return node

    return tree.transform(replace, copy=False)


def _conjuncts(condition: exp.Expr | None) -> list[exp.Expr]:
    if condition is None:
        return []
    return list(condition.flatten()) if isinstance(condition, exp.And) else [condition]


def _bounds(conjunct: exp.Expr, alias: str, partition: str) -> bool:
    columns = list(conjunct.find_all(exp.Column))
    if not columns:
        return simplify(conjunct.copy()) == exp.false()
    return all(c.table == alias and c.name.lower() == partition for c in columns)


def _origin_line(node: exp.Expr) -> int | None:
    parent: exp.Expr | None = node
    found = None
    while parent is not None:
        if parent.meta.get(_LINE) is not None:
            found = parent.meta[_LINE]
        parent = parent.parent
    return found if found is not None else first_line(node)


def scans(
    sql: str,
    *,
    views: Mapping[Key, str],
    partitions: Mapping[Key, str],
    schema: Schema,
) -> list[Scan]:
    """Every scan of a table in ``partitions`` (key -> partition column) that ``sql`` makes,
    after inlining ``views`` (key -> the view's compiled SQL)."""
    tree = inline_views(sqlglot.parse_one(sql, read=DIALECT), views)
    tree = qualify(tree, schema=dict(schema), dialect=DIALECT, quote_identifiers=False)
    for step in (pushdown_projections, normalize, pushdown_predicates):
        tree = step(tree)
    found: list[Scan] = []
    for scope in traverse_scope(tree):
        select = scope.expression
        if not isinstance(select, exp.Select):
            continue
        for _node, source in scope.selected_sources.values():
            if not isinstance(source, exp.Table) or key_of(source) not in partitions:
                continue
            name = source.alias_or_name
            partition = partitions[key_of(source)]
            conditions = _conjuncts(select.args["where"].this if select.args.get("where") else None)
            for join in select.args.get("joins") or []:
                if join.this is source or join.this.alias_or_name == name:
                    conditions += _conjuncts(join.args.get("on"))
            read = sorted(
                {c.name for c in scope.columns if c.table == name and c.name.lower() != partition}
            )
            found.append(
                Scan(
                    relation=".".join(key_of(source)),
                    partition=partition,
                    columns=tuple(read),
                    bounded=any(_bounds(c, name, partition) for c in conditions),
                    line=_origin_line(source),
                )
            )
    return found
