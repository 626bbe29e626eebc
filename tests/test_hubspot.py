"""The HubSpot sink against a fake HubSpot over real HTTP (hubspot-api-client end to end)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml
from pydantic import SecretStr

import activation.hubspot.sink as hubspot_sink
import contracts
from activation.audience import DEFAULT_CONFIG, AudienceConfigError, load_audience
from activation.base import SinkContext, SinkResult
from activation.hubspot import HubSpotSink
from activation.hubspot.lists import list_name
from activation.hubspot.properties import (
    PROPERTIES,
    PROPERTY_BY_NAME,
    mart_columns,
    select_properties,
)
from activation.hubspot.state import SyncState
from activation.pacing import Deadline, RateLimiter
from activation.unsubscribe.register import record_suppressed, unsubscribe
from peak.core.lake import Lake
from peak.core.layout import outbox_prefix
from peak.core.settings import HubSpotSettings, Settings
from peak.model.manifest import public_columns
from peak.model.warehouse import DuckDBWarehouse
from tests.conftest import run_peak
from tests.fake_hubspot import FakeHubSpot

TOKEN = "pat-na1-test-0f5e2c1a-secret"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"

MART_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("email", pa.string()),
        ("home_location", pa.string()),
        ("plan", pa.string()),
        ("join_date", pa.date32()),
        ("churn_status", pa.string()),
        ("churn_reason", pa.string()),
        ("churn_date", pa.date32()),
        ("last_visit_date", pa.date32()),
        ("visits_30d", pa.int64()),
        ("marketing_opt_in", pa.bool_()),
    ]
)
LOCATIONS = ("Peak Camden", "Peak Soho", "Peak Brixton")


def member(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "user_id": f"U{i:05d}",
        "email": f"member{i}@example.com",
        "home_location": LOCATIONS[i % len(LOCATIONS)],
        "plan": ("basic", "plus", "premium")[i % 3],
        "join_date": dt.date(2025, 1, 1) + dt.timedelta(days=i % 300),
        "churn_status": "churned" if i % 2 else "at_risk",
        "churn_reason": "no visits in 30 days" if i % 2 else "visits dropped",
        "churn_date": dt.date(2026, 11, 1) + dt.timedelta(days=i % 20),
        "last_visit_date": None if i % 5 == 0 else dt.date(2026, 10, 1) + dt.timedelta(days=i % 25),
        "visits_30d": i % 9,
        "marketing_opt_in": i % 4 != 0,
    }
    row.update(changes)
    return row


def members(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [member(i) for i in range(start, start + n)]


class Sleeps:
    """An injected sleep that records instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Env:
    """A lake, a warehouse holding the mart, and a fake HubSpot; ``sync`` runs the sink once."""

    def __init__(self, tmp_path: Path, hub: FakeHubSpot) -> None:
        self.hub = hub
        self.lake = Lake.from_uri(str(tmp_path / "lake"))
        self.db = tmp_path / "warehouse.serving.duckdb"
        self.runs = itertools.count(1)
        self.sleeps = Sleeps()

    def write_mart(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=MART_SCHEMA)
        con = duckdb.connect(str(self.db))
        try:
            con.register("incoming", table)
            con.execute("create or replace table main.mart_hubspot_contacts as from incoming")
        finally:
            con.close()

    def config(self, **overrides: Any) -> HubSpotSettings:
        values: dict[str, Any] = {
            "access_token": TOKEN,
            "base_url": self.hub.base_url,
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.1,
        }
        values.update(overrides)
        return HubSpotSettings(**values)

    def context(self, dry_run: bool = False) -> SinkContext:
        return SinkContext(
            lake=self.lake,
            warehouse=DuckDBWarehouse(self.db),
            run_id=f"run-{next(self.runs)}",
            dry_run=dry_run,
        )

    def sync(
        self,
        rows: list[dict[str, Any]] | None = None,
        *,
        dry_run: bool = False,
        sleep: Any = None,
        clock: Any = None,
        audience: Any = None,
        **config: Any,
    ) -> SinkResult:
        if rows is not None:
            self.write_mart(rows)
        sink = HubSpotSink(
            self.config(**config),
            sleep=sleep or self.sleeps,
            clock=clock or time.monotonic,
            audience=audience,
        )
        result = sink.run(self.context(dry_run))
        assert result.balanced, result.to_dict()
        return result


@pytest.fixture
def hub() -> Iterator[FakeHubSpot]:
    with FakeHubSpot(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, hub: FakeHubSpot) -> Env:
    return Env(tmp_path, hub)


