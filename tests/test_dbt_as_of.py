"""A build as of a past day sees only the check-ins up to that day.

`peak run --date D` (a backfill, or a re-run of a past day) builds with `--as-of D` on a lake that
may already hold later check-ins. Churn status, last visit, visit counts and streaks must be those
of day D: a visit after D neither makes a lapsed member look recent nor extends a streak.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
import yaml

from peak.model import dbt
from tests.conftest import CHECKIN, CLASS, MEMBER, csv_bytes
from tests.test_dbt import last_report, peak, query

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]

AS_OF = dt.date(2026, 11, 1)  # a Sunday: its ISO week is 2026-10-26 .. 2026-11-01
LANDED = "2026-11-24"  # every check-in below was landed by then
#: U1 lapsed before the as-of date and came back after it; U2 visited every week across it.
VISITS = {
    "U1": ["2026-09-15", "2026-11-10"],
    "U2": ["2026-10-20", "2026-10-27", "2026-11-03", "2026-11-10", "2026-11-17"],
}


def churn_inactive_days() -> int:
    """The churn threshold, read from where the project defines it."""
    project = yaml.safe_load((dbt.PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return int(project["vars"]["churn_inactive_days"])


@pytest.fixture(scope="module")
def built_as_of(tmp_path_factory) -> Path:
    inbox = tmp_path_factory.mktemp("inbox")
    members = [{**MEMBER, "user_id": uid, "email": f"{uid.lower()}@example.com"} for uid in VISITS]
    checkins = [
        {**CHECKIN, "attendance_id": f"{uid}-{day}", "user_id": uid,
         "checked_in_at": f"{day}T07:25:00Z"}
        for uid, days in VISITS.items()
        for day in days
    ]  # fmt: skip
    (inbox / f"members_{LANDED}.csv").write_bytes(csv_bytes(members))
    (inbox / f"classes_{LANDED}.csv").write_bytes(csv_bytes([CLASS]))
    (inbox / f"attendance_{LANDED}.csv").write_bytes(csv_bytes(checkins))
    lake = tmp_path_factory.mktemp("as_of") / "lake"
    peak(lake, "ingest", str(inbox), "--date", LANDED)
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", AS_OF.isoformat())
    assert last_report(lake, "build")["stages"]["build"]["success"]
    return lake


def test_the_fixture_lake_holds_visits_after_the_as_of_date(built_as_of):
    """The processed zone holds them; the warehouse built as of AS_OF does not."""
    processed = built_as_of / "processed" / "attendance" / "**" / "*.parquet"
    later = duckdb.execute(
        f"select user_id, count(*) from read_parquet('{processed}', hive_partitioning = true) "
        f"where cast(checked_in_at as date) > date '{AS_OF}' group by user_id order by user_id"
    ).fetchall()
    assert later == [("U1", 1), ("U2", 3)]
    fact = f"select count(*) from fct_attendance where local_date > date '{AS_OF}'"
    assert query(built_as_of, fact) == [(0,)]


def test_a_member_who_lapsed_before_the_as_of_date_is_churned_as_of_that_date(built_as_of):
    rows = query(
        built_as_of,
        "select churn_status, churn_reason, last_visit_date, days_inactive, recent_visits, "
        "cast(churn_date as date), evaluated_on from mart_churn where user_id = 'U1'",
    )
    last_visit = dt.date(2026, 9, 15)
    days = (AS_OF - last_visit).days  # 47
    assert days >= churn_inactive_days()
    assert rows == [
        (
            "churned",
            "inactive",
            last_visit,
            days,
            0,
            last_visit + dt.timedelta(days=churn_inactive_days()),  # the rule's date
            AS_OF,
        )
    ]


def test_activity_counts_only_visits_up_to_the_as_of_date(built_as_of):
    rows = query(
        built_as_of,
        "select user_id, visits_7d, visits_30d, visits_90d, first_visit_date, last_visit_date, "
        "days_since_last_visit, total_visits, as_of_date from mart_member_activity "
        "order by user_id",
    )
    assert rows == [
        ("U1", 0, 0, 1, dt.date(2026, 9, 15), dt.date(2026, 9, 15), 47, 1, AS_OF),
        ("U2", 1, 2, 2, dt.date(2026, 10, 20), dt.date(2026, 10, 27), 5, 2, AS_OF),
    ]


def test_streaks_stop_at_the_as_of_date(built_as_of):
    # U2's five consecutive weeks run to 2026-11-17; as of 2026-11-01 only the first two count.
    rows = query(
        built_as_of,
        "select user_id, current_streak_weeks, longest_streak_weeks from mart_member_activity "
        "order by user_id",
    )
    assert rows == [("U1", 0, 1), ("U2", 2, 2)]


def test_the_crm_and_email_marts_show_the_last_visit_as_of_that_date(built_as_of):
    crm = query(
        built_as_of,
        "select user_id, churn_status, last_visit_date from mart_hubspot_contacts order by 1",
    )
    assert crm == [("U1", "churned", dt.date(2026, 9, 15)), ("U2", "active", dt.date(2026, 10, 27))]
    emails = query(
        built_as_of,
        "select user_id, segment, last_visit_date, days_since_last_visit from mart_email_targets",
    )
    assert emails == [("U1", "churned", dt.date(2026, 9, 15), 47)]
