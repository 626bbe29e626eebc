"""The differential run: each model's Athena SQL, run on DuckDB, against the local build.

For every model of the compiled project (:mod:`.project`), the Athena query is translated by
sqlglot (:func:`.transpile.to_duckdb`) and run in the :class:`.transpile.DuckDBSession`, whose
relations are the local lake's: the processed zone and the published local warehouse. So each
model reads exactly the inputs the local build's model read, and its rows are compared, as a
multiset, with that model's rows in the warehouse:

* the **full-refresh** form against the whole table (for an incremental model, this also says
  that the daily increments add up to a rebuild);
* the **incremental** form, compiled as on the day after the local build (the session answers
  its macros' queries from the previous run's state), against the warehouse's rows of the
  partitions it rebuilds.

Each gets ``identical``, ``different`` (with rows only one side has) or ``not comparable`` (and
why: a snapshot is its run history; a function sqlglot cannot translate faithfully; a query
DuckDB rejects). Doubles are compared to 9 decimal places (the summation order of two plans may
differ in the last bits).

This runs with DuckDB's arithmetic. It cannot see Trino's decimal rounding or integer overflow
(the type check's ``exact-division`` rule does); it proves the rest of the translation: the
dispatched macros, date and string functions, week logic, time zones, NULL handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot.errors import SqlglotError

from peak.core.lake import Lake
from peak.core.layout import SERVING_WAREHOUSE_KEY
from peak.core.sql import identifier
from peak.model.athena.project import CompiledProject, Node, dag_order
from peak.model.athena.transpile import WAREHOUSE, to_duckdb

IDENTICAL = "identical"
DIFFERENT = "different"
NOT_COMPARABLE = "not comparable"
#: Rows of each side shown for a difference.
EXAMPLES = 3
#: The public model and column that say which day the local warehouse was built as of.
AS_OF_MODEL, AS_OF_COLUMN = "mart_member_activity", "as_of_date"


@dataclass
class Comparison:
    model: str
    form: str
    status: str
    athena_rows: int | None = None
    duckdb_rows: int | None = None
    reason: str = ""
    only_athena: list[tuple[Any, ...]] = field(default_factory=list)
    only_duckdb: list[tuple[Any, ...]] = field(default_factory=list)
    #: The incremental form: the partitions it rebuilt.
    partitions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "form": self.form,
            "status": self.status,
            "athena_rows": self.athena_rows,
            "duckdb_rows": self.duckdb_rows,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.partitions:
            out["partitions"] = self.partitions
        if self.status == DIFFERENT:
            out["only_athena"] = [list(map(str, row)) for row in self.only_athena]
            out["only_duckdb"] = [list(map(str, row)) for row in self.only_duckdb]
        return out


def built_as_of(lake: Lake) -> str:
    """The as-of date the published local warehouse was built with."""
    import duckdb

    path = lake.path(SERVING_WAREHOUSE_KEY)
    if not lake.is_local or not path.exists():
        raise RuntimeError(
            "the comparison needs a local warehouse to compare with: run `peak build` first"
        )
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(f'select max("{AS_OF_COLUMN}") from main."{AS_OF_MODEL}"').fetchone()
    finally:
        con.close()
    if row is None or row[0] is None:
        raise RuntimeError(f"the local warehouse's {AS_OF_MODEL} is empty: nothing to compare")
    return str(row[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_q = identifier


def _compare(con: Any, model: str, form: str, reference: str, partition: str | None) -> Comparison:
    """Compare the temp table ``athena_result`` with ``reference``."""
    ref_columns = con.execute(f"select * from {reference} limit 0").description
    got_columns = [d[0] for d in con.execute("select * from athena_result limit 0").description]
    names = [d[0] for d in ref_columns]
    if sorted(names) != sorted(got_columns):
        return Comparison(
            model,
            form,
            DIFFERENT,
            reason=f"columns differ: athena {got_columns}, duckdb {names}",
        )
    doubles = {d[0] for d in ref_columns if str(d[1]).upper() in ("DOUBLE", "FLOAT")}
    select = ", ".join(f"round({_q(n)}, 9)" if n in doubles else _q(n) for n in names)
    where = ""
    partitions: list[str] = []
    if partition is not None:
        partitions = [
            str(row[0])
            for row in con.execute(
                f"select distinct {_q(partition)} from athena_result order by 1"
            ).fetchall()
        ]
        where = f" where {_q(partition)} in (select {_q(partition)} from athena_result)"
    reference_rows = f"select {select} from {reference}{where}"
    athena_rows = f"select {select} from athena_result"
    counts = con.execute(
        f"select (select count(*) from athena_result), (select count(*) from ({reference_rows}))"
    ).fetchone()
    only_athena = con.execute(
        f"select * from ({athena_rows} except all {reference_rows}) limit {EXAMPLES}"
    ).fetchall()
    only_duckdb = con.execute(
        f"select * from ({reference_rows} except all {athena_rows}) limit {EXAMPLES}"
    ).fetchall()
    return Comparison(
        model,
        form,
        DIFFERENT if only_athena or only_duckdb else IDENTICAL,
        athena_rows=counts[0],
        duckdb_rows=counts[1],
        only_athena=only_athena,
        only_duckdb=only_duckdb,
        partitions=partitions,
    )


def compare_node(project: CompiledProject, node: Node, form: str) -> Comparison:
    session = project.session
    if node.resource_type == "snapshot":
        return Comparison(
            node.name, "snapshot", NOT_COMPARABLE,
            reason="a snapshot holds its run history, not a function of today's inputs",
        )  # fmt: skip
    if node.name not in session.warehouse_models:
        return Comparison(node.name, form, NOT_COMPARABLE, reason="not in the local warehouse")
    sql = node.sql[form]
    incremental = form == "incremental"
    try:
        translated = to_duckdb(
            sql, project.schema, session.previous_run(node.unique_id) if incremental else None
        )
    except SqlglotError as exc:
        return Comparison(node.name, form, NOT_COMPARABLE, reason=f"sqlglot: {_first_line(exc)}")
    reference = f"{WAREHOUSE}.main.{_q(node.name)}"
    with session.lock:
        con = session.con
        try:
            con.execute(f"create or replace temp table athena_result as {translated}")
        except Exception as exc:  # DuckDB's own error: the translation is not runnable
            return Comparison(node.name, form, NOT_COMPARABLE, reason=f"duckdb: {_first_line(exc)}")
        try:
            return _compare(
                con, node.name, form, reference, node.partition if incremental else None
            )
        finally:
            con.execute("drop table if exists athena_result")


def compare_project(project: CompiledProject, select: list[str] | None = None) -> list[Comparison]:
    """Every model (in DAG order), each compiled form, compared with the local warehouse."""
    chosen = set(select or project.nodes)
    results = []
    for node in dag_order(project.nodes):
        if node.name not in chosen:
            continue
        for form in node.sql:
            results.append(compare_node(project, node, form))
    return results