def upsert_sizes(hub: FakeHubSpot, since: int = 0) -> list[int]:
    return [len(r.body["inputs"]) for r in hub.upsert_calls()[since:]]


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def test_config_from_env_reads_token_host_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("HUBSPOT_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("PEAK_HUBSPOT_RATE_LIMIT", "100")
    config = HubSpotSettings.load()
    assert config.token == TOKEN
    assert config.base_url == "http://127.0.0.1:9"
    assert config.rate_limit == 100 and config.rate_window_s == 10.0
    assert TOKEN not in repr(config) and TOKEN not in str(config)

    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
    monkeypatch.delenv("HUBSPOT_BASE_URL")
    monkeypatch.delenv("PEAK_HUBSPOT_RATE_LIMIT")
    config = HubSpotSettings.load()
    assert config.token is None
    assert config.base_url == "https://api.hubapi.com" and config.rate_limit == 190

    monkeypatch.setenv("PEAK_HUBSPOT_RATE_LIMIT", "lots")
    with pytest.raises(ValueError, match="PEAK_HUBSPOT_RATE_LIMIT"):
        HubSpotSettings.load()

    # How activation.runner builds it: from the activation settings.
    settings = Settings(
        hubspot=HubSpotSettings(
            access_token=SecretStr(TOKEN), base_url="http://127.0.0.1:9", rate_limit=120
        )
    )
    sink = HubSpotSink(settings=settings)
    assert (sink.config.token, sink.config.base_url, sink.config.rate_limit) == (
        TOKEN,
        "http://127.0.0.1:9",
        120,
    )


# ---------------------------------------------------------------------------------------------
# Syncing contacts
# ---------------------------------------------------------------------------------------------


def test_first_sync_creates_schema_and_upserts_in_batches_then_nothing_changes(
    env: Env, hub: FakeHubSpot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HUBSPOT_BASE_URL points every API (properties, contacts, lists) at the fake.
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("HUBSPOT_BASE_URL", hub.base_url)
    sink = HubSpotSink(HubSpotSettings.load(), sleep=env.sleeps)
    assert {a.api_client.configuration.host for a in sink.apis().values()} == {hub.base_url}
    rows = members(250)
    env.write_mart(rows)

    result = sink.run(env.context())

    assert result.balanced and result.status == "ok", result.to_dict()
    assert (result.records, result.sent, result.unchanged, result.failed) == (250, 250, 0, 0)
    assert len(hub.calls("POST", "/crm/v3/properties/contacts/groups")) == 1
    assert hub.groups["peak_fitness"]["label"] == "Peak Fitness"
    created = [r.body["name"] for r in hub.calls("POST", "/crm/v3/properties/contacts")]
    assert sorted(created) == sorted(p.name for p in PROPERTIES)
    for prop in PROPERTIES:
        stored = hub.properties[prop.name]
        assert (stored["type"], stored["fieldType"], stored["groupName"]) == (
            prop.type,
            prop.field_type,
            "peak_fitness",
        )
    assert [o["value"] for o in hub.properties["peak_churn_status"]["options"]] == [
        "at_risk",
        "churned",
        "active",
    ]
    assert upsert_sizes(hub) == [100, 100, 50]
    assert all(i["idProperty"] == "email" for r in hub.upsert_calls() for i in r.body["inputs"])
    assert result.api_calls == len(hub.requests)
    assert {r.path.split("/")[3] for r in hub.requests} == {"properties", "objects", "lists"} | {
        "details"  # GET /account-info/v3/details, once: the portal's id for the dashboard's links
    }

    assert len(hub.contacts) == 250
    five = hub.contact("member5@example.com")
    assert five is not None
    assert {k: v for k, v in five.items() if k.startswith("peak_")} == {
        "peak_user_id": "U00005",
        "peak_churn_status": "churned",
        "peak_churn_reason": "no visits in 30 days",
        "peak_churn_date": "2026-11-06",
        "peak_last_visit_date": None,  # never visited: cleared
        "peak_visits_30d": "5",
        "peak_home_location": "Peak Brixton",
        "peak_plan": "premium",
        "peak_join_date": "2025-01-06",
        "peak_marketing_opt_in": "true",
        "peak_marketing_consent": "true",
    }
    assert hub.contact("member2@example.com")["peak_last_visit_date"] == "2026-10-03"
    assert hub.contact("member4@example.com")["peak_marketing_opt_in"] == "false"

    # Second run, nothing changed: no contact calls, nothing created.
    before = len(hub.requests)
    again = env.sync()
    assert (again.records, again.sent, again.unchanged, again.failed) == (250, 0, 250, 0)
    new = hub.requests[before:]
    assert not [r for r in new if r.method != "GET"], [(r.method, r.path) for r in new]
    assert again.api_calls == len(new) <= 2  # read the properties, verify the lists


def test_one_changed_contact_costs_exactly_one_call(env: Env, hub: FakeHubSpot) -> None:
    rows = members(250)
    env.sync(rows)
    rows[137] = member(137, visits_30d=42, churn_status="churned")
    before = len(hub.upsert_calls())

    result = env.sync(rows)

    assert (result.sent, result.unchanged, result.failed) == (1, 249, 0)
    assert upsert_sizes(hub, before) == [1]
    assert hub.upsert_calls()[-1].body["inputs"][0]["id"] == "member137@example.com"
    assert hub.contact("member137@example.com")["peak_visits_30d"] == "42"


def test_member_back_to_active_is_updated_once_then_forgotten(env: Env, hub: FakeHubSpot) -> None:
    env.sync(members(3))
    state = SyncState.load(env.lake)
    assert set(state.contacts) == {f"member{i}@example.com" for i in range(3)}

    result = env.sync([member(0), member(2)])  # member 1 visits again: no longer in the mart

    assert (result.records, result.sent, result.unchanged) == (3, 1, 2)
    assert result.details["returned_to_active"] == 1
    [call] = hub.upsert_calls()[1:]
    assert call.body["inputs"] == [
        {
            "idProperty": "email",
            "id": "member1@example.com",
            "properties": {"peak_churn_status": "active", "peak_marketing_consent": "false"},
        }
    ]
    assert hub.contact("member1@example.com")["peak_churn_status"] == "active"
    assert "member1@example.com" not in SyncState.load(env.lake).contacts

    third = env.sync()
    assert (third.records, third.sent, third.unchanged) == (2, 0, 2)
    assert len(hub.upsert_calls()) == 2

    # Churning again later is a fresh sync.
    fourth = env.sync([member(0), member(1), member(2)])
    assert fourth.sent == 1 and hub.contact("member1@example.com")["peak_churn_status"] == "churned"


def test_an_email_hubspot_rejects_fails_that_contact_only_and_is_retried_next_run(
    env: Env, hub: FakeHubSpot
) -> None:
    rows = members(150)
    bad = "member..7@example.com"  # the members contract's shape, but HubSpot refuses it
    rows[7] = member(7, email=bad)

    result = env.sync(rows)

    # HubSpot rejects a batch whole: the sink halves it until only the bad contact is left.
    assert (result.sent, result.failed, result.unchanged) == (149, 1, 0)
    assert result.status == "ok" and result.error is None
    [error] = result.errors
    assert error.key == "U00007"
    assert "INVALID_EMAIL" in error.reason and f"Email address {bad} is invalid" in error.reason
    assert hub.contact(bad) is None and len(hub.contacts) == 149
    assert hub.contact("member8@example.com") is not None
    assert set(SyncState.load(env.lake).contacts) == {r["email"] for r in rows} - {bad}
    calls = hub.upsert_calls()
    taken = [len(c.body["inputs"]) for c in calls if c.status == 200]
    rejected = [len(c.body["inputs"]) for c in calls if c.status == 400]
    assert sum(taken) == 149 and rejected[-1] == 1  # nobody sent twice but the bad one's halves
    assert all(c.body["inputs"][0]["id"] != bad for c in calls if c.status == 200)
    assert len(calls) <= 2 + 2 * 7  # two batches, then ~log2(100) halvings
    assert result.details["batches_split"] == len(rejected) - 1
    assert result.retried == len(calls) - 2  # every call after a split re-sends contacts
    assert result.api_calls == len(hub.requests)

    again = env.sync()  # retried, and refused again
    assert (again.sent, again.failed, again.unchanged) == (0, 1, 149)
    assert again.status == "ok" and "INVALID_EMAIL" in again.errors[0].reason
    assert upsert_sizes(hub, len(calls)) == [1]

    rows[7] = member(7, email="member7@example.com")  # fixed at the source
    fixed = env.sync(rows)
    assert (fixed.sent, fixed.failed, fixed.unchanged) == (1, 0, 149)
    assert hub.contact("member7@example.com")["peak_user_id"] == "U00007"


def test_a_malformed_email_fails_locally_and_never_reaches_hubspot(
    env: Env, hub: FakeHubSpot
) -> None:
    shape = contracts.get("members").column("email").pattern
    assert shape  # the one definition of an email's shape, checked before anything is sent
    rows = [
        member(1, email="not-an-email"),
        member(2, email="foo@bar"),
        member(3, email="a b@example.com"),
        member(4),
    ]

    result = env.sync(rows)

    assert (result.records, result.sent, result.failed) == (4, 1, 3)
    assert result.status == "ok"
    reasons = {e.key: e.reason for e in result.errors}
    assert set(reasons) == {"U00001", "U00002", "U00003"}
    assert all("members contract" in r for r in reasons.values())
    assert [[i["id"] for i in c.body["inputs"]] for c in hub.upsert_calls()] == [
        ["member4@example.com"]
    ]
    assert [c.status for c in hub.upsert_calls()] == [200]

    again = env.sync()  # still failed with its reason, and still not sent
    assert (again.sent, again.failed, again.unchanged) == (0, 3, 1)
    assert len(hub.upsert_calls()) == 1


def test_bad_contacts_in_a_row_neither_stop_the_run_nor_block_the_others(
    env: Env, hub: FakeHubSpot
) -> None:
    rows = members(20)
    bad = {i: f"member..{i}@example.com" for i in (3, 4, 5, 6)}  # more than max_failed_batches
    for i, address in bad.items():
        rows[i] = member(i, email=address)

    result = env.sync(rows)

    assert result.status == "ok", result.error
    assert (result.sent, result.failed) == (16, 4)
    assert {e.key for e in result.errors} == {f"U{i:05d}" for i in bad}
    assert all("INVALID_EMAIL" in e.reason for e in result.errors)

    # Next run the four are first in line, and a member who returned to active comes after them.
    again = env.sync(rows[:19])
    assert again.status == "ok", again.error
    assert (again.sent, again.failed, again.unchanged) == (1, 4, 15)
    assert hub.contact("member19@example.com")["peak_churn_status"] == "active"


def test_a_rejection_of_every_contact_stops_after_a_few_calls(env: Env, hub: FakeHubSpot) -> None:
    # HubSpot refusing the request itself (the same reason for every contact) is not the
    # contacts' fault: halving would spend ~2 calls per contact, so the run stops instead.
    hub.fail_next(10_000, status=400, path=UPSERT, category="VALIDATION_ERROR")
    result = env.sync(members(250))
    assert result.status == "failed" and "PROPERTY_DOESNT_EXIST" in result.error
    assert (result.sent, result.failed) == (0, 250)
    assert len(hub.upsert_calls()) <= 12
    assert sum(1 for e in result.errors if e.reason.startswith("not sent")) >= 240
    assert SyncState.load(env.lake).contacts == {}


def test_a_changed_email_retires_the_old_contact_from_its_location_list(
    env: Env, hub: FakeHubSpot
) -> None:
    rows = members(3)
    env.sync(rows)
    soho = hub.list_by_name(list_name("Peak Soho"))
    assert hub.list_members(soho["listId"]) == {"member1@example.com"}
    before = len(hub.upsert_calls())

    rows[1] = member(1, email="member1.new@example.com")
    result = env.sync(rows)

    assert (result.records, result.sent, result.unchanged, result.failed) == (4, 2, 2, 0)
    assert result.details["email_changed"] == 1 and result.details["returned_to_active"] == 0
    sent = {i["id"]: i["properties"] for c in hub.upsert_calls()[before:] for i in c.body["inputs"]}
    retire = {  # "" clears a property; false takes the old address out of the marketing lists
        "peak_churn_status": "active",
        "peak_home_location": "",
        "peak_marketing_consent": "false",
    }
    assert sent["member1@example.com"] == retire
    old = hub.contact("member1@example.com")
    assert old["peak_churn_status"] == "active" and old["peak_home_location"] is None
    assert hub.list_members(soho["listId"]) == {"member1.new@example.com"}  # no stale duplicate
    state = SyncState.load(env.lake).contacts
    assert "member1@example.com" not in state and "member1.new@example.com" in state

    third = env.sync()  # told once, then forgotten
    assert (third.records, third.sent, third.unchanged) == (3, 0, 3)


def test_an_old_email_stays_until_the_new_one_can_be_synced(env: Env, hub: FakeHubSpot) -> None:
    rows = members(3)
    env.sync(rows)

    rows[1] = member(1, email="not-an-email")  # changed, but to something that cannot be sent
    result = env.sync(rows)
    assert (result.sent, result.failed) == (0, 1)
    assert hub.contact("member1@example.com")["peak_churn_status"] == "churned"  # untouched
    assert "member1@example.com" in SyncState.load(env.lake).contacts

    rows[1] = member(1, email="member1.new@example.com")
    fixed = env.sync(rows)
    assert (fixed.sent, fixed.failed, fixed.details["email_changed"]) == (2, 0, 1)
    assert hub.contact("member1@example.com")["peak_home_location"] is None


def test_records_that_cannot_be_contacts_fail_locally_with_their_reason(
    env: Env, hub: FakeHubSpot
) -> None:
    rows = [
        member(1),
        member(2, email=None),
        member(3, email="MEMBER1@example.com "),  # the same contact as member 1
        member(4, churn_status="lapsed"),
    ]
    result = env.sync(rows)
    assert (result.records, result.sent, result.failed) == (4, 1, 3)
    reasons = {e.key: e.reason for e in result.errors}
    assert "no email" in reasons["U00002"]
    assert "U00001" in reasons["U00003"]
    assert "'lapsed' is not one of" in reasons["U00004"]
    assert upsert_sizes(hub) == [1]


# ---------------------------------------------------------------------------------------------
# Limits, retries and failures
# ---------------------------------------------------------------------------------------------


def test_429_waits_at_least_retry_after(env: Env, hub: FakeHubSpot) -> None:
    hub.fail_next(1, status=429, retry_after=3, path=UPSERT)
    result = env.sync(members(120))
    assert result.status == "ok" and result.sent == 120
    assert result.retried == 1
    assert result.details["rate_limited_responses"] == 1
    assert max(env.sleeps.calls) >= 3
    assert [r.status for r in hub.upsert_calls()] == [429, 200, 200]


PROPERTIES_PATH = "/crm/v3/properties/contacts"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_on_a_read_is_honoured_and_the_real_status_reported(
    env: Env, hub: FakeHubSpot, status: int
) -> None:
    """urllib3 retried a GET's 429/503 with Retry-After itself and raised MaxRetryError: the
    sink reported "network error: MaxRetryError" and never waited what HubSpot asked."""
    hub.fail_next(1, status=status, retry_after=2, path=PROPERTIES_PATH)
    result = env.sync(members(5))
    assert result.status == "ok" and result.sent == 5 and result.retried == 1
    assert env.sleeps.calls == [2.0]  # exactly Retry-After (the backoff here is at most 0.1 s)

    hub.fail_next(3, status=status, retry_after=2, path=PROPERTIES_PATH)
    result = env.sync(members(6), max_attempts=3)
    assert result.status == "failed"
    assert f"gave up after 3 attempts (HTTP {status}" in result.error
    assert "MaxRetryError" not in result.error


class FakeClock:
    """A clock that only sleeping moves: the sink's overall deadline without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_run_stops_at_its_deadline_naming_the_last_status(env: Env, hub: FakeHubSpot) -> None:
    """A HubSpot answering 503 with Retry-After: 30 to every call cost max_attempts x 30 s
    per call, for every batch; the run now stops at PEAK_HUBSPOT_DEADLINE_S."""
    clock = FakeClock()
    hub.fail_next(100, status=503, retry_after=30, path=UPSERT)
    result = env.sync(members(250), sleep=clock.sleep, clock=clock, deadline_s=100,
                      max_attempts=10, backoff_max_s=1)  # fmt: skip
    assert result.status == "failed"
    assert "deadline of 100 s" in result.error and "HTTP 503" in result.error
    assert sum(clock.sleeps) <= 100  # never waited past it
    assert clock.sleeps == [30.0, 30.0, 30.0]  # the fourth wait would have passed it
    assert result.failed == 250 and result.sent == 0  # left for the next run


def test_a_calls_timeout_is_cut_to_what_is_left_of_the_run() -> None:
    deadline = Deadline(5.0)
    deadline.start()
    assert deadline.timeout(60.0) <= 5.0
    assert Deadline(None).timeout(60.0) == 60.0


def test_the_daily_limit_stops_the_run(env: Env, hub: FakeHubSpot) -> None:
    hub.fail_next(1, status=429, retry_after=3600, path=UPSERT, policy="DAILY")
    result = env.sync(members(150))
    assert result.status == "failed" and "daily API limit" in result.error
    assert (result.sent, result.failed, result.retried) == (0, 150, 0)
    assert env.sleeps.calls == []  # no waiting an hour for it
    assert result.details.get("lists") is None  # nothing else was tried


def test_5xx_is_retried_with_exponential_backoff(env: Env, hub: FakeHubSpot) -> None:
    hub.fail_next(2, status=500, path=UPSERT)
    hub.fail_next(1, status=502, path=UPSERT)  # an HTML body from the load balancer

    result = env.sync(members(50), backoff_base_s=0.2, backoff_max_s=10)

    assert result.status == "ok" and result.sent == 50
    assert result.retried == 3
    assert result.api_calls == len(hub.requests)
    assert [r.status for r in hub.upsert_calls()] == [500, 500, 502, 200]
    first, second, third = env.sleeps.calls
    assert 0.1 <= first <= 0.2 and 0.2 <= second <= 0.4 and 0.4 <= third <= 0.8


def test_a_dropped_connection_is_retried(env: Env, hub: FakeHubSpot) -> None:
    hub.fail_next(1, status=0, path=UPSERT)  # the connection closes without an answer
    result = env.sync(members(10))
    assert result.status == "ok" and result.sent == 10 and result.retried == 1
    assert [r.status for r in hub.upsert_calls()] == [0, 200]


def test_exhausted_retries_fail_the_batch_and_leave_it_for_next_run(
    env: Env, hub: FakeHubSpot
) -> None:
    rows = members(250)
    hub.fail_next(3, status=503, path=UPSERT, after=1)  # batch 2 fails three times

    result = env.sync(rows, max_attempts=3)

    assert result.status == "failed"
    assert "gave up after 3 attempts" in result.error and "\n" not in result.error
    assert (result.sent, result.failed) == (100, 150)  # batch 3 is not attempted
    reasons = {e.reason for e in result.errors}
    assert any("HTTP 503" in r for r in reasons) and any(r.startswith("not sent") for r in reasons)
    assert result.retried == 2
    assert len(SyncState.load(env.lake).contacts) == 100

    again = env.sync()
    assert again.status == "ok"
    assert (again.sent, again.unchanged) == (150, 100)
    assert upsert_sizes(hub)[-2:] == [100, 50]


def test_a_batch_rejected_whole_fails_its_contacts_without_retry(
    env: Env, hub: FakeHubSpot
) -> None:
    hub.fail_next(1, status=400, path=UPSERT)
    result = env.sync(members(150))
    assert result.status == "failed" and result.retried == 0
    assert (result.sent, result.failed) == (50, 100)
    assert all("HTTP 400" in e.reason for e in result.errors)


def test_wrong_token_fails_in_one_line_without_the_token(
    env: Env, hub: FakeHubSpot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "pat-na1-wrong-7777-secret"

    result = env.sync(members(20), access_token=wrong)

    assert result.status == "failed" and result.failed == 20 and result.sent == 0
    assert "401" in result.error and "HUBSPOT_ACCESS_TOKEN" in result.error
    assert "\n" not in result.error
    report = json.dumps(result.to_dict())
    for secret in (wrong, TOKEN):
        assert secret not in report and secret not in caplog.text
    assert result.api_calls == 1  # a 401 is not retried
    assert hub.calls()[0].status == 401


def test_pacing_keeps_under_the_rate_limit(tmp_path: Path) -> None:
    with FakeHubSpot(token=TOKEN, rate_limit=10, window_s=1.0) as hub:
        env = Env(tmp_path, hub)
        started = time.monotonic()
        result = env.sync(members(600), sleep=time.sleep, rate_limit=10, rate_window_s=1.0)
        elapsed = time.monotonic() - started

        assert result.status == "ok" and result.sent == 600
        assert result.api_calls > 20  # three windows' worth
        assert hub.rate_limited == 0 and result.retried == 0
        assert hub.max_in_window(1.0) == 10  # uses the whole limit, never more
        assert elapsed >= 2.0 and result.details["throttle_wait_s"] > 0


def test_the_fake_enforces_its_limit_and_the_sink_recovers(tmp_path: Path) -> None:
    with FakeHubSpot(token=TOKEN, rate_limit=8, window_s=0.5) as hub:
        env = Env(tmp_path, hub)
        # The sink believes it may send 1000 a window: the fake answers 429 + Retry-After.
        result = env.sync(members(300), sleep=time.sleep, rate_limit=1000, rate_window_s=0.5)
        assert hub.rate_limited > 0
        assert result.status == "ok" and result.sent == 300
        assert result.retried == hub.rate_limited == result.details["rate_limited_responses"]


def test_rate_limiter_allows_at_most_limit_per_rolling_window() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(5, 1.0, clock=lambda: now[0], sleep=sleep)
    starts = []
    for _ in range(40):
        limiter.acquire()
        starts.append(now[0])
        now[0] += 0.013  # the call takes 13 ms
        limiter.release()
    for i in range(len(starts) - 5):
        assert starts[i + 5] - (starts[i] + 0.013) >= 1.0
    assert now[0] < 8.5  # and wastes little: 40 calls in ~8 windows


def test_a_crash_resends_at_most_the_batch_in_flight(
    env: Env, hub: FakeHubSpot, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Crash(BaseException):
        pass

    hits = itertools.count(1)

    def failpoint(name: str) -> None:
        if name == "hubspot.after_batch" and next(hits) == 2:
            raise Crash  # dies after HubSpot took batch 2, before it was recorded

    monkeypatch.setattr(hubspot_sink, "failpoint", failpoint)
    rows = members(350)
    with pytest.raises(Crash):
        env.sync(rows)
    assert len(SyncState.load(env.lake).contacts) == 100
    monkeypatch.undo()

    result = env.sync(rows)

    assert (result.sent, result.unchanged) == (250, 100)
    assert upsert_sizes(hub) == [100, 100, 100, 100, 50]  # batch 2 went twice, nothing else
    assert len(hub.contacts) == 350


# ---------------------------------------------------------------------------------------------
# Properties and lists
# ---------------------------------------------------------------------------------------------


def test_a_drifted_property_is_patched_back(env: Env, hub: FakeHubSpot) -> None:
    env.sync(members(5))
    hub.properties["peak_churn_status"]["options"].pop()  # someone removed "active" by hand
    result = env.sync()
    assert result.details["properties_updated"] == ["peak_churn_status"]
    assert len(hub.calls("PATCH", "/crm/v3/properties/contacts/peak_churn_status")) == 1
    assert [o["value"] for o in hub.properties["peak_churn_status"]["options"]][-1] == "active"
    assert env.sync().details["properties_updated"] == []


def test_one_dynamic_list_per_location_created_once(env: Env, hub: FakeHubSpot) -> None:
    rows = members(30)
    result = env.sync(rows)
    assert sorted(result.details["lists_created"]) == sorted(LOCATIONS)
    for location in LOCATIONS:
        item = hub.list_by_name(list_name(location))
        assert item is not None and item["processingType"] == "DYNAMIC"
        assert item["objectTypeId"] == "0-1"
        expected = {
            r["email"] for r in rows if r["home_location"] == location and r["marketing_opt_in"]
        }
        assert hub.list_members(item["listId"]) == expected

    creates = len(hub.calls("POST", "/crm/v3/lists/"))
    again = env.sync()
    assert again.details["lists_created"] == [] and again.details["lists_repaired"] == []
    assert len(hub.calls("POST", "/crm/v3/lists/")) == creates

    # A member moves gym and a new gym opens: one new list, memberships follow the property.
    rows[1] = member(1, home_location="Peak Camden")
    rows.append(member(30, home_location="Peak Leeds"))
    third = env.sync(rows)
    assert third.details["lists_created"] == ["Peak Leeds"]
    assert len(hub.calls("POST", "/crm/v3/lists/")) == creates + 1
    camden = hub.list_by_name(list_name("Peak Camden"))
    assert "member1@example.com" in hub.list_members(camden["listId"])
    leeds = hub.list_by_name(list_name("Peak Leeds"))
    assert hub.list_members(leeds["listId"]) == {"member30@example.com"}


def test_lists_are_found_by_name_and_repaired(env: Env, hub: FakeHubSpot) -> None:
    env.sync(members(30))
    creates = len(hub.calls("POST", "/crm/v3/lists/"))

    # The state is lost: the lists are found by name, none is created twice.
    env.lake.delete_prefix("_state/activation/hubspot/")
    lost = env.sync()
    assert lost.details["lists_created"] == [] and lost.sent == 30
    assert len(hub.calls("POST", "/crm/v3/lists/")) == creates

    # By hand: one list deleted, one's filter edited, one renamed. Recreated, repaired in place.
    camden = hub.list_by_name(list_name("Peak Camden"))
    camden["deletedAt"] = "2026-11-20T00:00:00Z"
    soho = hub.list_by_name(list_name("Peak Soho"))
    soho["filterBranch"]["filterBranches"][0]["filters"][0]["operation"]["values"] = ["Elsewhere"]
    brixton = hub.list_by_name(list_name("Peak Brixton"))
    brixton["name"] = "brixton (old)"
    fixed = env.sync()
    assert fixed.details["lists_created"] == ["Peak Camden"]
    assert fixed.details["lists_repaired"] == ["Peak Brixton", "Peak Soho"]
    assert hub.list_members(soho["listId"]) == {
        f"member{i}@example.com" for i in range(30) if LOCATIONS[i % 3] == "Peak Soho" and i % 4
    }
    assert brixton["name"] == list_name("Peak Brixton")
    assert len(hub.calls("POST", "/crm/v3/lists/")) == creates + 1
    assert env.sync().details["lists_repaired"] == []


def list_members_by_location(hub: FakeHubSpot) -> dict[str, set[str]]:
    return {loc: hub.list_members(hub.list_by_name(list_name(loc))["listId"]) for loc in LOCATIONS}


def test_marketing_lists_hold_only_members_who_may_be_marketed_to(
    env: Env, hub: FakeHubSpot
) -> None:
    """CRM records may hold every customer; a gym's marketing list only those who opted in and
    are not unsubscribed or suppressed, and a later unsubscribe takes one out."""
    rows = members(30)  # every fourth member never opted in
    unsubscribe(env.lake, "Member1@Example.com", source="one-click")
    record_suppressed(env.lake, {"member2@example.com": "COMPLAINT"})

    result = env.sync(rows)

    assert len(hub.contacts) == 30 and result.sent == 30
    barred = {"member1@example.com", "member2@example.com"}
    may = {r["email"] for r in rows if r["marketing_opt_in"] and r["email"] not in barred}
    assert len(may) == 20
    assert list_members_by_location(hub) == {
        loc: {r["email"] for r in rows if r["home_location"] == loc and r["email"] in may}
        for loc in LOCATIONS
    }
    assert result.details["marketing_consent"] == {
        "yes": 20,
        "not opted in": 8,
        "unsubscribed": 1,
        "suppressed by SES (COMPLAINT)": 1,
    }
    assert hub.contact("member1@example.com")["peak_marketing_consent"] == "false"
    assert hub.contact("member4@example.com")["peak_marketing_opt_in"] == "false"

    unsubscribe(env.lake, "member3@example.com", source="one-click")
    later = env.sync()
    assert later.sent == 1 and upsert_sizes(hub)[-1] == 1
    assert hub.contact("member3@example.com")["peak_marketing_consent"] == "false"
    assert "member3@example.com" not in set().union(*list_members_by_location(hub).values())


def test_lists_made_before_consent_are_repaired_in_place(env: Env, hub: FakeHubSpot) -> None:
    """A list whose filter is the home gym alone (made before consent counted) gets the
    consent filter added, keeping its id (campaigns hold on to it)."""
    env.sync(members(12))
    soho = hub.list_by_name(list_name("Peak Soho"))
    branch = soho["filterBranch"]["filterBranches"][0]
    branch["filters"] = [f for f in branch["filters"] if f["property"] == "peak_home_location"]
    assert "member4@example.com" in hub.list_members(soho["listId"])  # never opted in

    fixed = env.sync()

    assert fixed.details["lists_repaired"] == ["Peak Soho"]
    assert hub.list_by_name(list_name("Peak Soho"))["listId"] == soho["listId"]
    assert "member4@example.com" not in hub.list_members(soho["listId"])


def audience_file(tmp_path: Path, **changes: Any) -> Path:
    """A copy of the repository's activation config with some audience keys changed."""
    doc = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        doc[section][key] = value
    path = tmp_path / "activation.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_audience_is_declared_once_in_the_activation_config(
    env: Env, hub: FakeHubSpot, tmp_path: Path
) -> None:
    """The repository's choice (churned and at-risk members, these properties, this consent
    column) is what a run sends; narrowing the statuses to the design's "churned" takes the
    at-risk contacts out of the marketing lists once and syncs churned members only."""
    repo = load_audience()
    assert repo.hubspot_statuses == ("churned", "at_risk")
    assert repo.consent_column == "marketing_opt_in"
    rows = members(20)
    first = env.sync(rows)
    assert first.details["audience"] == {
        "statuses": ["churned", "at_risk"],
        "consent_column": "marketing_opt_in",
    }
    sent = {k for c in hub.upsert_calls() for i in c.body["inputs"] for k in i["properties"]}
    assert sent == set(repo.hubspot_properties)

    churned_only = load_audience(audience_file(tmp_path, hubspot__statuses=["churned"]))
    narrowed = env.sync(audience=churned_only)
    at_risk = {r["email"] for r in rows if r["churn_status"] == "at_risk"}
    assert (narrowed.records, narrowed.sent, narrowed.unchanged) == (20, 10, 10)
    assert narrowed.details["outside_audience"] == 10
    assert narrowed.details["left_audience"] == 10
    last = {i["id"]: i["properties"] for i in hub.upsert_calls()[-1].body["inputs"]}
    assert set(last) == at_risk
    assert all(p == {"peak_marketing_consent": "false"} for p in last.values())
    assert not at_risk & set().union(*list_members_by_location(hub).values())
    assert hub.contact("member2@example.com")["peak_churn_status"] == "at_risk"  # CRM keeps it

    quiet = env.sync(audience=churned_only)  # told once, then forgotten
    assert (quiet.records, quiet.sent, quiet.unchanged) == (10, 0, 10)


def test_the_consent_column_is_taken_from_the_config(
    env: Env, hub: FakeHubSpot, tmp_path: Path
) -> None:
    """A mart carrying its own consent column (dbt's, when it lands) is read by the name the
    config gives, and the opt-in flag alone no longer decides."""
    rows = [member(i, marketing_consent=i % 2 == 0) for i in range(8)]
    schema = MART_SCHEMA.append(pa.field("marketing_consent", pa.bool_()))
    con = duckdb.connect(str(env.db))
    try:
        con.register("incoming", pa.Table.from_pylist(rows, schema=schema))
        con.execute("create or replace table main.mart_hubspot_contacts as from incoming")
    finally:
        con.close()
    audience = load_audience(audience_file(tmp_path, consent__column="marketing_consent"))

    result = env.sync(audience=audience)

    assert result.details["marketing_consent"] == {"yes": 4, "not opted in": 4}
    for i in range(8):
        want = "true" if i % 2 == 0 else "false"
        assert hub.contact(f"member{i}@example.com")["peak_marketing_consent"] == want


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"hubspot__statuses": ["lapsed"]}, "not churn statuses"),
        ({"hubspot__statuses": []}, "non-empty list"),
        ({"hubspot__properties": ["peak_user_id", "peak_churn_status"]}, "must include"),
        ({"hubspot__properties": [*PROPERTY_BY_NAME, "peak_shoe_size"]}, "unknown"),
        ({"consent__column": "Marketing Opt-In"}, "column name"),
    ],
)
def test_a_wrong_audience_fails_the_run_before_any_call(
    env: Env, hub: FakeHubSpot, tmp_path: Path, changes: dict[str, Any], error: str
) -> None:
    env.write_mart(members(3))
    path = audience_file(tmp_path, **changes)
    try:
        audience = load_audience(path)
    except AudienceConfigError as exc:
        assert error in str(exc)
        return
    result = env.sync(audience=audience)
    assert result.status == "failed" and error in (result.error or "")
    assert hub.requests == []


