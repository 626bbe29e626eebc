"""A cancelled member's churn date is the day the membership became cancelled, and stays so.

The members export is a full snapshot and the processed zone keeps every export date. A later
edit of a cancelled member (a new email, an opt-in change) gives a newer `updated_at`; it must
not move the churn date, or the dashboard's churn rate for a past period changes and HubSpot
receives a new date. A member who comes back and cancels again churns from the second time.
A build as of a past day ignores the member records changed after it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import CHECKIN, CLASS, MEMBER, csv_bytes
from tests.test_dbt import last_report, peak, query

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]

CANCELLED_ON = dt.date(2026, 11, 12)  # U1's cancellation (the export of that day shows it)
RECANCELLED_ON = dt.date(2026, 11, 16)  # U2's second cancellation, after coming back
LATER = dt.date(2026, 11, 24)  # the daily run after the later edits


def member(uid: str, day: str, updated_at: str, **changes: str) -> dict[str, str]:
    return {**MEMBER, "user_id": uid, "email": f"{uid.lower()}@example.com",
            "updated_at": updated_at, **changes, "_day": day}  # fmt: skip


#: The members exports, by export date. U1 cancels on 2026-11-12, then only their email and
#: opt-in change; U2 cancels, comes back, cancels again on 2026-11-16, then changes their email;
#: U3 stays active.
EXPORTS = [
    member("U1", "2026-11-10", "2026-11-05T10:00:00Z"),
    member("U2", "2026-11-10", "2026-11-08T10:00:00Z", status="cancelled"),
    member("U3", "2026-11-10", "2026-11-01T10:00:00Z"),
    member("U1", "2026-11-12", "2026-11-12T09:00:00Z", status="cancelled"),
    member("U2", "2026-11-12", "2026-11-11T10:00:00Z", status="active"),
    member("U3", "2026-11-12", "2026-11-01T10:00:00Z"),
    member("U1", "2026-11-16", "2026-11-16T08:00:00Z", status="cancelled",
           email="u1.new@example.com"),
    member("U2", "2026-11-16", "2026-11-16T12:00:00Z", status="cancelled"),
    member("U3", "2026-11-16", "2026-11-01T10:00:00Z"),
    member("U1", "2026-11-20", "2026-11-20T08:00:00Z", status="cancelled",
           email="u1.new@example.com", marketing_opt_in="false"),
    member("U2", "2026-11-20", "2026-11-19T08:00:00Z", status="cancelled",
           email="u2.new@example.com"),
    member("U3", "2026-11-20", "2026-11-01T10:00:00Z"),
]  # fmt: skip
#: Check-ins: U2 and U3 are not inactive as of 2026-11-14 and 2026-11-24.
VISITS = {"U1": ["2026-11-05"], "U2": ["2026-11-13"], "U3": ["2026-11-10", "2026-11-23"]}


def land(lake: Path, inbox: Path, days: list[str], landed: str, since: str = "") -> None:
    """Land the members exports of ``days`` and the check-ins after ``since`` up to ``landed``."""
    inbox.mkdir()
    for day in days:
        rows = [{k: v for k, v in r.items() if k != "_day"} for r in EXPORTS if r["_day"] == day]
        (inbox / f"members_{day}.csv").write_bytes(csv_bytes(rows))
    checkins = [
        {**CHECKIN, "attendance_id": f"{uid}-{day}", "user_id": uid,
         "checked_in_at": f"{day}T07:25:00Z"}
        for uid, visits in VISITS.items()
        for day in visits
        if since < day <= landed
    ]  # fmt: skip
    (inbox / f"classes_{landed}.csv").write_bytes(csv_bytes([CLASS]))
    (inbox / f"attendance_{landed}.csv").write_bytes(csv_bytes(checkins))
    peak(lake, "ingest", str(inbox), "--date", landed)
    peak(lake, "transform", "--no-quality")


def build(lake: Path, as_of: dt.date) -> None:
    peak(lake, "build", "--as-of", as_of.isoformat())
    assert last_report(lake, "build")["stages"]["build"]["success"]


def churn(lake: Path) -> dict[str, tuple]:
    rows = query(
        lake,
        "select user_id, churn_status, churn_reason, cast(churn_date as date), membership_status "
        "from mart_churn order by user_id",
    )
    return {r[0]: r[1:] for r in rows}


@pytest.fixture(scope="module")
def churn_lake(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("churn_date") / "lake"
    land(lake, tmp_path_factory.mktemp("day1") / "inbox", ["2026-11-10", "2026-11-12"],
         CANCELLED_ON.isoformat())  # fmt: skip
    return lake


@pytest.fixture(scope="module")
def on_the_cancellation_day(churn_lake) -> dict[str, tuple]:
    build(churn_lake, CANCELLED_ON)
    return churn(churn_lake)


@pytest.fixture(scope="module")
def after_later_edits(churn_lake, on_the_cancellation_day, tmp_path_factory) -> dict[str, tuple]:
    land(churn_lake, tmp_path_factory.mktemp("day2") / "inbox", ["2026-11-16", "2026-11-20"],
         LATER.isoformat(), since=CANCELLED_ON.isoformat())  # fmt: skip
    build(churn_lake, LATER)
    return churn(churn_lake)


def test_a_cancellation_is_dated_the_day_of_the_cancelling_record(on_the_cancellation_day):
    assert on_the_cancellation_day["U1"] == ("churned", "cancelled", CANCELLED_ON, "cancelled")


def test_later_edits_of_a_cancelled_member_do_not_move_the_churn_date(after_later_edits):
    # U1's record changed on 2026-11-16 (email) and 2026-11-20 (opt-in): still churned on 11-12.
    assert after_later_edits["U1"] == ("churned", "cancelled", CANCELLED_ON, "cancelled")
    assert after_later_edits["U3"][:2] == ("active", None)


def test_hubspot_receives_the_same_churn_date(churn_lake, after_later_edits):
    crm = query(
        churn_lake,
        "select user_id, email, cast(churn_date as date) from mart_hubspot_contacts "
        "where user_id = 'U1'",
    )
    assert crm == [("U1", "u1.new@example.com", CANCELLED_ON)]


def test_a_member_who_came_back_churns_from_their_latest_cancellation(after_later_edits):
    # U2: cancelled (11-08), active again (11-11), cancelled (11-16), email changed (11-19).
    assert after_later_edits["U2"] == ("churned", "cancelled", RECANCELLED_ON, "cancelled")


def test_a_build_as_of_a_past_day_ignores_records_changed_after_it(churn_lake, after_later_edits):
    build(churn_lake, dt.date(2026, 11, 14))
    as_of = churn(churn_lake)
    # U1's edits after 11-14 are not seen; U2 was active again on 11-14 (cancelled on 11-16).
    assert as_of["U1"] == ("churned", "cancelled", CANCELLED_ON, "cancelled")
    assert as_of["U2"][:2] == ("active", None) and as_of["U2"][3] == "active"
