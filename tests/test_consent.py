"""Members' choices in the model: who may be e-mailed and listed, and who has left.

The booking system's member export is a full snapshot of its member table (contracts/members.yml),
except the partial files the contract names (the day's sign-ups, delivered beside the full
export). A member missing from the newest full export has left: they leave the model's current
members (``int_members_latest``), so no e-mail, no HubSpot upsert, no list. A later partial
export only adds members. The e-mail mart holds only members who opted in to marketing; the
HubSpot mart holds every current member with their churn status and consent, for the sink to
choose its audience (activation config) and keep marketing lists to consenting contacts.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import contracts
from generator.generate import generate
from tests.conftest import CHECKIN, CLASS, MEMBER, csv_bytes
from tests.test_dbt import copy_lake, last_report, peak, query

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dbt")]

AS_OF = "2026-11-24"


def member(uid: str, **changes: str) -> dict[str, str]:
    return {
        **MEMBER,
        "user_id": uid,
        "email": f"{uid.lower()}@example.com",
        "status": "cancelled",
        "updated_at": "2026-11-01T10:00:00Z",
        **changes,
    }


#: U1..U4 in the first full export; U2 is gone from the second; U5 signs up beside it.
FIRST = [
    member("U1"),
    member("U2"),
    member("U3", marketing_opt_in="false"),
    member("U4", status="active"),
]
SECOND = [member("U1"), member("U3", marketing_opt_in="false"), member("U4", status="active")]
SIGNUPS = [member("U5", join_date="2026-11-23", updated_at="2026-11-23T10:00:00Z")]
#: U4 visits every few days: active, not churned.
VISITS = ["2026-11-10", "2026-11-14", "2026-11-18", "2026-11-21", "2026-11-23"]


def land(lake: Path, inbox: Path, files: dict[str, bytes], date: str) -> None:
    inbox.mkdir(parents=True)
    for name, data in files.items():
        (inbox / name).write_bytes(data)
    peak(lake, "ingest", str(inbox), "--date", date)
    peak(lake, "transform", "--no-quality")


def build(lake: Path, as_of: str = AS_OF) -> None:
    peak(lake, "build", "--as-of", as_of)
    assert last_report(lake, "build")["stages"]["build"]["success"]


def users(lake: Path, relation: str) -> list[str]:
    return [r[0] for r in query(lake, f"select user_id from {relation} order by user_id")]


@pytest.fixture(scope="module")
def consent_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("consent")
    lake = root / "lake"
    checkins = [
        {**CHECKIN, "attendance_id": f"U4-{day}", "user_id": "U4",
         "checked_in_at": f"{day}T07:25:00Z"}
        for day in VISITS
    ]  # fmt: skip
    land(
        lake,
        root / "day1",
        {
            "members_2026-11-20.csv": csv_bytes(FIRST),
            "classes_2026-11-20.csv": csv_bytes([CLASS]),
            "attendance_2026-11-20.csv": csv_bytes(checkins),
        },
        "2026-11-20",
    )
    land(
        lake,
        root / "day2",
        {
            "members_2026-11-24.csv": csv_bytes(SECOND),
            "members_2026-11-24_signups.json": json.dumps(SIGNUPS).encode(),
        },
        "2026-11-24",
    )
    build(lake)
    return lake


def test_the_members_contract_names_its_partial_exports(tmp_path):
    members = contracts.get("members")
    assert members.is_partial_export("members_2026-11-24_signups.json")
    assert members.is_partial_export("inbox/MEMBERS_2026-11-24_SIGNUPS.JSON")
    assert not members.is_partial_export("members_2026-11-24.csv")
    assert not members.is_partial_export("members_2026-11-24_fix.csv")
    assert not contracts.get("attendance").is_partial_export("attendance_2026-11-24_signups.csv")
    # The generator's exports: one full member snapshot, and its sign-ups beside it.
    generate(tmp_path, members=60, days=2, seed=1, end_date=dt.date(2026, 11, 24))
    names = sorted(p.name for p in tmp_path.glob("members*"))
    assert [n for n in names if members.is_partial_export(n)] == ["members_2026-11-24_signups.json"]
    assert len(names) == 2


def test_a_member_missing_from_the_newest_full_export_has_left(consent_lake):
    assert users(consent_lake, "int_members_latest") == ["U1", "U3", "U4", "U5"]
    assert users(consent_lake, "dim_users") == ["U1", "U3", "U4", "U5"]
    for mart in ("mart_churn", "mart_email_targets", "mart_hubspot_contacts"):
        assert "U2" not in users(consent_lake, mart), mart


def test_email_targets_hold_only_members_who_opted_in(consent_lake):
    assert users(consent_lake, "mart_email_targets") == ["U1", "U5"]
    opted = query(
        consent_lake,
        "select count(*) from mart_email_targets targets inner join dim_users users"
        " on targets.user_id = users.user_id where not users.marketing_opt_in",
    )
    assert opted == [(0,)]


def test_the_crm_mart_holds_every_current_member_with_status_and_consent(consent_lake):
    rows = query(
        consent_lake,
        "select user_id, churn_status, marketing_opt_in from mart_hubspot_contacts"
        " order by user_id",
    )
    assert rows == [
        ("U1", "churned", True),
        ("U3", "churned", False),
        ("U4", "active", True),
        ("U5", "churned", True),
    ]


def test_a_partial_export_alone_adds_members_and_removes_none(consent_lake, tmp_path):
    lake = copy_lake(consent_lake, tmp_path / "lake")
    later = [member("U6", join_date="2026-11-24", updated_at="2026-11-24T10:00:00Z")]
    land(
        lake,
        tmp_path / "day3",
        {"members_2026-11-25_signups.json": json.dumps(later).encode()},
        "2026-11-25",
    )
    # Built as of the export's day (a build as of an earlier day sees no later export).
    build(lake, "2026-11-25")
    assert users(lake, "dim_users") == ["U1", "U3", "U4", "U5", "U6"]


def test_values_are_stored_and_sent_as_they_came(consent_lake, tmp_path):
    """A formula-like value passes validation and reaches the CRM mart unchanged (HubSpot gets
    it as text; CSV exports for people neutralise it, activation/README.md)."""
    lake = copy_lake(consent_lake, tmp_path / "lake")
    formula = '=HYPERLINK("http://example.com","Peak")'
    row = member("U1", location=formula, updated_at="2026-11-24T12:00:00Z")
    land(
        lake,
        tmp_path / "day4",
        {"members_2026-11-24_correction.csv": csv_bytes([row, *SECOND[1:]])},
        "2026-11-24",
    )
    build(lake)
    assert query(lake, "select home_location from mart_hubspot_contacts where user_id = 'U1'") == [
        (formula,)
    ]
