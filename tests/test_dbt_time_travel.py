"""A build as of day D sees nothing after D: the time-travel property, over every mart.

`peak build --as-of D` (and `peak run --date D`, a backfill or a re-run of a past day) on a lake
that already holds later exports must give the marts a lake holding only the exports up to D
gives: check-ins up to the end of D (local), member and class records as exported by D. Checked
for a Monday, a mid-week day and the last day of a month, on a calendar where members join,
cancel and change, and a class is added, after those days.

`mart_churn` reads the churn snapshot, whose history depends on the runs made (by design: the
date a status began is the as-of date of the run that first saw it). Both lakes here are built
once, so the property covers it too; its own invariant, whatever the run order (a later day
built before an earlier one), is tested below: `churn_date <= evaluated_on`, and re-building an
earlier day gives that day's statuses and dates.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import CLASS, MEMBER, csv_bytes
from tests.test_dbt import copy_lake, peak, query

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]

FIRST = dt.date(2026, 9, 28)  # a Monday: the first export
LAST = dt.date(2026, 11, 8)  # the last export (a Sunday)
#: The days the property is checked for: a Monday, a Wednesday, the last day of a month.
DAYS = [dt.date(2026, 10, 19), dt.date(2026, 10, 28), dt.date(2026, 10, 31)]
CLASSES = {"C1": "Peak Camden", "C2": "Peak Brixton", "C3": "Peak Camden"}
C3_FROM = dt.date(2026, 10, 26)  # the timetable lists C3 from this export on
#: Per member: home gym, join date, the weekdays they visit (0 = Monday) and their class.
HABITS = {
    "U1": ("Peak Camden", FIRST - dt.timedelta(days=300), (0, 2), "C1"),
    "U2": ("Peak Brixton", FIRST - dt.timedelta(days=200), (1,), "C2"),
    "U3": ("Peak Camden", dt.date(2026, 10, 20), (3, 5), "C1"),  # joins on 2026-10-20
    "U4": ("Peak Brixton", FIRST - dt.timedelta(days=100), (4,), "C2"),
    "U5": ("Peak Camden", FIRST - dt.timedelta(days=400), (), "C1"),  # visits twice, below
    "U6": ("Peak Brixton", FIRST - dt.timedelta(days=500), (), "C2"),  # never: churned
}
EXTRA_VISITS = {("U5", dt.date(2026, 9, 29)), ("U5", dt.date(2026, 11, 3)),
                ("U1", dt.date(2026, 10, 29)), ("U3", dt.date(2026, 11, 1))}  # fmt: skip


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def member_record(uid: str, day: dt.date) -> dict | None:
    """The member's record in the full members export of ``day`` (None before they joined)."""
    home, joined, _, _ = HABITS[uid]
    if day < joined:
        return None
    record = {**MEMBER, "user_id": uid, "email": f"{uid.lower()}@example.com", "location": home,
              "join_date": joined.isoformat(), "updated_at": f"{joined}T08:00:00Z"}  # fmt: skip
    if uid == "U2" and day >= dt.date(2026, 10, 22):  # cancels
        record.update(status="cancelled", updated_at="2026-10-22T09:00:00Z")
    if uid == "U4" and day >= dt.date(2026, 10, 29):  # changes plan, then e-mail
        record.update(plan="basic", updated_at="2026-10-29T09:00:00Z")
    if uid == "U4" and day >= dt.date(2026, 11, 2):
        record.update(email="u4.new@example.com", updated_at="2026-11-02T09:00:00Z")
    return record


def checkins(day: dt.date) -> list[dict]:
    rows = []
    for uid, (_, joined, weekdays, klass) in HABITS.items():
        if day >= joined and (day.weekday() in weekdays or (uid, day) in EXTRA_VISITS):
            if uid == "U2" and day >= dt.date(2026, 10, 22):
                continue
            hour = 21 if day.weekday() == 2 else 7  # an evening check-in on Wednesdays
            rows.append({"attendance_id": f"{uid}-{day}", "user_id": uid, "class_id": klass,
                         "checked_in_at": f"{day}T{hour:02d}:25:00Z"})  # fmt: skip
            if day >= C3_FROM and uid == "U1":
                rows.append({"attendance_id": f"{uid}-{day}-c3", "user_id": uid,
                             "class_id": "C3", "checked_in_at": f"{day}T12:10:00Z"})  # fmt: skip
    return rows


