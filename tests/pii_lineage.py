"""Which model columns carry personal data: column lineage over dbt's compiled SQL.

dbt's manifest knows which *models* feed a model, not which *columns* feed a column, so the
inventory is derived here from the compiled SQL itself with sqlglot: every model (and snapshot)
is qualified against the columns of the relations it reads, and each of its output columns is
traced back, through the model's CTEs, unions and joins, to the columns of those relations. The
personal columns of the sources are the contracts' (``pii: true``); a model column is personal
when a personal column's *value* reaches it:

- **carried**: through column references, casts, ``coalesce``, ``case ... then``, string
  functions, value-keeping aggregates (``min``, ``max``, ``any_value``...) on a member's row;
- **masked**: through one of the masks of ``dbt_project/macros/privacy.sql`` (recognised by
  shape: the macro rendered with a placeholder, compared with every sub-expression);
- **not carried**: only in a condition (``where``/``on`` are not projections; a comparison, a
  ``case when`` test, a window's ``partition by``/``order by``, ``length``...), or counted,
  summed; or **aggregated away**: a group key, or a value-keeping aggregate, of a grouping with
  no member key (a gym as the group key of an aggregate is not personal; a member's home gym on
  a member's row is).

:class:`Inventory` holds the result for a whole project; ``tests/test_pii.py`` checks it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope, find_all_in_scope

import contracts

DIALECT = "duckdb"
PRIVACY_MACROS = Path(__file__).resolve().parents[1] / "dbt_project" / "macros" / "privacy.sql"

CARRIED, MASKED, HIDDEN = "carried", "masked", "hidden"
#: How two steps of a path combine: hidden wins, then masked.
_RANK = {CARRIED: 0, MASKED: 1, HIDDEN: 2}

#: Columns that name a member: a grouping by one of them is a member's row. The members
#: contract's key, and the e-mail address (an address names its owner as well as an id does).
IDENTIFYING = frozenset({*contracts.get("members").primary_key, "email"})

#: Aggregates whose result is one of the values aggregated.
VALUE_AGGREGATES: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name)
    for name in ("Min", "Max", "AnyValue", "First", "Last", "ArgMax", "ArgMin", "ArrayAgg",
                 "GroupConcat", "FirstValue", "LastValue", "NthValue", "Lag", "Lead")
    if hasattr(exp, name)
)  # fmt: skip
#: Functions of a value that do not give the value back (a length, a position, a test).
NOT_CARRYING: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name)
    for name in ("Length", "StrPosition", "Predicate", "Connector", "Not", "Exists")
    if hasattr(exp, name)
)


def _combine(first: str, second: str) -> str:
    return first if _RANK[first] >= _RANK[second] else second


# ---------------------------------------------------------------------------------------------
# The masks of privacy.sql
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER = "pii_placeholder"


def _normalise(node: exp.Expr) -> exp.Expr:
    """A copy of ``node`` with every column replaced by one placeholder column."""
    return node.copy().transform(
        lambda n: exp.column(_PLACEHOLDER) if isinstance(n, exp.Column) else n
    )


def mask_templates(path: Path = PRIVACY_MACROS) -> list[exp.Expr]:
    """Each macro of privacy.sql rendered with placeholder arguments, parsed and qualified like
    a model's SQL, then normalised: what a masked expression looks like in compiled SQL."""
    module = jinja2.Environment().from_string(path.read_text(encoding="utf-8")).module
    names = re.findall(r"{%-?\s*macro\s+(\w+)\s*\(", path.read_text(encoding="utf-8"))
    templates = []
    for name in names:
        macro = getattr(module, name)
        args = [f"{_PLACEHOLDER}_{i}" for i in range(len(macro.arguments))]
        sql = f"select {macro(*args)} as masked from placeholders"
        tree = qualify(
            sqlglot.parse_one(sql, read=DIALECT),
            schema={"placeholders": dict.fromkeys(args, "text")},
            dialect=DIALECT,
            validate_qualify_columns=False,
            identify=False,
        )
        templates.append(_normalise(tree.selects[0].this))
    if not templates:
        raise AssertionError(f"no macro in {path}")
    return templates


# ---------------------------------------------------------------------------------------------
# The project as the analysis sees it
# ---------------------------------------------------------------------------------------------


@dataclass
class Relation:
    """A model, snapshot or source: its SQL (relations named by :attr:`name`), the relations it
    reads, and its documented columns' ``meta``."""

    name: str
    kind: str  # model | snapshot | source
    sql: str = ""
    depends_on: tuple[str, ...] = ()
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)  # documented: name -> meta
    pii: frozenset[str] = frozenset()  # sources: the contract's personal columns

    def tagged(self, column: str) -> bool:
        return bool((self.columns.get(column) or {}).get("pii"))


