"""The contracts: loading, derived rules, and the file-name conventions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import contracts


def test_every_dataset_of_the_export_format_is_declared():
    assert set(contracts.load_all()) == {"members", "classes", "attendance"}


def test_columns_follow_the_export_format():
    assert contracts.get("attendance").column_names == (
        "attendance_id",
        "user_id",
        "class_id",
        "checked_in_at",
    )
    members = contracts.get("members")
    assert members.column("status").allowed == ("active", "frozen", "cancelled")
    assert {c.name for c in members.columns if c.pii} == {"email", "location"}


def test_rules_are_derived_from_column_declarations():
    codes = [r.code for r in contracts.get("classes").rules()]
    assert codes[0] == "row.malformed"
    assert {"capacity.required", "capacity.type", "capacity.min", "capacity.max"} <= set(codes)
    assert "weekday.allowed" in codes and "start_time.type" in codes
    assert "class_name.type" not in codes  # strings have no type rule
    assert len(codes) == len(set(codes))


def test_rule_lookup_names_the_rule():
    rule = contracts.get("members").rule("email.pattern")
    assert rule.column == "email" and "does not match" in rule.message
    with pytest.raises(KeyError):
        contracts.get("members").rule("email.nope")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: attendance, classes, members"):
        contracts.get("payments")


@pytest.mark.parametrize(
    ("name", "dataset"),
    [
        ("members_2026-11-24.csv", "members"),
        ("Members.json", "members"),
        ("s3://inbox/x/attendance-20261124.jsonl", "attendance"),
        ("classes.csv", "classes"),
        ("payments_2026-11-24.csv", None),
    ],
)
def test_dataset_is_the_file_name_prefix(name, dataset):
    assert contracts.dataset_for_file(name) == dataset


@pytest.mark.parametrize(
    ("name", "date"),
    [
        ("attendance_2026-11-24.csv", "2026-11-24"),
        ("attendance_20261124.csv", "2026-11-24"),
        ("attendance_2026-02-30.csv", None),
        ("members.csv", None),
    ],
)
def test_export_date_comes_from_the_file_name(name, date):
    assert contracts.export_date_from_name(name) == date


def test_a_contract_rejects_rules_that_do_not_fit_the_type():
    with pytest.raises(ValidationError, match="min/max apply"):
        contracts.Column(name="x", type="string", min=1)
    with pytest.raises(ValidationError, match="pattern/allowed"):
        contracts.Column(name="x", type="integer", pattern="^1$")
