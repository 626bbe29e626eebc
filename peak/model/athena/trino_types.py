"""Trino's (Athena engine v3's) types for a parsed query, on top of sqlglot's type annotation.

sqlglot annotates an expression tree from a schema, but with generic arithmetic: ``1.0`` is a
double there, while Trino reads it as ``decimal(2,1)`` and keeps computing in decimals (so
``n * 1.0 / 4`` is rounded to one decimal place). This module gives sqlglot Trino's rules where
they differ from DuckDB's, which is where the hazards are:

* a numeric literal with a decimal point is ``decimal(p,s)``; one with an exponent is a double;
* ``+ - * / %`` follow Trino's result types: integers stay integers (``7 / 2`` is ``3``),
  decimals get Trino's precision and scale (a quotient keeps the larger scale of its operands),
  a double anywhere makes a double;
* ``sum`` of integers is a ``bigint``, ``avg`` of integers a ``double``, ``date_diff`` and
  ``count`` are ``bigint``; the Trino functions sqlglot does not know are typed by name.

:func:`annotate` qualifies a query against a schema (``catalog -> schema -> table -> column ->
type``) and annotates it; :func:`numeric_kind` and :func:`decimal_scale` read the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp
from sqlglot.dialects.presto import Presto
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

#: sqlglot's dialect for Athena engine v3 (Trino).
DIALECT = "athena"
#: Trino's largest decimal precision.
MAX_PRECISION = 38

INTEGERS = {
    exp.DType.TINYINT: 3,
    exp.DType.SMALLINT: 5,
    exp.DType.INT: 10,
    exp.DType.BIGINT: 19,
}
DOUBLES = {exp.DType.DOUBLE, exp.DType.FLOAT}
TEXT = {exp.DType.VARCHAR, exp.DType.CHAR, exp.DType.TEXT, exp.DType.NVARCHAR, exp.DType.NCHAR}
TEMPORAL = {
    exp.DType.DATE,
    exp.DType.TIMESTAMP,
    exp.DType.TIMESTAMPTZ,
    exp.DType.TIMESTAMPLTZ,
    exp.DType.DATETIME,
    exp.DType.TIME,
}

#: Trino functions sqlglot leaves anonymous, by the type they return.
_BIGINT_FUNCTIONS = {
    "to_milliseconds",
    "day_of_week",
    "dow",
    "day_of_year",
    "doy",
    "year_of_week",
    "yow",
    "week_of_year",
    "week",
    "millisecond",
    "regexp_count",
    "regexp_position",
}
_DOUBLE_FUNCTIONS = {"to_unixtime", "random", "rand"}
_VARCHAR_FUNCTIONS = {"format_datetime", "date_format", "to_iso8601", "regexp_replace"}


def _dtype(node: exp.Expr | None) -> exp.DataType | None:
    kind = getattr(node, "type", None)
    return kind if isinstance(kind, exp.DataType) else None


def numeric_kind(node: exp.Expr | exp.DataType | None) -> str | None:
    """``"integer"``, ``"decimal"`` or ``"double"`` for a numeric type, else None."""
    kind = node if isinstance(node, exp.DataType) else _dtype(node)
    if kind is None:
        return None
    if kind.this in INTEGERS:
        return "integer"
    if kind.this == exp.DType.DECIMAL:
        return "decimal"
    if kind.this in DOUBLES:
        return "double"
    return None


def is_unknown(node: exp.Expr) -> bool:
    kind = _dtype(node)
    return kind is None or kind.this in (exp.DType.UNKNOWN, exp.DType.NULL)


def is_text(node: exp.Expr) -> bool:
    kind = _dtype(node)
    return kind is not None and kind.this in TEXT


def is_temporal(node: exp.Expr) -> bool:
    kind = _dtype(node)
    return kind is not None and kind.this in TEMPORAL


def _params(kind: exp.DataType) -> tuple[int, int]:
    """(precision, scale) of a decimal or integer type (Trino's decimal view of an integer)."""
    if kind.this in INTEGERS:
        return INTEGERS[kind.this], 0
    values = [int(p.name) for p in kind.expressions if p.name.isdigit()]
    if len(values) == 2:
        return values[0], values[1]
    if len(values) == 1:
        return values[0], 0
    return MAX_PRECISION, 0


def decimal_scale(node: exp.Expr) -> int | None:
    """The scale of a decimal-typed expression (the decimal places Trino keeps)."""
    kind = _dtype(node)
    if kind is None or kind.this != exp.DType.DECIMAL:
        return None
    return _params(kind)[1]


def decimal(precision: int, scale: int) -> exp.DataType:
    precision = max(1, min(MAX_PRECISION, precision))
    return exp.DataType.build(f"decimal({precision}, {min(scale, precision)})")


def _wider_integer(left: exp.DataType, right: exp.DataType) -> exp.DataType:
    return left if INTEGERS[left.this] >= INTEGERS[right.this] else right


def arithmetic(op: type[exp.Expr], left: exp.DataType, right: exp.DataType) -> exp.DataType | None:
    """Trino's result type of ``left op right`` for numeric operands (None: not numeric)."""
    kinds = {numeric_kind(left), numeric_kind(right)}
    if None in kinds:
        return None
    if "double" in kinds:
        return exp.DataType.build("double")
    if kinds == {"integer"}:
        return _wider_integer(left, right)
    (p1, s1), (p2, s2) = _params(left), _params(right)
    if op is exp.Mul:
        return decimal(p1 + p2, s1 + s2)
    if op is exp.Div:
        return decimal(p1 + s2 + max(0, s2 - s1), max(s1, s2))
    if op is exp.Mod:
        return decimal(min(p1 - s1, p2 - s2) + max(s1, s2), max(s1, s2))
    scale = max(s1, s2)  # + and -
    return decimal(max(p1 - s1, p2 - s2) + scale + 1, scale)


def _literal(self: Any, node: exp.Literal) -> exp.Literal:
    text = node.name
    if node.is_string or node.is_int or not text.replace(".", "", 1).isdigit():
        return self._annotate_literal(node)
    whole, _, fraction = text.partition(".")
    digits = len(whole.lstrip("0")) + len(fraction)
    self._set_type(node, decimal(max(digits, 1), len(fraction)))
    node.meta["nonnull"] = True
    return node


def _binary(self: Any, node: exp.Binary) -> exp.Binary:
    self._annotate_binary(node) if not isinstance(node, exp.Div) else self._annotate_div(node)
    left, right = _dtype(node.left), _dtype(node.right)
    if left is not None and right is not None:
        result = arithmetic(type(node), left, right)
        if result is not None:
            self._set_type(node, result)
    return node


def _sum(self: Any, node: exp.Sum) -> exp.Sum:
    arg = _dtype(node.this)
    kind = numeric_kind(arg)
    if kind == "integer":
        return self._set_type(node, exp.DType.BIGINT)
    if kind == "decimal" and arg is not None:
        return self._set_type(node, decimal(MAX_PRECISION, _params(arg)[1]))
    return self._annotate_by_args(node, "this")


def _avg(self: Any, node: exp.Avg) -> exp.Avg:
    if numeric_kind(node.this) == "decimal":
        return self._annotate_by_args(node, "this")
    return self._set_type(node, exp.DType.DOUBLE)


def _rounding(self: Any, node: exp.Expr) -> exp.Expr:
    """floor/ceil: a decimal's scale goes to 0, other types are kept."""
    arg = _dtype(node.this)
    if arg is not None and arg.this == exp.DType.DECIMAL:
        precision, scale = _params(arg)
        return self._set_type(node, decimal(precision - scale + min(scale, 1), 0))
    return self._annotate_by_args(node, "this")


def _anonymous(self: Any, node: exp.Anonymous) -> exp.Anonymous:
    name = node.name.lower()
    if name in _BIGINT_FUNCTIONS:
        return self._set_type(node, exp.DType.BIGINT)
    if name in _DOUBLE_FUNCTIONS:
        return self._set_type(node, exp.DType.DOUBLE)
    if name in _VARCHAR_FUNCTIONS:
        return self._set_type(node, exp.DType.VARCHAR)
    return self._set_type(node, exp.DType.UNKNOWN)


def _returns(kind: exp.DType) -> Callable[[Any, exp.Expr], exp.Expr]:
    return lambda self, node: self._set_type(node, kind)


#: sqlglot's Presto/Trino annotators, with Trino's arithmetic where sqlglot's is generic.
EXPRESSION_METADATA: dict[type[exp.Expr], dict[str, Any]] = {
    **Presto.EXPRESSION_METADATA,
    exp.Literal: {"annotator": _literal},
    **{op: {"annotator": _binary} for op in (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)},
    exp.Sum: {"annotator": _sum},
    exp.Avg: {"annotator": _avg},
    exp.Floor: {"annotator": _rounding},
    exp.Ceil: {"annotator": _rounding},
    exp.Anonymous: {"annotator": _anonymous},
    exp.DateDiff: {"annotator": _returns(exp.DType.BIGINT)},
    exp.Count: {"annotator": _returns(exp.DType.BIGINT)},
    exp.RowNumber: {"annotator": _returns(exp.DType.BIGINT)},
    exp.DayOfWeekIso: {"annotator": _returns(exp.DType.BIGINT)},
    exp.WeekOfYear: {"annotator": _returns(exp.DType.BIGINT)},
    exp.YearOfWeek: {"annotator": _returns(exp.DType.BIGINT)},
}

#: A schema: catalog -> database -> table -> column -> type (as Trino spells it).
Schema = Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]]]]


def annotate(tree: exp.Expr, schema: Schema) -> exp.Expr:
    """Qualify ``tree`` against ``schema`` (every ``*`` expanded, every column resolved) and type
    every expression as Trino would. Raises sqlglot's OptimizeError on an unknown column."""
    qualified = qualify(
        tree,
        schema=dict(schema),
        dialect=DIALECT,
        quote_identifiers=False,
        validate_qualify_columns=True,
    )
    return annotate_types(
        qualified, schema=dict(schema), expression_metadata=EXPRESSION_METADATA, dialect=DIALECT
    )


def output_types(tree: exp.Expr) -> dict[str, str]:
    """An annotated query's output columns and their Trino types, in order."""
    select = tree if isinstance(tree, exp.Query) else tree.find(exp.Query)
    if select is None:
        return {}
    return {
        column.alias_or_name: (column.type or exp.DataType.build("unknown")).sql("trino").lower()
        for column in select.selects
    }
