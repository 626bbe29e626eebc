"""The processed zone's retention and the warehouse: a build and a daily run after a year.

The processed zone keeps a year of check-in partitions (`peak prune`, the S3 lifecycle in
production). The warehouse keeps exactly what the processed zone keeps as of the build's as-of
date: `fct_attendance` holds the days from `as_of - processed_retention_days` on, and every
history built on it (weekly streaks, months, cohorts, gym days) is the history of that year.
Decided once (the dbt var `processed_retention_days`, which `peak prune` applies too), so a build
gives the same warehouse whether or not the prune has run yet, and an incremental build equals a
`--full-refresh` one after any prune.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from peak.core.lake import Lake
from peak.ops import prune
from tests.conftest import CLASS, MEMBER, csv_bytes
from tests.test_dbt import copy_lake, peak, query
from tests.test_dbt_backfill import TABLES, checkin

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]

RETENTION = prune.RETENTION_DAYS["processed"]
START = dt.date(2025, 9, 1)  # a Monday, more than a year before END
END = dt.date(2026, 11, 24)  # the lake's last day (a Tuesday)
WINDOW_START = END - dt.timedelta(days=RETENTION)  # the first day a prune as of END keeps
LOCATIONS = {"C1": "Peak Camden", "C2": "Peak Brixton"}
#: U1 visits every Monday from START (a streak of over a year), U2 every Thursday.
HABITS = {"U1": (0, "C1"), "U2": (3, "C2")}


def history(until: dt.date) -> list[dict]:
    rows, day = [], START
    while day <= until:
        for uid, (weekday, klass) in HABITS.items():
            if day.weekday() == weekday:
                rows.append(checkin(uid, day, klass))
        day += dt.timedelta(days=1)
    return rows


def write_day(inbox: Path, day: dt.date, rows: list[dict]) -> None:
    members = [
        {**MEMBER, "user_id": uid, "email": f"{uid.lower()}@example.com",
         "location": LOCATIONS[klass], "join_date": START.isoformat()}
        for uid, (_, klass) in HABITS.items()
    ]  # fmt: skip
    classes = [{**CLASS, "class_id": cid, "location": loc} for cid, loc in LOCATIONS.items()]
    (inbox / f"members_{day}.csv").write_bytes(csv_bytes(members))
    (inbox / f"classes_{day}.csv").write_bytes(csv_bytes(classes))
    (inbox / f"attendance_{day}.csv").write_bytes(csv_bytes(rows))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    inbox = tmp_path_factory.mktemp("inbox")
    write_day(inbox, END, history(END))
    lake = tmp_path_factory.mktemp("retention") / "lake"
    peak(lake, "ingest", str(inbox), "--date", END.isoformat())
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", END.isoformat())
    return lake


@pytest.fixture
def lake(base, tmp_path) -> Path:
    return copy_lake(base, tmp_path / "lake")


def snapshot(lake: Path) -> dict[str, list[tuple]]:
    return {t: query(lake, f"select * from {t} order by {order}") for t, order in TABLES.items()}


def first_day(lake: Path) -> dt.date:
    return query(lake, "select min(dt) from fct_attendance")[0][0]


def test_the_warehouse_keeps_the_processed_zones_year_even_before_a_prune(base):
    assert any(p.name < f"dt={WINDOW_START}" for p in (base / "processed/attendance").iterdir())
    assert first_day(base) >= WINDOW_START
    # U1's Monday streak runs from START, but the warehouse's history starts at the window.
    weeks = query(
        base, "select longest_streak_weeks from mart_member_activity where user_id = 'U1'"
    )
    assert weeks == [((END - WINDOW_START).days // 7 + 1,)]


def test_a_build_and_a_daily_run_pass_after_the_processed_retention(lake, tmp_path):
    before = snapshot(lake)
    result = prune.prune(Lake.from_uri(str(lake)), as_of=END, zones=["processed"])
    assert result.zones["processed"].files > 0
    assert not any(p.name < f"dt={WINDOW_START}" for p in (lake / "processed/attendance").iterdir())

    peak(lake, "build", "--as-of", END.isoformat())  # exited 1: reconciles_with failed
    assert snapshot(lake) == before  # the prune removed only what the warehouse had let go

    # The next day: its export, a prune as of that day, then the daily run, incremental.
    day = END + dt.timedelta(days=1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_day(inbox, day, [checkin("U1", day, "C1", hour=9, suffix="-next")])
    prune.prune(Lake.from_uri(str(lake)), as_of=day, zones=["processed"])
    peak(lake, "run", "--date", day.isoformat(), "--input", str(inbox), "--no-activate")
    assert first_day(lake) >= day - dt.timedelta(days=RETENTION)
    incremental = snapshot(lake)
    peak(lake, "build", "--as-of", day.isoformat(), "--full-refresh")
    assert snapshot(lake) == incremental
