"""The contract's row rules and de-duplication, compiled to SQL for each engine's dialect.

Every rule is written once, here, as a SQL predicate built from the contract (DuckDB's dialect is
the source text); sqlglot parses it and writes it out for the engine that runs it (``duckdb`` for
the local default and the Glue Python-shell job, ``spark`` for the Glue Spark job). Two operations
are lowered per dialect below (reading a wall-clock time in a time zone, and an instant's UTC wall
clock, which DuckDB computes faster without its ICU cast); everything else is plain transpiled
SQL. Both engines run
exactly the statements these functions return, which is what the parity test relies on.

The statements read and write these relations (views or tables the engine provides):

- ``raw``: the raw Parquet of the batch (text columns + lineage)
- ``validated`` = :func:`validate_sql` over ``raw``: typed values, ``dt``, reasons, and the
  original text of rejected rows
- ``quarantined`` = :func:`quarantine_sql`; ``valid_new`` = :func:`valid_sql`
- ``existing``: the processed zone as it is (typed columns + lineage + ``dt``)
- ``ranked`` = :func:`rank_sql` over ``valid_new`` and ``existing``
- ``final`` = :func:`final_sql`: the whole new content of every partition the batch touches
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp

import contracts
from contracts import Column, Contract
from peak.core.sql import identifier, literal

Dialect = str  # "duckdb" | "spark"
DIALECTS = ("duckdb", "spark")

#: Suffixes of the helper columns in ``validated``.
NORM = "__norm"
TYPED = "__typed"
IS_NEW = "_is_new"
RANK = "_rank"


#: A quoted identifier (DuckDB spelling; sqlglot rewrites quotes per dialect) and a string
#: literal: the one quoting helper's (peak.core.sql), under the short names the SQL here uses.
q = identifier
lit = literal


# ---------------------------------------------------------------------------------------------
# Per-dialect lowering of the non-portable operations.
# ---------------------------------------------------------------------------------------------

ZONE_TO_UTC = "PEAK_ZONE_TO_UTC"  # PEAK_ZONE_TO_UTC(ts, 'Europe/London') -> UTC wall clock
UTC_WALL = "PEAK_UTC_WALL"  # PEAK_UTC_WALL(instant) -> its UTC wall clock, a naive timestamp


def _lower(node: exp.Expr, dialect: Dialect) -> exp.Expr:
    if isinstance(node, exp.CTE) and dialect != "duckdb":
        node.set("materialized", None)  # a DuckDB planning hint; Spark has no such syntax
        return node
    if not isinstance(node, exp.Anonymous):
        return node
    name = node.name.upper()
    args = node.expressions
    if name == UTC_WALL:
        (instant,) = (a.sql(dialect) for a in args)
        if dialect == "duckdb":
            # microseconds since the epoch, made a naive timestamp: the same value as a cast in
            # a UTC session, without ICU's calendar (0.3 s per 10M rows)
            text = f"MAKE_TIMESTAMP(EPOCH_US({instant}))"
        else:
            text = f"CAST({instant} AS TIMESTAMP_NTZ)"
        return sqlglot.parse_one(text, read=dialect)
    if name == ZONE_TO_UTC:
        ts, zone = (a.sql(dialect) for a in args)
        if dialect == "duckdb":
            # ICU takes the later offset in the repeated hour; Java (Spark), Trino and Python's
            # fold=0 the earlier one: when the offset in force 3 hours before also reads back
            # as the same wall clock, take that (earlier) instant.
            icu = f"TIMEZONE('UTC', TIMEZONE({zone}, {ts}))"
            before = f"({icu} - INTERVAL 3 HOUR)"
            wall = lambda u: f"TIMEZONE({zone}, TIMEZONE('UTC', {u}))"  # noqa: E731
            alt = f"({ts} - ({wall(before)} - {before}))"
            text = f"CASE WHEN {alt} < {icu} AND {wall(alt)} = {ts} THEN {alt} ELSE {icu} END"
        else:
            text = f"CAST(TO_UTC_TIMESTAMP({ts}, {zone}) AS TIMESTAMP_NTZ)"
        return sqlglot.parse_one(text, read=dialect)
    return node


def render(sql: str, dialect: Dialect) -> str:
    """DuckDB-dialect source text -> the engine's dialect."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r} (known: {', '.join(DIALECTS)})")
    tree = sqlglot.parse_one(sql, read="duckdb").transform(lambda n: _lower(n, dialect))
    return tree.sql(dialect=dialect)