def write_exports(inbox: Path, until: dt.date) -> None:
    inbox.mkdir(parents=True)
    for day in days(FIRST, until):
        members = [r for uid in HABITS if (r := member_record(uid, day))]
        classes = [{**CLASS, "class_id": cid, "location": loc} for cid, loc in CLASSES.items()
                   if cid != "C3" or day >= C3_FROM]  # fmt: skip
        (inbox / f"members_{day}.csv").write_bytes(csv_bytes(members))
        (inbox / f"classes_{day}.csv").write_bytes(csv_bytes(classes))
        rows = checkins(day)
        if rows:
            (inbox / f"attendance_{day}.csv").write_bytes(csv_bytes(rows))


def landed(path: Path, until: dt.date) -> Path:
    inbox, lake = path / "inbox", path / "lake"
    write_exports(inbox, until)
    peak(lake, "ingest", str(inbox), "--date", until.isoformat())
    peak(lake, "transform", "--no-quality")
    return lake


def marts(lake: Path) -> dict[str, list[tuple]]:
    names = [r[0] for r in query(lake, "select table_name from information_schema.tables "
                                       "where table_name like 'mart\\_%' escape '\\' "
                                       "order by table_name")]  # fmt: skip
    return {name: sorted(query(lake, f"select * from {name}"), key=repr) for name in names}


@pytest.fixture(scope="module")
def full_lake(tmp_path_factory) -> Path:
    return landed(tmp_path_factory.mktemp("full"), LAST)


@pytest.mark.parametrize("day", DAYS, ids=[d.strftime("%a-%Y-%m-%d") for d in DAYS])
def test_a_build_as_of_a_day_equals_a_build_of_the_lake_up_to_that_day(
    full_lake, day, tmp_path_factory
):
    # A lake of its own, never built before: both sides' churn snapshots hold one run.
    lake = copy_lake(full_lake, tmp_path_factory.mktemp(f"later-{day}") / "lake")
    peak(lake, "build", "--as-of", day.isoformat())
    with_later_data = marts(lake)
    only_up_to_day = landed(tmp_path_factory.mktemp(f"upto-{day}"), day)
    peak(only_up_to_day, "build", "--as-of", day.isoformat())
    expected = marts(only_up_to_day)
    assert sorted(with_later_data) == sorted(expected)
    assert len(expected) >= 9
    for name, rows in expected.items():
        assert rows, name  # every mart has rows as of each day: the comparison means something
        assert with_later_data[name] == rows, name


def test_mart_location_daily_has_no_day_after_the_as_of_date(full_lake, tmp_path):
    lake = copy_lake(full_lake, tmp_path / "lake")
    day = DAYS[1]
    peak(lake, "build", "--as-of", day.isoformat())
    assert query(lake, "select max(activity_date) from mart_location_daily") == [(day,)]


def test_re_building_an_earlier_day_dates_no_churn_after_it(full_lake, tmp_path):
    """The churn snapshot's invariant: whatever the order of the runs, `churn_date` is on or
    before `evaluated_on`, and a re-build of an earlier day gives that day's statuses."""
    lake = copy_lake(full_lake, tmp_path / "lake")
    later, earlier = DAYS[2], DAYS[0]
    peak(lake, "build", "--as-of", later.isoformat())
    peak(lake, "build", "--as-of", earlier.isoformat())
    rows = query(lake, "select user_id, churn_status, churn_date, evaluated_on from mart_churn")
    assert rows and all(r[3] == earlier for r in rows)
    assert [r for r in rows if r[2] > r[3]] == []
    # The statuses are those a build as of the earlier day alone gives.
    fresh_lake = copy_lake(full_lake, tmp_path / "fresh")
    peak(fresh_lake, "build", "--as-of", earlier.isoformat())
    fresh = query(fresh_lake, "select user_id, churn_status from mart_churn order by user_id")
    assert sorted((r[0], r[1]) for r in rows) == fresh