def test_what_the_repository_audience_reads_is_in_the_marts_contract() -> None:
    audience = load_audience()
    props = select_properties(audience.hubspot_properties)
    read = mart_columns(props, audience.consent_column)
    assert set(read) <= set(public_columns("mart_hubspot_contacts"))


# ---------------------------------------------------------------------------------------------
# Full resync: the state rebuilt from what HubSpot holds
# ---------------------------------------------------------------------------------------------

SEARCH = "/crm/v3/objects/contacts/search"


def test_full_resync_against_an_empty_hubspot_recreates_every_contact_once(
    env: Env, hub: FakeHubSpot
) -> None:
    rows = members(250)
    env.sync(rows)
    with FakeHubSpot(token=TOKEN) as empty:  # a new portal; the lake's state is the old one's
        env.hub = empty
        trusting = env.sync()
        assert (trusting.sent, trusting.unchanged) == (0, 250)  # it believes they are there
        assert empty.upsert_calls() == []

        result = env.sync(full_resync=True)

        assert result.status == "ok", result.to_dict()
        # (the trusting run created the properties: one search, which finds nothing)
        assert result.details["full_resync"] == {"found": 0, "search_calls": 1, "forgotten": 250}
        upserted = [i["id"] for c in empty.upsert_calls() for i in c.body["inputs"]]
        assert sorted(upserted) == sorted(r["email"] for r in rows)  # each contact, once
        assert len(empty.contacts) == 250 and result.sent == 250
        assert list_members_by_location(empty) == {
            loc: {r["email"] for r in rows if r["home_location"] == loc and r["marketing_opt_in"]}
            for loc in LOCATIONS
        }

        searched = len(empty.calls("POST", SEARCH))
        again = env.sync(full_resync=True)  # HubSpot now holds them all: nothing to send
        assert (again.sent, again.unchanged) == (0, 250)
        assert again.details["full_resync"]["found"] == 250
        pages = empty.calls("POST", SEARCH)[searched:]
        assert len(pages) == 2 and all(r.body["limit"] == 200 for r in pages)
        assert not [r for r in empty.requests if r.status >= 400]