# ---------------------------------------------------------------------------------------------
# Validation: normalise, type, and collect the reason code of every failed rule.
# ---------------------------------------------------------------------------------------------


#: Whitespace trimmed from both ends of every value, spelt out because TRIM's default differs:
#: ASCII whitespace and controls, NEL, every Unicode space separator (NBSP, U+2000-U+200A...),
#: the line/paragraph separators and the BOM. With trailing line terminators gone, Java's regex
#: '$' (which also matches before one) behaves like RE2's.
WHITESPACE = (
    " \t\n\x0b\x0c\r\x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
UPPER_ASCII = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _trim(expr: str) -> str:
    # TRIM with an explicit list of characters is slow in DuckDB (it walks Unicode per row):
    # only values that start or end with whitespace pay for it; a regex finds them cheaply.
    edge = lit(f"^[{WHITESPACE}]|[{WHITESPACE}]$")
    return (
        f"CASE WHEN REGEXP_MATCHES({expr}, {edge}) "
        f"THEN TRIM(BOTH {lit(WHITESPACE)} FROM {expr}) ELSE {expr} END"
    )


def lower_ascii(expr: str) -> str:
    """A-Z -> a-z only: LOWER differs between ICU and Java (and Java's with the JVM locale).

    Printable-ASCII values (nearly all) take the fast LOWER, identical in both engines for them;
    the rest take TRANSLATE, which maps exactly A-Z and is slow in DuckDB.
    """
    translate = f"TRANSLATE({expr}, {lit(UPPER_ASCII)}, {lit(UPPER_ASCII.lower())})"
    return f"CASE WHEN REGEXP_MATCHES({expr}, '^[ -~]*$') THEN LOWER({expr}) ELSE {translate} END"


def _norm_expr(col: Column) -> str:
    text = f"NULLIF({_trim(q(col.name))}, '')"
    return lower_ascii(text) if col.normalize == "lower" else text


def _timestamp_expr(norm: str, timezone: str) -> str:
    """ISO-8601 text -> a naive UTC timestamp (both engines run with their session zone UTC)."""
    # After the shape check the only letters a timestamp may hold are T and Z, in either case.
    upper = f"REPLACE(REPLACE({norm}, 't', 'T'), 'z', 'Z')"
    time_part = f"SUBSTR({upper}, 12)"
    has_zone = (
        f"(RIGHT({upper}, 1) = 'Z' OR STRPOS({time_part}, '+') > 0 OR STRPOS({time_part}, '-') > 0)"
    )
    # The pattern fixes characters 1-16 (date, separator, HH:MM); Spark's cast wants seconds
    # before a zone, so write them in when they are missing.
    canonical = (
        f"(CASE WHEN SUBSTR({upper}, 17, 1) = ':' THEN {upper} "
        f"ELSE SUBSTR({upper}, 1, 16) || ':00' || SUBSTR({upper}, 17) END)"
    )
    zoned = f"{UTC_WALL}(TRY_CAST({canonical} AS TIMESTAMPTZ))"
    shape = f"REGEXP_MATCHES({upper}, {lit(contracts.TIMESTAMP_PATTERN)})"
    if timezone == "UTC":  # the sessions run in UTC: a naive value casts straight to UTC too
        return f"CASE WHEN {shape} THEN {zoned} END"
    naive = f"{ZONE_TO_UTC}(TRY_CAST({canonical} AS TIMESTAMP), {lit(timezone)})"
    return f"CASE WHEN NOT {shape} THEN NULL WHEN {has_zone} THEN {zoned} ELSE {naive} END"


def _typed_expr(col: Column, norm: str, timezone: str) -> str:
    if col.type == "string":
        if col.allowed:
            cases = " ".join(f"WHEN {lit(v.lower())} THEN {lit(v)}" for v in col.allowed)
            return f"CASE {lower_ascii(norm)} {cases} END"
        return norm
    if col.type == "integer":
        return (
            f"CASE WHEN REGEXP_MATCHES({norm}, {lit(contracts.INTEGER_PATTERN)}) "
            f"THEN TRY_CAST({norm} AS BIGINT) END"
        )
    if col.type == "boolean":
        trues = ", ".join(lit(v) for v in contracts.TRUE_VALUES)
        falses = ", ".join(lit(v) for v in contracts.FALSE_VALUES)
        return (
            f"CASE WHEN {lower_ascii(norm)} IN ({trues}) THEN TRUE "
            f"WHEN {lower_ascii(norm)} IN ({falses}) THEN FALSE END"
        )
    if col.type == "date":
        return (
            f"CASE WHEN REGEXP_MATCHES({norm}, {lit(contracts.DATE_PATTERN)}) "
            f"THEN TRY_CAST({norm} AS DATE) END"
        )
    if col.type == "time":
        return f"CASE WHEN REGEXP_MATCHES({norm}, {lit(contracts.TIME_PATTERN)}) THEN {norm} END"
    if col.type == "timestamp":
        return _timestamp_expr(norm, timezone)
    raise ValueError(f"{col.name}: unsupported type {col.type}")


def _bound(col: Column, value: float | str | None) -> str:
    if value is None:
        raise ValueError(f"{col.name}: a bound rule without its bound")
    if col.type == "date":
        return f"DATE {lit(str(value))}"
    if col.type == "timestamp":
        return f"TIMESTAMP {lit(str(value))}"
    return str(int(value)) if float(value).is_integer() else str(value)


def _violation(rule: contracts.Rule, col: Column) -> str:
    """A predicate true when the (present) value breaks the rule."""
    norm, typed = q(col.name + NORM), q(col.name + TYPED)
    present = f"{norm} IS NOT NULL"
    kind = rule.kind
    if kind == "required":
        return f"{norm} IS NULL"
    if kind in ("type", "allowed"):
        return f"{present} AND {typed} IS NULL"
    if kind == "max_length":
        return f"{present} AND LENGTH({norm}) > {col.max_length}"
    if kind == "pattern":
        return f"{present} AND NOT REGEXP_MATCHES({norm}, {lit(col.pattern or '')})"
    if kind == "min":
        return f"{typed} IS NOT NULL AND {typed} < {_bound(col, col.min)}"
    if kind == "max":
        return f"{typed} IS NOT NULL AND {typed} > {_bound(col, col.max)}"
    if kind == "future":
        return (
            f"{typed} IS NOT NULL AND CAST({typed} AS DATE) > "
            f"CAST({q(contracts.INGESTED_AT)} AS DATE)"
        )
    raise ValueError(f"unknown rule kind {rule.kind}")


def dt_expr(contract: Contract, typed: bool = True) -> str:
    if contract.partition.by == "export_date":
        return f"CAST({q(contracts.EXPORT_DATE)} AS DATE)"
    column = contract.partition.column or ""
    return f"CAST({q(column + TYPED if typed else column)} AS DATE)"


def validate_sql(
    contract: Contract,
    *,
    timezone: str,
    dialect: Dialect,
    source: str = "raw",
    lineage: Sequence[str] | None = None,
) -> str:
    """``raw`` -> every row with its typed values, ``dt``, ``_reasons`` and, for a rejected row,
    its original text. ``lineage``: the columns carried through unchanged (default: every
    lineage column; the rules read ``_ingested_at``, ``_export_date`` and ``_parse_error``)."""
    lineage = [q(name) for name in (contracts.LINEAGE_COLUMNS if lineage is None else lineage)]
    originals = [q(c.name) for c in contract.columns]
    norms = [f"{_norm_expr(c)} AS {q(c.name + NORM)}" for c in contract.columns]
    typed = [
        f"{_typed_expr(c, q(c.name + NORM), timezone)} AS {q(c.name + TYPED)}"
        for c in contract.columns
    ]
    reasons, predicates = [], []
    for rule in contract.rules():
        if rule.column is None:
            continue
        predicate = _violation(rule, contract.column(rule.column))
        predicates.append(f"({predicate})")
        reasons.append(f"CASE WHEN {predicate} THEN {lit(rule.code)} END")
    malformed = contract.rules()[0]
    # Valid rows (nearly all) only evaluate the predicates; the reason string is built for the
    # failing rows alone.
    reasons_expr = (
        f"CASE WHEN {q(contracts.PARSE_ERROR)} IS NOT NULL THEN {lit(malformed.code)} "
        f"WHEN {' OR '.join(predicates)} THEN CONCAT_WS(';', {', '.join(reasons)}) "
        "ELSE '' END"
    )
    # Only rejected rows keep their original text (the quarantine's); valid rows carry NULL
    # there, which halves what the engine materialises.
    rejected_originals = [
        f"CASE WHEN {q(contracts.REASONS)} <> '' THEN {q(c.name)} END AS {q(c.name)}"
        for c in contract.columns
    ]
    sql = f"""
        WITH normalised AS (
            SELECT {", ".join(lineage + originals + norms)} FROM {source}
        ), typed AS (
            SELECT *, {", ".join(typed)} FROM normalised
        ), checked AS (
            SELECT *,
                {dt_expr(contract)} AS {q(contracts.PARTITION_COLUMN)},
                {reasons_expr} AS {q(contracts.REASONS)}
            FROM typed
        )
        SELECT
            {", ".join(lineage + rejected_originals)},
            {", ".join(q(c.name + TYPED) for c in contract.columns)},
            {q(contracts.PARTITION_COLUMN)},
            {q(contracts.REASONS)}
        FROM checked
    """
    return render(sql, dialect)


def quarantine_columns(contract: Contract) -> list[str]:
    return [*contract.column_names, *contracts.LINEAGE_COLUMNS, contracts.REASONS]


def quarantine_sql(contract: Contract, *, dialect: Dialect, source: str = "validated") -> str:
    """Rejected rows: original values, lineage, and the reason codes they fail."""
    cols = ", ".join(q(c) for c in quarantine_columns(contract))
    return render(f"SELECT {cols} FROM {source} WHERE {q(contracts.REASONS)} <> ''", dialect)


def valid_sql(contract: Contract, *, dialect: Dialect, source: str = "validated") -> str:
    """Valid rows, typed, with the processed zone's columns."""
    cols = [f"{q(c.name + TYPED)} AS {q(c.name)}" for c in contract.columns]
    cols += [q(c) for c in (*contracts.PROCESSED_LINEAGE, contracts.PARTITION_COLUMN)]
    return render(
        f"SELECT {', '.join(cols)} FROM {source} WHERE {q(contracts.REASONS)} = ''", dialect
    )


#: Which of two rows came first, after the contract's own ``order_by``: the earlier export,
#: then the file name, then the row; the raw id (its bytes' SHA-256) only for two files of the
#: same name and export date. Never when a row was landed: one ingest stamps every file with
#: the same time, two ingests do not, and the result must not depend on the batching.
SEEN_ORDER = (contracts.EXPORT_DATE, contracts.SOURCE_FILE, contracts.SOURCE_ROW, contracts.RAW_ID)
#: The relation every engine provides with each committed raw file's export date:
#: ``(_raw_id, _export_date)`` (the processed zone does not keep the export date).
EXPORTS = "exports"


def _order(contract: Contract, row: str = "c", exports: str = "e") -> str:
    direction = "DESC" if contract.dedup.keep == "latest" else "ASC"
    cols = [
        f"{exports if c == contracts.EXPORT_DATE else row}.{q(c)}"
        for c in (*contract.dedup.order_by, *SEEN_ORDER)
    ]
    return ", ".join(f"{c} {direction} NULLS LAST" for c in cols)


def _dedup_partition(contract: Contract) -> list[str]:
    cols = [*contract.dedup.key]
    if contract.dedup.scope == "partition":
        cols.append(contracts.PARTITION_COLUMN)
    return cols


def rank_sql(
    contract: Contract,
    *,
    dialect: Dialect,
    batch_raw_ids: Sequence[str],
    new: str = "valid_new",
    existing: str = "existing",
    exports: str = EXPORTS,
) -> str:
    """The contested candidates (rows sharing a key) ranked per key; rank 1 survives.

    Candidates are the batch's valid rows and the zone's existing rows. Only keys held by more
    than one candidate are ranked, so the sort touches the few duplicates, not the whole zone.
    They are found in two steps: a hash aggregate over one 64-bit hash of the key keeps the
    hashes seen more than once (a superset of the duplicated keys: a collision only adds a
    key), and the exact aggregate runs on those rows alone. ``candidates`` is read three times
    and is not materialised (DuckDB would otherwise copy every row once more). Existing rows
    that came from the batch's own raw files (left by an interrupted run) are ignored, so a
    re-run gives exactly an uninterrupted run's output. Ties go to :data:`SEEN_ORDER`, the
    export dates read from ``exports`` for the contested rows only.
    """
    keep_cols = [*contract.dedup.key, *contract.dedup.order_by]
    keep_cols += [c for c in SEEN_ORDER if c != contracts.EXPORT_DATE]
    keep_cols += [contracts.PARTITION_COLUMN]
    keep_cols = list(dict.fromkeys(keep_cols))
    cols = ", ".join(q(c) for c in keep_cols)
    partition = _dedup_partition(contract)
    part_cols = ", ".join(q(c) for c in partition)
    join_on = " AND ".join(f"c.{q(k)} = d.{q(k)}" for k in partition)
    batch = ", ".join(lit(r) for r in batch_raw_ids) or "''"
    sql = f"""
        WITH candidates AS NOT MATERIALIZED (
            SELECT {cols}, TRUE AS {IS_NEW} FROM {new}
            UNION ALL
            SELECT {cols}, FALSE AS {IS_NEW} FROM {existing}
            WHERE {q(contracts.RAW_ID)} NOT IN ({batch})
        ), repeated AS (
            SELECT _h FROM (SELECT HASH({part_cols}) AS _h FROM candidates) AS h
            GROUP BY _h HAVING COUNT(*) > 1
        ), contested AS (
            SELECT {part_cols} FROM candidates WHERE HASH({part_cols}) IN (SELECT _h FROM repeated)
            GROUP BY {part_cols} HAVING COUNT(*) > 1
        )
        SELECT c.*, ROW_NUMBER() OVER (
            PARTITION BY {", ".join("c." + q(k) for k in partition)} ORDER BY {_order(contract)}
        ) AS {RANK}
        FROM candidates AS c JOIN contested AS d ON {join_on}
        LEFT JOIN {exports} AS e ON c.{q(contracts.RAW_ID)} = e.{q(contracts.RAW_ID)}
    """
    return render(sql, dialect)


def counts_sql(*, dialect: Dialect, ranked: str = "ranked") -> str:
    """rows_deduplicated (new rows that lost) and rows_superseded (existing rows that lost)."""
    sql = f"""
        SELECT
            COALESCE(SUM(CASE WHEN {IS_NEW} AND {RANK} > 1 THEN 1 ELSE 0 END), 0) AS deduplicated,
            COALESCE(SUM(CASE WHEN NOT {IS_NEW} AND {RANK} > 1 THEN 1 ELSE 0 END), 0) AS superseded
        FROM {ranked}
    """
    return render(sql, dialect)


_IDENT = (contracts.RAW_ID, contracts.SOURCE_ROW)


def _survivors(table: str, ranked: str, columns: str = "s.*") -> str:
    """``table``'s rows minus the ranking's losers, as ``SELECT {columns} FROM table AS s ...``.

    An anti-join written as a LEFT JOIN on the (small) set of losers: a correlated NOT EXISTS
    made DuckDB de-duplicate every outer row's identity first (seconds per 10M rows).
    """
    on = " AND ".join(f"s.{q(c)} = l.{q(c)}" for c in _IDENT)
    ident = ", ".join(q(c) for c in _IDENT)
    return (
        f"SELECT {columns} FROM {table} AS s "
        f"LEFT JOIN (SELECT {ident} FROM {ranked} WHERE {RANK} > 1) AS l ON {on} "
        f"WHERE l.{q(contracts.RAW_ID)} IS NULL"
    )


def affected_sql(
    *,
    dialect: Dialect,
    batch_raw_ids: Sequence[str],
    new: str = "valid_new",
    ranked: str = "ranked",
    existing: str = "existing",
) -> str:
    """The partitions whose content changes: new survivors, lost existing rows, leftovers."""
    dt = q(contracts.PARTITION_COLUMN)
    batch = ", ".join(lit(r) for r in batch_raw_ids) or "''"
    sql = f"""
        SELECT DISTINCT {dt} FROM ({_survivors(new, ranked, f"s.{dt}")}) AS n
        UNION
        SELECT DISTINCT {dt} FROM {ranked} WHERE NOT {IS_NEW} AND {RANK} > 1
        UNION
        SELECT DISTINCT {dt} FROM {existing} WHERE {q(contracts.RAW_ID)} IN ({batch})
    """
    return render(sql, dialect)


def final_sql(
    contract: Contract,
    *,
    dialect: Dialect,
    batch_raw_ids: Sequence[str],
    new: str = "valid_new",
    existing: str = "existing",
    ranked: str = "ranked",
    affected: str = "affected",
) -> str:
    """The complete new content of every affected partition."""
    cols = ", ".join(f"s.{q(c)}" for c in contract.processed_columns)
    dt = q(contracts.PARTITION_COLUMN)
    batch = ", ".join(lit(r) for r in batch_raw_ids) or "''"
    sql = f"""
        {_survivors(existing, ranked, cols)}
          AND s.{dt} IN (SELECT {dt} FROM {affected})
          AND s.{q(contracts.RAW_ID)} NOT IN ({batch})
        UNION ALL
        {_survivors(new, ranked, cols)}
    """
    return render(sql, dialect)
