"""A backfill of a past day reaches every incremental model.

`peak ingest --date D` and `peak run --date D` stamp the day's rows with an ingestion time at the
end of D: older than what the lake already holds. The incremental models must still rebuild what
those rows change (the fact's partition, the member weeks, months and location days after it),
so every mart equals a `--full-refresh` build on the same lake, whether the backfill comes
through `peak run --date D` (which passes the partitions it wrote) or through ingest, transform
and a bare `peak build`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import CLASS, MEMBER, csv_bytes
from tests.test_dbt import compiled_days, copy_lake, last_report, peak, query

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]

START = dt.date(2026, 10, 5)  # a Monday
END = dt.date(2026, 11, 24)  # the lake's last day (a Tuesday)
BACKFILL = dt.date(2026, 11, 4)  # a Wednesday, well outside the 3-day look-back
LOCATIONS = {"C1": "Peak Camden", "C2": "Peak Brixton"}
#: Per member: the weekdays (0 = Monday) they visit and their class. U3 skips the week of
#: 2026-11-02, which the backfill fills (its streak grows from 1 + 1 to 3 weeks).
HABITS = {"U1": ((0, 2), "C1"), "U2": ((1,), "C2"), "U3": ((3,), "C1"), "U4": ((4,), "C2")}
SKIPPED = {("U3", dt.date(2026, 11, 5))}

#: The models and marts a backfill must reach, with an order that makes their rows comparable.
TABLES = {
    "fct_attendance": "attendance_id",
    "int_location_daily_visits": "location, activity_date",
    "int_member_weeks": "user_id, week_start",
    "int_member_months": "user_id, activity_month",
    "int_member_streaks": "user_id",
    "mart_location_daily": "location, activity_date",
    "mart_leaderboard_weekly": "week_start, board, user_id",  # tied members share a rank
    "mart_member_activity": "user_id",
    "mart_cohort_retention": "cohort_month, home_location, months_since_join",
}


def checkin(uid: str, day: dt.date, klass: str, hour: int = 7, suffix: str = "") -> dict:
    return {
        "attendance_id": f"{uid}-{day}{suffix}",
        "user_id": uid,
        "class_id": klass,
        "checked_in_at": f"{day}T{hour:02d}:25:00Z",
    }


def history() -> list[dict]:
    rows = []
    day = START
    while day <= END:
        for uid, (weekdays, klass) in HABITS.items():
            if day.weekday() in weekdays and (uid, day) not in SKIPPED:
                rows.append(checkin(uid, day, klass))
        day += dt.timedelta(days=1)
    return rows


def backfill_rows() -> list[dict]:
    """The day's late export: new check-ins (one at a gym with no class that day, one that
    extends a streak) and one the lake already holds (the older landing wins it)."""
    return [
        checkin("U3", BACKFILL, "C2", hour=18),
        checkin("U4", BACKFILL, "C1", hour=9),
        checkin("U1", BACKFILL, "C1"),  # already landed with the END export
    ]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    inbox = tmp_path_factory.mktemp("inbox")
    members = [
        {**MEMBER, "user_id": uid, "email": f"{uid.lower()}@example.com",
         "location": LOCATIONS[klass], "join_date": f"2026-{9 + i % 2:02d}-01"}
        for i, (uid, (_, klass)) in enumerate(HABITS.items())
    ]  # fmt: skip
    classes = [{**CLASS, "class_id": cid, "location": loc} for cid, loc in LOCATIONS.items()]
    (inbox / f"members_{END}.csv").write_bytes(csv_bytes(members))
    (inbox / f"classes_{END}.csv").write_bytes(csv_bytes(classes))
    (inbox / f"attendance_{END}.csv").write_bytes(csv_bytes(history()))
    lake = tmp_path_factory.mktemp("backfill") / "lake"
    peak(lake, "ingest", str(inbox), "--date", END.isoformat())
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", END.isoformat())
    return lake


@pytest.fixture
def lake(base, tmp_path) -> Path:
    return copy_lake(base, tmp_path / "lake")


def backfill_inbox(tmp_path: Path) -> Path:
    inbox = tmp_path / "backfill"
    inbox.mkdir()
    (inbox / f"attendance_{BACKFILL}.csv").write_bytes(csv_bytes(backfill_rows()))
    return inbox


def snapshot(lake: Path) -> dict[str, list[tuple]]:
    return {t: query(lake, f"select * from {t} order by {order}") for t, order in TABLES.items()}


def assert_equals_a_full_refresh(lake: Path, as_of: dt.date) -> None:
    incremental = snapshot(lake)
    peak(lake, "build", "--as-of", as_of.isoformat(), "--full-refresh")
    rebuilt = snapshot(lake)
    for table in TABLES:
        assert incremental[table] == rebuilt[table], table


def assert_backfill_landed(lake: Path) -> None:
    day = f"select attendance_id from fct_attendance where dt = date '{BACKFILL}'"
    ids = {r[0] for r in query(lake, day)}
    assert {r["attendance_id"] for r in backfill_rows()} <= ids
    # U3's week of the backfill joins the weeks before and after it into one streak.
    weeks = query(
        lake,
        "select week_start, streak_weeks from int_member_weeks where user_id = 'U3' "
        "and week_start between date '2026-10-26' and date '2026-11-09' order by week_start",
    )
    assert weeks == [
        (dt.date(2026, 10, 26), 4),
        (dt.date(2026, 11, 2), 5),
        (dt.date(2026, 11, 9), 6),
    ]
    brixton = query(
        lake,
        "select visits from int_location_daily_visits "
        f"where location = 'Peak Brixton' and activity_date = date '{BACKFILL}'",
    )
    assert brixton == [(1,)]


def test_the_base_lake_was_landed_after_the_backfilled_day(base):
    newest = query(base, "select max(ingested_at) from fct_attendance")[0][0]
    assert newest.date() == END
    assert query(base, f"select count(*) from fct_attendance where dt = date '{BACKFILL}'") == [
        (1,)
    ]


def test_peak_run_of_a_past_day_reaches_every_incremental_model(lake, tmp_path):
    inbox = backfill_inbox(tmp_path)
    peak(lake, "run", "--date", BACKFILL.isoformat(), "--input", str(inbox), "--no-activate")
    report = last_report(lake, "run")
    assert report["stages"]["build"]["success"]
    # The run builds as of the backfilled day, which sees nothing after it (docs/operations.md).
    assert query(lake, "select max(local_date) from fct_attendance") == [(BACKFILL,)]
    assert_equals_a_full_refresh(lake, BACKFILL)
    # The next daily run has every later day back, the backfill's rows included.
    peak(lake, "build", "--as-of", END.isoformat())
    assert_backfill_landed(lake)
    assert_equals_a_full_refresh(lake, END)


def test_a_bare_build_after_a_backfill_ingest_reaches_every_incremental_model(lake, tmp_path):
    inbox = backfill_inbox(tmp_path)
    peak(lake, "ingest", str(inbox), "--date", BACKFILL.isoformat())
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", END.isoformat())  # no days named: found from the data
    assert_backfill_landed(lake)
    assert_equals_a_full_refresh(lake, END)
    # Nothing changed since: the next run rebuilds only the look-back days (END's 3 days
    # before it hold check-ins on 11-23 and 11-24 only).
    peak(lake, "build", "--as-of", END.isoformat(), "--select", "fct_attendance")
    assert compiled_days(lake) == ["2026-11-23", "2026-11-24"]