#: The columns dbt adds to every snapshot (none of them carries a value of the source's).
SNAPSHOT_COLUMNS = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to")


def source_name(table: str) -> str:
    return f"processed__{table}"


def load_manifest(path: Path) -> dict[str, Relation]:
    """The project's relations from a compiled manifest (``dbt compile``'s ``manifest.json``)."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    renames: dict[str, str] = {}
    relations: dict[str, Relation] = {}
    for source in manifest["sources"].values():
        name = source_name(source["name"])
        renames[source["relation_name"]] = name
        renames[source["unique_id"]] = name
        contract = contracts.get(source["name"])
        relations[name] = Relation(
            name,
            "source",
            columns={c: dict(v.get("meta") or {}) for c, v in source["columns"].items()},
            pii=frozenset(c.name for c in contract.columns if c.pii),
        )
    nodes = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] in ("model", "snapshot") and n["package_name"] == "peak_fitness"
    ]
    for node in nodes:
        renames[node["relation_name"]] = node["name"]
        renames[node["unique_id"]] = node["name"]
    for node in nodes:
        sql = node["compiled_code"]
        for relation, name in sorted(renames.items(), key=lambda kv: -len(kv[0])):
            if not relation.startswith(("model.", "snapshot.", "source.")):
                sql = sql.replace(relation, name)
        relations[node["name"]] = Relation(
            node["name"],
            str(node["resource_type"]),
            sql=sql,
            depends_on=tuple(renames[d] for d in node["depends_on"]["nodes"]),
            columns={c: dict(v.get("meta") or {}) for c, v in node["columns"].items()},
        )
    return relations


# ---------------------------------------------------------------------------------------------
# Lineage
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """A column of an upstream relation reaching an output column, and how."""

    relation: str
    column: str
    how: str  # carried | masked | hidden


class Inventory:
    """Every column of every relation, and which personal source columns reach it, how."""

    def __init__(self, relations: Mapping[str, Relation]) -> None:
        self.relations = dict(relations)
        self.templates = mask_templates()
        self.outputs: dict[str, list[str]] = {}  # relation -> its columns, in order
        self.personal: dict[str, dict[str, str]] = {}  # relation -> column -> carried|masked
        for name in self._order():
            self._analyse(self.relations[name])

    # -- results --------------------------------------------------------------------------------

    def carries(self, relation: str, column: str) -> bool:
        """Whether a personal value reaches the column unmasked."""
        return self.personal.get(relation, {}).get(column) == CARRIED

    def carried(self, relation: str) -> list[str]:
        return [c for c in self.outputs.get(relation, []) if self.carries(relation, c)]

    def untagged(self, relation: str) -> list[str]:
        """Columns that carry personal data without ``meta: {pii: true}``."""
        rel = self.relations[relation]
        return [c for c in self.carried(relation) if not rel.tagged(c)]

    # -- analysis -------------------------------------------------------------------------------

    def _order(self) -> list[str]:
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str, stack: tuple[str, ...] = ()) -> None:
            if name in seen:
                return
            if name in stack:
                raise AssertionError(f"cycle through {name}")
            for up in self.relations[name].depends_on:
                visit(up, (*stack, name))
            seen.add(name)
            done.append(name)

        for name in sorted(self.relations):
            visit(name)
        return done

    def _analyse(self, rel: Relation) -> None:
        if rel.kind == "source":
            self.outputs[rel.name] = list(rel.columns)
            self.personal[rel.name] = dict.fromkeys(sorted(rel.pii), CARRIED)
            return
        schema = {
            up: dict.fromkeys(self.outputs[up], "text")
            for up in rel.depends_on
            if self.outputs.get(up)
        }
        tree = qualify(
            sqlglot.parse_one(rel.sql, read=DIALECT),
            schema=schema,
            dialect=DIALECT,
            validate_qualify_columns=False,
            identify=False,
        )
        scope = build_scope(tree)
        if scope is None:
            raise AssertionError(f"{rel.name}: not a query")
        columns = [s.alias_or_name for s in _selects(scope)]
        if rel.kind == "snapshot":
            columns += [c for c in SNAPSHOT_COLUMNS if c not in columns]
        self.outputs[rel.name] = columns
        memo: dict[tuple[int, str], set[Flow]] = {}
        found: dict[str, str] = {}
        for column in columns:
            if column in SNAPSHOT_COLUMNS and rel.kind == "snapshot":
                continue
            how = None
            for flow in self._trace(scope, column, memo):
                if flow.how == HIDDEN:
                    continue
                if self.personal.get(flow.relation, {}).get(flow.column) is None:
                    continue
                upstream = self.personal[flow.relation][flow.column]
                step = _combine(flow.how, upstream)
                how = step if how is None else min(how, step, key=_RANK.__getitem__)
            if how is not None:
                found[column] = how
        self.personal[rel.name] = found

    def _trace(
        self, scope: Scope, column: str, memo: dict[tuple[int, str], set[Flow]]
    ) -> set[Flow]:
        key = (id(scope), column)
        if key in memo:
            return memo[key]
        memo[key] = set()  # a recursive CTE would come back here
        expression = scope.expression
        flows: set[Flow] = set()
        if isinstance(expression, exp.SetOperation):
            index = [s.alias_or_name for s in _selects(scope)].index(column)
            for branch in scope.set_operation_scopes:
                name = _selects(branch)[index].alias_or_name
                flows |= self._trace(branch, name, memo)
            memo[key] = flows
            return flows
        select = next((s for s in expression.selects if s.alias_or_name == column), None)
        if select is None:
            raise AssertionError(f"no column {column} in {expression.sql(DIALECT)[:200]}")
        if any(True for _ in find_all_in_scope(select, *exp.UNWRAPPED_QUERIES)):
            raise AssertionError(f"a subquery in the projection of {column}: not analysed")
        per_member = _per_member(expression)
        for ref in find_all_in_scope(select, exp.Column):
            how = self._how(ref, select, per_member)
            source = scope.sources.get(ref.table)
            if isinstance(source, Scope):
                upstream = self._trace(source, ref.name, memo)
            elif isinstance(source, exp.Table):
                upstream = {Flow(source.name, ref.name, CARRIED)}
            else:
                continue  # a lateral alias, a literal column name
            flows |= {Flow(f.relation, f.column, _combine(how, f.how)) for f in upstream}
        memo[key] = flows
        return flows

    def _how(self, ref: exp.Column, select: exp.Expr, per_member: bool | None) -> str:
        """How the value of one column reference reaches its projection."""
        node: exp.Expr = ref
        in_aggregate = False
        while node is not select and node.parent is not None:
            parent = node.parent
            if self._is_mask(parent):
                return MASKED
            if isinstance(parent, exp.Window) and node is not parent.this:
                return HIDDEN  # partition by / order by
            if isinstance(parent, exp.If) and node is parent.this:
                return HIDDEN  # case when <condition>
            if isinstance(parent, exp.Case) and node is parent.this:
                return HIDDEN  # case <operand> when ...
            if isinstance(parent, NOT_CARRYING):
                return HIDDEN
            if isinstance(parent, exp.AggFunc) and not isinstance(parent, VALUE_AGGREGATES):
                return HIDDEN  # count, sum, avg...
            if isinstance(parent, exp.AggFunc):
                in_aggregate = not isinstance(parent.parent, exp.Window)
            node = parent
        grouped = per_member is not None
        if grouped and not per_member and (in_aggregate or _is_group_key(ref)):
            return HIDDEN  # aggregated across members: a gym's row, not a member's
        return CARRIED

    def _is_mask(self, node: exp.Expr) -> bool:
        kinds = {type(t) for t in self.templates}
        if type(node) not in kinds:
            return False
        normal = _normalise(node)
        return any(normal == template for template in self.templates)


def _selects(scope: Scope) -> list[exp.Expr]:
    expression = scope.expression
    if isinstance(expression, exp.SetOperation):
        return _selects(scope.set_operation_scopes[0])
    return list(expression.selects)


def _per_member(select: exp.Expr) -> bool | None:
    """None when the select does not aggregate; else whether its grouping names a member."""
    group = select.args.get("group")
    aggregates = [
        a
        for projection in select.selects
        for a in find_all_in_scope(projection, exp.AggFunc)
        if not isinstance(a.parent, exp.Window)
    ]
    if group is None and not aggregates:
        return None
    keys = list(group.expressions) if group is not None else []
    return any(c.name in IDENTIFYING for key in keys for c in key.find_all(exp.Column))


def _is_group_key(ref: exp.Column) -> bool:
    select = ref.find_ancestor(exp.Select)
    group = select.args.get("group") if select is not None else None
    if group is None:
        return False
    return any(ref.name == c.name and ref.table == c.table for c in group.find_all(exp.Column))


def relation_columns(sql: str, schema: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """The (relation, column) pairs a query's projections read (the dashboard's SQL)."""
    tree = qualify(
        sqlglot.parse_one(sql, read=DIALECT),
        schema={r: dict.fromkeys(cols, "text") for r, cols in schema.items()},
        dialect=DIALECT,
        validate_qualify_columns=False,
        identify=False,
    )
    scope = build_scope(tree)
    assert scope is not None
    found = set()
    for projection in scope.expression.selects:
        for ref in find_all_in_scope(projection, exp.Column):
            source = scope.sources.get(ref.table)
            if isinstance(source, exp.Table):
                found.add((source.name, ref.name))
    return found
