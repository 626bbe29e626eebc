"""The Trino/DuckDB hazards, one named rule each, over a query typed by :mod:`.trino_types`.

A hazard is SQL that both engines accept (or that DuckDB accepts and Athena rejects) but that
gives Athena a different value, or fails there only: the places where "one dbt project, two
targets" stops being true. Each rule walks an annotated tree and yields ``(node, message)``; the
checker (:mod:`.check`) turns those into findings with the file, the line and the fix hint
written here once.

The rules read the **compiled Athena SQL**: what production runs. What the same model compiles to
on DuckDB is the local build's business; the differential run (:mod:`.compare_rows`) proves the two
agree on the demo's data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlglot import exp

from peak.model.athena.trino_types import (
    INTEGERS,
    TEMPORAL,
    decimal_scale,
    is_temporal,
    is_text,
    is_unknown,
    numeric_kind,
)

Hit = tuple[exp.Expr, str]


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    hint: str
    check: Callable[[exp.Expr], Iterator[Hit]]


# ---------------------------------------------------------------------------------------------
# exact-division: integer truncation and decimal scale
# ---------------------------------------------------------------------------------------------


def _unwrap_parent(node: exp.Expr) -> exp.Expr | None:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return parent


def exact_division(tree: exp.Expr) -> Iterator[Hit]:
    for div in tree.find_all(exp.Div):
        left, right = numeric_kind(div.left), numeric_kind(div.right)
        if "double" in (left, right):
            continue
        if is_unknown(div.left) or is_unknown(div.right):
            yield div, "an operand's type is unknown, so this division cannot be proven a double"
        elif left == right == "integer":
            parent = _unwrap_parent(div)
            if isinstance(parent, exp.Cast) and parent.to.this in INTEGERS:
                continue  # an explicit integer quotient: int_div()
            yield div, "integer / integer truncates on Athena, where DuckDB returns a double"
        elif left and right:
            scale = decimal_scale(div)
            yield (
                div,
                f"a decimal division: Athena keeps {scale} decimal place(s) and rounds, "
                "where DuckDB returns a double",
            )


# ---------------------------------------------------------------------------------------------
# implicit-cast: varchar against numbers, dates and timestamps
# ---------------------------------------------------------------------------------------------

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
_ALIKE = (exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least)


def _typed_not_text(node: exp.Expr) -> bool:
    return not is_unknown(node) and not is_text(node)


def _mixes(nodes: list[exp.Expr]) -> bool:
    typed = [n for n in nodes if not is_unknown(n)]
    return any(is_text(n) for n in typed) and any(not is_text(n) for n in typed)


def implicit_cast(tree: exp.Expr) -> Iterator[Hit]:
    for node in tree.find_all(*_COMPARISONS, *_ARITHMETIC):
        if _mixes([node.left, node.right]):
            yield node, "compares or computes varchar with another type: Trino casts nothing"
    for between in tree.find_all(exp.Between):
        if _mixes([between.this, between.args["low"], between.args["high"]]):
            yield between, "BETWEEN mixes varchar with another type: Trino casts nothing"
    for isin in tree.find_all(exp.In):
        if _mixes([isin.this, *isin.expressions]):
            yield isin, "IN mixes varchar with another type: Trino casts nothing"
    for func in tree.find_all(*_ALIKE):
        args = [func.this, *func.expressions]
        if isinstance(func, exp.Nullif):
            args = [func.this, func.expression]
        if _mixes([a for a in args if a is not None]):
            yield func, f"{func.key} mixes varchar with another type: Trino casts nothing"
    for case in tree.find_all(exp.Case):
        branches = [i.args["true"] for i in case.args.get("ifs") or []]
        if case.args.get("default") is not None:
            branches.append(case.args["default"])
        if _mixes(branches):
            yield case, "CASE branches mix varchar with another type: Trino casts nothing"
    for concat in tree.find_all(exp.DPipe):
        for side in (concat.left, concat.right):
            if _typed_not_text(side) and not isinstance(side, exp.DPipe):
                yield concat, "|| of a non-varchar: Trino has no implicit cast to varchar"
                break
    for union in tree.find_all(exp.Union):
        left, right = union.left, union.right
        if isinstance(left, exp.Query) and isinstance(right, exp.Query):
            for one, two in zip(left.selects, right.selects, strict=False):
                if _mixes([one, two]):
                    yield union, f"set operation column {one.alias_or_name} mixes varchar"


# ---------------------------------------------------------------------------------------------
# timestamp-precision: Athena keeps milliseconds, DuckDB microseconds
# ---------------------------------------------------------------------------------------------

_CLOCK = (exp.CurrentTimestamp, exp.Localtimestamp, exp.CurrentDatetime)
_SUB_MILLISECOND_UNITS = {"MICROSECOND", "MICROSECONDS", "US", "NANOSECOND", "NANOSECONDS", "NS"}
_FRACTION = re.compile(r"\d{2}:\d{2}:\d{2}\.(\d+)")


def _unit(node: exp.Expr) -> str | None:
    unit = node.args.get("unit")
    return unit.name.upper().strip("'") if unit is not None else None


def timestamp_precision(tree: exp.Expr) -> Iterator[Hit]:
    for clock in tree.find_all(*_CLOCK):
        yield (
            clock,
            "the clock: microseconds on DuckDB, milliseconds on Athena, another value each run",
        )
    for cast in tree.find_all(exp.Cast):
        if cast.to.this in TEMPORAL and cast.to.this != exp.DType.DATE:
            digits = [int(p.name) for p in cast.to.expressions if p.name.isdigit()]
            if digits and digits[0] > 3:
                yield cast, f"timestamp({digits[0]}): Athena's tables keep milliseconds"
            value = cast.this
            if isinstance(value, exp.Literal) and value.is_string:
                match = _FRACTION.search(value.name)
                if match and len(match.group(1)) > 3:
                    yield cast, "a timestamp literal finer than a millisecond: Athena truncates it"
    for node in tree.find_all(exp.Func):
        if _unit(node) in _SUB_MILLISECOND_UNITS:
            yield node, "a unit finer than a millisecond: Athena's timestamps have none"


# ---------------------------------------------------------------------------------------------
# date-function: argument order, argument types and units
# ---------------------------------------------------------------------------------------------

#: The units Trino's date_add, date_diff and date_trunc accept (DuckDB also takes plurals,
#: 'dow', 'decade', ...: a query Athena rejects).
TRINO_UNITS = {"MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}
_DAY_OR_COARSER = {"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}
_DATE_FUNCTIONS = (
    exp.DateAdd,
    exp.DateSub,
    exp.DateDiff,
    exp.DateTrunc,
    exp.TimestampTrunc,
    exp.TimestampAdd,
    exp.TimestampDiff,
)
#: Day-of-week parts whose numbering differs: DuckDB's dow is 0 (Sunday) to 6, Trino's is ISO,
#: 1 (Monday) to 7.
_DOW_PARTS = {"DOW", "DAYOFWEEK", "DAY_OF_WEEK", "WEEKDAY"}


def _is_date(node: exp.Expr) -> bool:
    kind = node.type
    return isinstance(kind, exp.DataType) and kind.this == exp.DType.DATE


def _truncated_to(node: exp.Expr, unit: str) -> bool:
    """True when ``node`` is (a cast of) date_trunc(unit, ...)."""
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    return isinstance(node, exp.DateTrunc | exp.TimestampTrunc) and _unit(node) == unit


def date_function(tree: exp.Expr) -> Iterator[Hit]:
    for func in tree.find_all(*_DATE_FUNCTIONS):
        unit = _unit(func)
        if unit is None or unit in _SUB_MILLISECOND_UNITS:
            continue  # no unit: not Trino's spelling; sub-millisecond: timestamp-precision
        if unit not in TRINO_UNITS:
            yield func, f"unit {unit!r}: Trino accepts only {', '.join(sorted(TRINO_UNITS))}"
            continue
        if isinstance(func, exp.DateAdd | exp.DateSub | exp.TimestampAdd):
            amount, moved = func.expression, func.this
            if is_temporal(amount) or numeric_kind(moved) is not None:
                yield func, "date_add(unit, amount, date): the amount and the date are swapped"
            elif numeric_kind(amount) in ("decimal", "double"):
                yield func, "date_add's amount must be an integer on Trino"
            elif _is_date(moved) and unit not in _DAY_OR_COARSER:
                yield func, f"date_add of {unit.lower()}s to a date: Trino rejects it"
        elif isinstance(func, exp.DateDiff | exp.TimestampDiff):
            ends = [func.this, func.expression]
            if any(not is_temporal(end) and not is_unknown(end) for end in ends):
                yield func, "date_diff(unit, start, end): an argument is not a date or timestamp"
            elif unit in _DAY_OR_COARSER and not all(
                _is_date(end) if unit == "DAY" else _truncated_to(end, unit) for end in ends
            ):
                yield (
                    func,
                    f"date_diff in {unit.lower()}s: Trino counts whole {unit.lower()}s elapsed, "
                    "DuckDB the boundaries crossed (equal only on values truncated to the unit)",
                )
    for extract in tree.find_all(exp.Extract):
        if extract.name.upper() in _DOW_PARTS:
            yield extract, "day of week: 1 (Monday) to 7 on Trino, 0 (Sunday) to 6 on DuckDB"
    for dow in tree.find_all(exp.DayOfWeek):
        yield dow, "day of week: 1 (Monday) to 7 on Trino, 0 (Sunday) to 6 on DuckDB"


# ---------------------------------------------------------------------------------------------
# regex-dialect: Java's regular expressions (Athena) against RE2 (DuckDB)
# ---------------------------------------------------------------------------------------------

_REGEX_FUNCTIONS = (
    exp.RegexpLike,
    exp.RegexpILike,
    exp.RegexpExtract,
    exp.RegexpExtractAll,
    exp.RegexpReplace,
    exp.RegexpSplit,
    exp.RegexpCount,
)
_ANONYMOUS_REGEX = {"regexp_position", "regexp_count", "regexp_extract_all", "regexp_split"}
#: Pattern features one engine has and the other lacks (or reads differently).
PATTERN_FEATURES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\\[1-9]"), "a backreference (RE2 has none)"),
    (re.compile(r"\(\?<?[=!]"), "a lookahead or lookbehind (RE2 has none)"),
    (re.compile(r"\(\?>"), "an atomic group (RE2 has none)"),
    (re.compile(r"(?<!\\)[*+?}]\+"), "a possessive quantifier (RE2 has none)"),
    (re.compile(r"\(\?P[<=>]"), "a Python-style named group (Java has none)"),
    (re.compile(r"\[\[:\w+:\]\]"), "a POSIX class like [[:alpha:]] (Java reads it as a set)"),
    (re.compile(r"\\p\{(Is|In|java)?[A-Z][a-z]+\}"), "a Java \\p{...} class (RE2 lacks it)"),
    (re.compile(r"\\[hHRXGZ]"), "an escape only Java has (\\h, \\R, \\X, \\G, \\Z)"),
    (re.compile(r"\(\?[a-zA-Z-]*[a-hj-ln-rt-zA-Z][a-zA-Z-]*[:)]"),
     "an inline flag other than i, m, s (Java's and RE2's differ: (?U) is another thing)"),
]  # fmt: skip


def _pattern(func: exp.Expr) -> exp.Expr | None:
    if isinstance(func, exp.Anonymous):
        return func.expressions[1] if len(func.expressions) > 1 else None
    return func.args.get("expression")


def regex_dialect(tree: exp.Expr) -> Iterator[Hit]:
    funcs = [
        *tree.find_all(*_REGEX_FUNCTIONS),
        *(a for a in tree.find_all(exp.Anonymous) if a.name.lower() in _ANONYMOUS_REGEX),
    ]
    for func in funcs:
        pattern = _pattern(func)
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            yield func, "the pattern is not a literal, so it cannot be checked for both engines"
            continue
        for feature, what in PATTERN_FEATURES:
            if feature.search(pattern.name):
                yield func, f"pattern {pattern.name!r} uses {what}"
        if isinstance(func, exp.RegexpReplace):
            replacement = func.args.get("replacement")
            if not (isinstance(replacement, exp.Literal) and replacement.is_string):
                yield func, "regexp_replace's replacement is not a literal"
            elif re.search(r"\$|\\\d", replacement.name):
                yield func, "a group reference in the replacement: $1 on Athena, \\1 on DuckDB"
            else:
                yield func, "regexp_replace: Athena replaces every match, DuckDB only the first"


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "exact-division",
            "a division of exact numbers (integers or decimals)",
            "use {{ ratio(a, b) }} for a fraction (a double on both engines) or "
            "{{ int_div(a, b) }} for a whole quotient (macros/cross_db.sql)",
            exact_division,
        ),
        Rule(
            "implicit-cast",
            "varchar compared with or computed against a number, date or timestamp",
            "cast explicitly (cast(x as date), a typed literal date '2026-01-01')",
            implicit_cast,
        ),
        Rule(
            "timestamp-precision",
            "a timestamp finer than Athena's milliseconds, or read from the clock",
            "derive timestamps from the data or the as-of date ({{ as_of_date() }}), to the "
            "millisecond at most",
            timestamp_precision,
        ),
        Rule(
            "date-function",
            "a date function whose arguments, units or numbering differ between the engines",
            "use dbt.dateadd / dbt.datediff / dbt.date_trunc or a dispatched macro "
            "(iso_weekday, iso_week_label) with Trino's units",
            date_function,
        ),
        Rule(
            "regex-dialect",
            "a regular expression Java (Athena) and RE2 (DuckDB) read differently",
            "keep to the syntax both share (no backreferences, lookaround, possessive or "
            "Java-only classes); replacements go through a dispatched macro",
            regex_dialect,
        ),
    )
}
#: The rule :mod:`.scans` implements (it needs the whole project, not one query).
UNBOUNDED_SCAN = Rule(
    "unbounded-partition-scan",
    "an incremental model's query reads every partition of a partitioned table",
    "bound the partition column (a local date lies within a day of its UTC dt), or accept "
    "the scan once in dbt_project/athena_accepted_scans.yml with its bytes at 10x the demo",
    lambda tree: iter(()),
)
ALL_RULES = [*RULES.values(), UNBOUNDED_SCAN]