def test_full_resync_sends_only_the_differences(env: Env, hub: FakeHubSpot) -> None:
    """Contacts deleted in HubSpot are re-created, a property edited there is set back, a
    contact HubSpot lost track of as retired stays untouched; everything else is unchanged."""
    rows = members(40)
    env.sync(rows)
    gone = [f"member{i}@example.com" for i in (3, 17, 22)]
    with hub.lock:
        for address in gone:
            del hub.contacts[hub.by_email.pop(address)]
        hub.contacts[hub.by_email["member5@example.com"]]["properties"]["peak_plan"] = "gold"
    before = len(hub.upsert_calls())
    dry = env.sync(full_resync=True, dry_run=True)  # reads HubSpot, sends and records nothing
    outbox = read_outbox(env, "run-2", "contacts_batch_upsert")
    assert sorted(i["id"] for b in outbox for i in b["inputs"]) == sorted(
        [*gone, "member5@example.com"]
    )
    assert dry.details["full_resync"]["found"] == 37 and len(hub.upsert_calls()) == before
    assert len(SyncState.load(env.lake).contacts) == 40

    result = env.sync(full_resync=True)

    assert result.details["full_resync"]["found"] == 37
    sent = sorted(i["id"] for c in hub.upsert_calls()[before:] for i in c.body["inputs"])
    assert sent == sorted([*gone, "member5@example.com"])
    assert (result.sent, result.unchanged) == (4, 36)
    assert hub.contact("member5@example.com")["peak_plan"] == "premium"
    assert all(hub.contact(a) is not None for a in gone)


