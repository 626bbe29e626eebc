"""The Athena check's rules, each proven on its fixture, and its parts that need no dbt: Trino's
types, the scan analysis, accepted scans, the line mapping.

Each fixture in ``tests/athena_fixtures/`` is one query named after its rule; the lines it marks
``-- fires: <rule>`` are exactly the lines the rule must report (so a fixture proves both that
the rule fires and that the safe spelling beside it does not).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot

from peak.model.athena import check, rules, scans, trino_types
from peak.model.athena.project import CompiledProject, Node, Source, dag_order

FIXTURES = Path(__file__).parent / "athena_fixtures"
MARK = re.compile(r"--\s*fires:\s*([a-z-]+)")

SCHEMA = {
    "awsdatacatalog": {
        "fixtures": {
            "members": {
                "user_id": "varchar",
                "visits": "bigint",
                "weeks": "integer",
                "rate": "double",
                "amount": "decimal(10, 2)",
                "joined": "date",
                "seen_at": "timestamp",
                "label": "varchar",
                "code": "varchar",
            },
            "visits": {
                "user_id": "varchar",
                "local_date": "date",
                "ingested_at": "timestamp",
                "dt": "date",
            },
            "visits_by_day": {
                "user_id": "varchar",
                "local_date": "date",
                "visit_day": "date",
            },
        }
    }
}
VIEWS = {
    ("fixtures", "visits_by_day"): (
        "select user_id, local_date, dt as visit_day from awsdatacatalog.fixtures.visits"
    )
}
PARTITIONS = {("fixtures", "visits"): "dt"}


def marked(text: str, rule: str) -> set[int]:
    return {
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if (found := MARK.search(line)) and found.group(1) == rule
    }


def test_every_rule_has_a_fixture():
    assert {path.stem for path in FIXTURES.glob("*.sql")} == {r.name for r in rules.ALL_RULES}


@pytest.mark.parametrize("rule", sorted(rules.RULES))
def test_each_rule_fires_on_exactly_the_marked_lines_of_its_fixture(rule):
    text = (FIXTURES / f"{rule}.sql").read_text()
    findings = check.check_query(
        text, SCHEMA, model="fixture", form="full-refresh", file=f"{rule}.sql"
    )
    fired = {f.line for f in findings if f.rule == rule}
    assert fired == marked(text, rule), [(f.line, f.expression, f.message) for f in findings]
    for finding in findings:
        assert finding.expression and finding.message and finding.hint
    # The fixture's safe lines trip no other rule either.
    assert {f.rule for f in findings} == {rule}


def test_the_scan_rule_fires_on_exactly_the_marked_lines_of_its_fixture():
    text = (FIXTURES / f"{rules.UNBOUNDED_SCAN.name}.sql").read_text()
    found = scans.scans(text, views=VIEWS, partitions=PARTITIONS, schema=SCHEMA)
    unbounded = {s.line for s in found if not s.bounded and s.columns}
    assert unbounded == marked(text, rules.UNBOUNDED_SCAN.name)
    partition_only = [s for s in found if not s.columns]
    assert len(partition_only) == 1 and not partition_only[0].bounded
    assert {s.relation for s in found} == {"fixtures.visits"}  # the view was inlined


def test_findings_name_the_expression_and_the_rules_hint():
    (finding,) = check.check_query(
        "select\n  visits * 1.0 / weeks as rate\nfrom awsdatacatalog.fixtures.members",
        SCHEMA,
        model="mart_cohort_retention",
        form="full-refresh",
        file="dbt_project/models/marts/dashboard/mart_cohort_retention.sql",
    )
    assert finding.where == "dbt_project/models/marts/dashboard/mart_cohort_retention.sql:2"
    assert finding.expression == "members.visits * 1.0 / members.weeks"
    assert "1 decimal place" in finding.message
    assert finding.hint == rules.RULES["exact-division"].hint


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("visits * 1.0 / 4", "decimal(21, 1)"),  # Trino: a decimal, rounded to 1 place
        ("visits / weeks", "bigint"),  # truncated
        ("sum(weeks)", "bigint"),
        ("avg(weeks)", "double"),
        ("cast(visits as double) / weeks", "double"),
        ("0.25 * amount", "decimal(12, 4)"),
        ("date_diff('day', joined, joined)", "bigint"),
        ("1e3", "double"),
    ],
)
def test_expressions_are_typed_as_trino_types_them(expression, expected):
    tree = trino_types.annotate(
        sqlglot.parse_one(
            f"select {expression} as x from awsdatacatalog.fixtures.members", read="athena"
        ),
        SCHEMA,
    )
    assert trino_types.output_types(tree) == {"x": expected}


def test_compiled_lines_map_back_to_the_model_source():
    source = (
        "{{ config(x) }}\nwith a as (\n  select 1\n)\n{% if y %}\nselect * from a\n{% endif %}\n"
    )
    compiled = "\nwith a as (\n  select 1\n)\n\nselect * from a\n\n"
    mapping = check.line_map(source, compiled)
    assert mapping[2] == 2 and mapping[3] == 3 and mapping[6] == 6


# ---------------------------------------------------------------------------------------------
# A project in miniature: accepted scans, stale entries, DAG typing
# ---------------------------------------------------------------------------------------------

DAILY = (
    "select user_id, local_date, dt from awsdatacatalog.fixtures.visits "
    "where local_date >= date '2026-11-01'"
)


def project(incremental_sql: str = DAILY) -> CompiledProject:
    node = Node(
        unique_id="model.peak_fitness.daily",
        name="daily",
        resource_type="model",
        materialized="incremental",
        file="models/daily.sql",
        schema="analytics",
        depends_on=[],
        partition="dt",
        sql={"full-refresh": DAILY, "incremental": incremental_sql},
    )
    source = Source(
        "processed.visits",
        "visits",
        "fixtures",
        "visits",
        SCHEMA["awsdatacatalog"]["fixtures"]["visits"],
    )
    return CompiledProject({"daily": node}, [source], SCHEMA, [], {}, session=None, vars=None)  # type: ignore[arg-type]


def accepted(columns: tuple[str, ...] = ("local_date", "user_id")) -> check.AcceptedScan:
    return check.AcceptedScan("daily", "model", "processed.visits", columns, 1_000, "fixture")


def test_an_unbounded_scan_fails_the_check_unless_it_is_accepted():
    result = check.check_project(project(), accepted=[])
    (finding,) = result.failures
    assert finding.rule == rules.UNBOUNDED_SCAN.name and finding.form == "incremental"
    assert finding.relation == "processed.visits"
    assert finding.columns == ("local_date", "user_id")
    assert not result.ok

    result = check.check_project(project(), accepted=[accepted()])
    assert result.ok and [a for _, a in result.accepted] == [accepted()]


def test_an_accepted_scan_reading_more_columns_than_listed_is_a_finding_again():
    result = check.check_project(project(), accepted=[accepted(("local_date",))])
    assert [f.rule for f in result.failures] == [rules.UNBOUNDED_SCAN.name]


def test_an_accepted_scan_no_query_makes_any_more_is_stale():
    bounded = DAILY + " and dt >= date '2026-10-31'"
    result = check.check_project(project(bounded), accepted=[accepted()])
    assert result.failures == [] and result.stale == [accepted()] and not result.ok


def test_the_accepted_scans_file_lists_each_scan_once_with_its_bytes():
    entries = check.load_accepted()
    keys = [(a.model, a.query, a.relation) for a in entries]
    assert len(keys) == len(set(keys))
    for entry in entries:
        assert entry.query in ("model", "introspective")
        assert entry.bytes_at_10x > 0 and entry.why and entry.columns


def test_models_are_typed_in_dag_order_from_their_inputs():
    first = Node(
        "model.p.a", "a", "model", "table", "a.sql", "s", [], sql={"full-refresh": "select 1"}
    )
    second = Node(
        "model.p.b",
        "b",
        "model",
        "table",
        "b.sql",
        "s",
        ["model.p.a"],
        sql={"full-refresh": "select 1"},
    )
    assert [n.name for n in dag_order({"b": second, "a": first})] == ["a", "b"]