def test_full_resync_pages_past_the_search_limit_of_10000(env: Env, hub: FakeHubSpot) -> None:
    """HubSpot's search stops at 10,000 results a query: the read-back pages by object id, so a
    portal of 10,250 of our contacts is read whole, 200 a page, without one 400."""
    rows = members(10_250)
    env.write_mart(rows)
    with hub.lock:  # what an earlier sync left in HubSpot, stored directly (fast)
        for name in ("peak_fitness",):
            hub.groups[name] = {"name": name, "label": "Peak Fitness", "archived": False}
        for prop in PROPERTIES:
            hub._create_property(prop.definition())
    first = env.sync()  # an empty state: sends them all once, HubSpot now holds them
    assert first.sent == 10_250
    env.lake.delete_prefix("_state/activation/hubspot/")  # the state is lost

    result = env.sync(full_resync=True)

    assert result.details["full_resync"]["found"] == 10_250
    assert (result.sent, result.unchanged) == (0, 10_250)
    searches = hub.calls("POST", SEARCH)
    assert len(searches) == 52 and not [r for r in hub.requests if r.status >= 400]


def test_full_resync_waits_out_the_search_limit(tmp_path: Path) -> None:
    """Search has its own limit (HubSpot: 5 a second); a 429 there is retried after its
    Retry-After, and the read-back completes."""
    with FakeHubSpot(token=TOKEN, search_rate_limit=5) as hub:
        env = Env(tmp_path, hub)
        env.sync(members(1_000))
        hub.fail_next(1, status=429, retry_after=2, path=SEARCH)
        result = env.sync(full_resync=True)
        assert result.status == "ok" and result.details["full_resync"]["found"] == 1_000
        assert any(s >= 2 for s in env.sleeps.calls)
        assert result.details["rate_limited_responses"] >= 1


def test_peak_activate_hubspot_full_resync(tmp_path: Path, hub: FakeHubSpot) -> None:
    """The command: `--full-resync` re-creates what a new portal lacks; the plain command
    trusts its state; the option belongs to the HubSpot sink."""
    lake = tmp_path / "lake"
    env = Env(tmp_path, hub)
    env.db = lake / "warehouse.serving.duckdb"
    lake.mkdir()
    env.write_mart(members(30))
    cli_env = {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": hub.base_url}
    run_peak(lake, "activate", "hubspot", check=True, **cli_env)
    with FakeHubSpot(token=TOKEN) as empty:
        cli_env["HUBSPOT_BASE_URL"] = empty.base_url
        run_peak(lake, "activate", "hubspot", check=True, **cli_env)
        assert empty.contacts == {}
        run_peak(lake, "activate", "hubspot", "--full-resync", check=True, **cli_env)
        assert len(empty.contacts) == 30
    wrong = run_peak(lake, "activate", "email", "--full-resync", **cli_env)
    assert wrong.returncode != 0 and "hubspot sink only" in wrong.stderr


def test_the_fake_search_answers_like_hubspot(hub: FakeHubSpot) -> None:
    for i in range(3):
        hub._store_contact(f"c{i}@example.com", {"firstname": f"C{i}"})
    status, ok = call(hub, "POST", SEARCH, {"limit": 2, "properties": ["firstname"]})
    assert status == 200 and ok["total"] == 3 and ok["paging"]["next"]["after"] == "2"
    assert set(ok["results"][0]["properties"]) == {
        "firstname",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }
    _, last = call(hub, "POST", SEARCH, {"limit": 2, "after": "2"})
    assert len(last["results"]) == 1 and "paging" not in last
    for body, message in (
        ({"limit": 201}, "limit"),
        ({"limit": 200, "after": "9900"}, "10000"),
        ({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "HAS_PROPERTY"}]}]},
         "does not exist"),
    ):  # fmt: skip
        status, answer = call(hub, "POST", SEARCH, body)
        assert status == 400 and message in answer["message"], answer


# ---------------------------------------------------------------------------------------------
# Dry runs
# ---------------------------------------------------------------------------------------------


def read_outbox(env: Env, run_id: str, name: str) -> list[dict[str, Any]]:
    key = f"{outbox_prefix('hubspot', run_id)}{name}.jsonl"
    return [json.loads(line) for line in env.lake.read_bytes(key).decode().splitlines()]


def test_dry_run_writes_the_batches_to_the_outbox_and_calls_nothing(
    env: Env, hub: FakeHubSpot
) -> None:
    rows = members(250)
    result = env.sync(rows, dry_run=True)

    assert result.dry_run and result.status == "ok" and result.api_calls == 0
    assert (result.sent, result.unchanged) == (250, 0)
    assert hub.requests == []
    assert result.outbox == env.lake.uri(outbox_prefix("hubspot", "run-1"))
    batches = read_outbox(env, "run-1", "contacts_batch_upsert")
    assert [len(b["inputs"]) for b in batches] == [100, 100, 50]
    assert batches[0]["inputs"][0]["idProperty"] == "email"
    assert len(read_outbox(env, "run-1", "properties")) == len(PROPERTIES)
    assert len(read_outbox(env, "run-1", "lists")) == len(LOCATIONS)
    assert not env.lake.list("_state/")

    # After a real sync a dry run still knows what changed.
    env.sync()
    rows[3] = member(3, churn_status="at_risk")
    dry = env.sync(rows, dry_run=True)
    assert (dry.sent, dry.unchanged) == (1, 249)
    [batch] = read_outbox(env, "run-3", "contacts_batch_upsert")
    assert [i["id"] for i in batch["inputs"]] == ["member3@example.com"]


def test_without_a_token_the_sink_runs_dry_and_says_so(
    env: Env, hub: FakeHubSpot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("HUBSPOT_BASE_URL", hub.base_url)
    env.write_mart(members(10))
    result = HubSpotSink(HubSpotSettings.load()).run(env.context())
    assert result.dry_run and result.status == "ok" and result.sent == 10
    assert "HUBSPOT_ACCESS_TOKEN" in result.details["note"]
    assert hub.requests == []


# ---------------------------------------------------------------------------------------------
# The fake itself answers like HubSpot
# ---------------------------------------------------------------------------------------------


def call(hub: FakeHubSpot, method: str, path: str, body: Any = None, token: str | None = TOKEN):
    request = urllib.request.Request(
        hub.base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_fake_rejects_what_hubspot_rejects(hub: FakeHubSpot) -> None:
    def inputs(n: int) -> dict[str, Any]:
        return {
            "inputs": [
                {"idProperty": "email", "id": f"m{i}@example.com", "properties": {}}
                for i in range(n)
            ]
        }

    status, body = call(hub, "POST", UPSERT, inputs(101))
    assert status == 400
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert "correlationId" in body and "101" in body["message"]

    one = inputs(1)
    one["inputs"][0]["properties"] = {"peak_nope": "1"}
    status, body = call(hub, "POST", UPSERT, one)
    assert status == 400 and "PROPERTY_DOESNT_EXIST" in body["message"]

    # One invalid input rejects the whole batch, as HubSpot's v3 batch endpoints do.
    for address in ("foo@bar", "member..7@example.com"):
        three = inputs(3)
        three["inputs"][1]["id"] = address
        status, body = call(hub, "POST", UPSERT, three)
        assert status == 400 and body["category"] == "VALIDATION_ERROR"
        assert body["message"].startswith("Property values were not valid")
        assert body["errors"] == [
            {
                "message": f"Email address {address} is invalid",
                "code": "INVALID_EMAIL",
                "context": {"propertyName": ["email"]},
            }
        ]
    assert hub.contacts == {}

    status, body = call(hub, "POST", UPSERT, inputs(1), token=None)
    assert status == 401 and body["category"] == "INVALID_AUTHENTICATION"

    group = {"name": "g", "label": "G"}
    assert call(hub, "POST", "/crm/v3/properties/contacts/groups", group)[0] == 201
    assert call(hub, "POST", "/crm/v3/properties/contacts/groups", group)[0] == 409
    prop = {"name": "p", "label": "P", "type": "string", "fieldType": "text", "groupName": "g"}
    assert call(hub, "POST", "/crm/v3/properties/contacts", prop)[0] == 201
    status, body = call(hub, "POST", "/crm/v3/properties/contacts", prop)
    assert status == 409 and body["category"] == "OBJECT_ALREADY_EXISTS"


def test_members_outside_the_audience_are_not_synced_and_the_active_are_retired(
    env: Env, hub: FakeHubSpot
) -> None:
    """The CRM mart holds every current member; the audience (churned and at risk) decides who
    becomes a contact. An active member is never sent; one who was synced and is active again
    is told so once (leaving the lists), then forgotten."""
    rows = [member(1), member(2, churn_status="active"), member(3)]
    first = env.sync(rows)
    assert hub.contact("member2@example.com") is None
    assert first.details["outside_audience"] == 1
    assert {c for c in SyncState.load(env.lake).contacts} == {
        "member1@example.com",
        "member3@example.com",
    }
    rows[0] = member(1, churn_status="active")
    env.sync(rows)
    retired = hub.contact("member1@example.com")
    assert retired["peak_churn_status"] == "active"
    assert retired["peak_marketing_consent"] == "false"
    assert "member1@example.com" not in SyncState.load(env.lake).contacts
