"""The email sink against a fake SES API v2 over real HTTP (boto3 end to end).

moto has no SES v2 bulk sending, so :mod:`tests.fake_sesv2` plays SES: the real boto3 ``sesv2``
client signs and sends every request to it, and it answers as SES does (templates, the account's
quota and sending rate, the suppression list, ``SendBulkEmail`` with its 50-recipient limit,
headers and per-entry results, errors). Faults (throttling, a daily quota, an answer lost after
SES took a send) are injected into the fake, never into the sink. Time never passes: the sink's
sleeps advance a fake clock, which the fake SES reads too, so pacing is checked against SES's
own sending rate without waiting.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow as pa
import pytest

import activation.email.sink as email_sink
from activation.base import SinkContext, SinkResult
from activation.email import EmailSink
from activation.email.campaigns import load_campaigns
from activation.email.errors import EmailConfigError
from activation.email.ledger import Ledger
from activation.email.settings import DEFAULT_CAMPAIGNS, DEFAULT_TEMPLATES, client_config
from activation.email.templates import load_template, render
from activation.pacing import SendPacer
from activation.unsubscribe.links import unsubscribe_url, verify_unsubscribe
from activation.unsubscribe.register import DoNotMarket, suppressed, unsubscribe, unsubscribed
from peak.core.lake import Lake
from peak.core.layout import outbox_prefix
from peak.core.settings import EmailSettings
from peak.model.warehouse import DuckDBWarehouse
from tests.fake_sesv2 import FakeSesV2

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"
SENDER_ADDRESS = "hello@peak.example"
SENDER = f"Peak Fitness <{SENDER_ADDRESS}>"
SECRET = "test-unsubscribe-secret"
UNSUBSCRIBE_BASE = "https://peak.example/unsubscribe"
PREFIX = "test-"
TODAY = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)

MART_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("email", pa.string()),
        ("segment", pa.string()),
        ("churn_reason", pa.string()),
        ("churn_date", pa.date32()),
        ("home_location", pa.string()),
        ("plan", pa.string()),
        ("join_date", pa.date32()),
        ("last_visit_date", pa.date32()),
        ("days_since_last_visit", pa.int64()),
        ("visits_30d", pa.int64()),
        ("visits_90d", pa.int64()),
        ("longest_streak_weeks", pa.int64()),
        ("favourite_class", pa.string()),
        ("favourite_instructor", pa.string()),
    ]
)
LOCATIONS = ("Peak Camden", "Peak Soho", "Peak Brixton")


def member(i: int, segment: str = "at_risk", **changes: Any) -> dict[str, Any]:
    row = {
        "user_id": f"U{i:05d}",
        "email": f"member{i}@example.com",
        "segment": segment,
        "churn_reason": "visit_rate_drop" if segment == "at_risk" else "inactive",
        "churn_date": dt.date(2026, 11, 1) + dt.timedelta(days=i % 20),
        "home_location": LOCATIONS[i % len(LOCATIONS)],
        "plan": ("basic", "plus", "premium")[i % 3],
        "join_date": dt.date(2025, 1, 1) + dt.timedelta(days=i % 300),
        "last_visit_date": None if i % 7 == 0 else dt.date(2026, 10, 1) + dt.timedelta(days=i % 25),
        "days_since_last_visit": None if i % 7 == 0 else 30 + i % 25,
        "visits_30d": i % 5,
        "visits_90d": 10 + i % 9,
        "longest_streak_weeks": i % 12,
        "favourite_class": None if i % 4 == 0 else ("Spin 45", "HIIT", "Yoga Flow")[i % 3],
        "favourite_instructor": None if i % 4 == 0 else "Sam Lee",
    }
    row.update(changes)
    return row


def members(n: int, segment: str = "at_risk", start: int = 0) -> list[dict[str, Any]]:
    return [member(i, segment) for i in range(start, start + n)]


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


class Clock:
    """A fake monotonic clock that only sleeps move."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def batch_sizes(ses: FakeSesV2) -> list[int]:
    """The entries of every SendBulkEmail SES took."""
    return [len(r.body["BulkEmailEntries"]) for r in ses.calls("SendBulkEmail")]


def destinations(ses: FakeSesV2) -> list[tuple[str, dict[str, Any], str]]:
    """(address, template data, template) of every message SES took."""
    return [(m.to[0], m.data, m.template) for m in ses.messages]


def sent_counts(ses: FakeSesV2) -> Counter[str]:
    return Counter(m.to[0] for m in ses.messages)


def balanced(result: SinkResult) -> SinkResult:
    assert result.balanced, result.to_dict()
    return result


THROTTLED = {"code": "TooManyRequestsException", "message": "Maximum sending rate exceeded."}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's environment: credentials and a region (the fake checks its own keys)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "PEAK_FAILPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


class Env:
    def __init__(self, tmp_path: Path, ses: FakeSesV2 | None) -> None:
        self.tmp = tmp_path
        self.lake = Lake.from_uri(str(tmp_path / "lake"))
        self.db = tmp_path / "warehouse.duckdb"
        self.ses = ses
        self.clock = Clock()
        if ses is not None:
            ses.clock = self.clock.monotonic  # SES counts its sending rate on the sink's clock
        self.now = TODAY
        self.templates = DEFAULT_TEMPLATES
        self.campaigns = DEFAULT_CAMPAIGNS
        self.runs = itertools.count(1)
        self.last_sink: EmailSink | None = None

    def copy_templates(self) -> Path:
        """A private copy of the templates, to edit."""
        self.templates = self.tmp / "templates"
        shutil.copytree(DEFAULT_TEMPLATES, self.templates)
        return self.templates

    def write_mart(
        self,
        rows: list[dict[str, Any]],
        *,
        schema: pa.Schema = MART_SCHEMA,
        opted_in: dict[str, bool] | None = None,
    ) -> None:
        table = pa.Table.from_pylist(
            [{k: r.get(k) for k in schema.names} for r in rows], schema=schema
        )
        con = duckdb.connect(str(self.db))
        try:
            con.register("rows_", table)
            con.execute("create or replace table main.mart_email_targets as select * from rows_")
            if opted_in is not None:
                users = pa.table(
                    {
                        "user_id": list(opted_in),
                        "marketing_opt_in": list(opted_in.values()),
                    }
                )
                con.register("users_", users)
                con.execute("create or replace table main.dim_users as select * from users_")
        finally:
            con.close()

    def settings(self, **overrides: Any) -> EmailSettings:
        values: dict[str, Any] = {
            "sender": SENDER,
            "region": REGION,
            "endpoint_url": None,
            "configuration_set": None,
            "unsubscribe_url": UNSUBSCRIBE_BASE,
            "unsubscribe_secret": SECRET,
            "template_prefix": PREFIX,
            "campaigns_file": self.campaigns,
            "templates_dir": self.templates,
        }
        values.update(overrides)
        return EmailSettings(**values)

    def client(self) -> Any:
        """The real boto3 SES v2 client, pointed at the fake, as the sink configures it."""
        assert self.ses is not None
        return boto3.client(
            "sesv2",
            endpoint_url=self.ses.base_url,
            region_name=REGION,
            aws_access_key_id=self.ses.access_key,
            aws_secret_access_key=self.ses.secret_key,
            config=client_config(),
        )

    def sink(self, **overrides: Any) -> EmailSink:
        sink = EmailSink(
            email_settings=self.settings(**overrides),
            sleep=self.clock.sleep,
            clock=self.clock.monotonic,
            sesv2_client=self.client(),
            now=lambda: self.now,
        )
        self.last_sink = sink
        return sink

    def ctx(self, dry_run: bool = False) -> SinkContext:
        return SinkContext(
            lake=self.lake,
            warehouse=DuckDBWarehouse(self.db),
            run_id=f"run-{next(self.runs)}",
            dry_run=dry_run,
        )

    def deploy(self, **overrides: Any) -> SinkResult:
        return balanced(self.sink(**overrides).deploy_templates(self.ctx()))

    def run(
        self,
        rows: list[dict[str, Any]] | None = None,
        *,
        days: int = 0,
        dry_run: bool = False,
        **overrides: Any,
    ) -> SinkResult:
        if rows is not None:
            self.write_mart(rows)
        self.now = TODAY + dt.timedelta(days=days)
        self.clock.t += 3600  # runs are hours apart at least: SES's rate window is long past
        return balanced(self.sink(**overrides).run(self.ctx(dry_run)))


@pytest.fixture
def ses(aws: None) -> Iterator[FakeSesV2]:
    """SES as a new account sees it: 200 messages a day, 1 a second; the sender verified."""
    with FakeSesV2(max_send_rate=1.0, max_24h=200.0, verified=(SENDER_ADDRESS,)) as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, ses: FakeSesV2) -> Env:
    e = Env(tmp_path, ses)
    assert e.deploy().details["templates"]["created"] == [
        f"{PREFIX}at_risk_nudge",
        f"{PREFIX}churned_winback",
    ]
    return e


# ---------------------------------------------------------------------------------------------
# Campaigns and templates
# ---------------------------------------------------------------------------------------------


def test_the_repository_campaigns_and_templates_are_valid() -> None:
    campaigns = {c.segment: c for c in load_campaigns(DEFAULT_CAMPAIGNS)}
    assert set(campaigns) == {"at_risk", "churned"}
    assert campaigns["at_risk"].every_days == 7
    assert campaigns["churned"].every_days == 30
    for campaign in campaigns.values():
        template = load_template(DEFAULT_TEMPLATES, campaign.template)
        template.check_fields((*email_sink.MART_COLUMNS, *email_sink.SINK_FIELDS))
        assert "unsubscribe_url" in template.html.fields & template.text.fields
        # What SES gets: raw values in triple braces, the HTML part only the escaped copies.
        assert "{{{unsubscribe_url__html}}}" in template.html.compiled
        assert "{{{home_location}}}" in template.subject.compiled
        assert "__html" not in template.text.compiled + template.subject.compiled
        for name in template.html.fields:  # never a raw value in HTML
            assert "{{{" + name + "}}}" not in template.html.compiled
            assert "{{{" + name + "__html}}}" in template.html.compiled


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{{{favourite_class}}} {{unsubscribe_url}}", "triple braces"),
        ("{{#if favourite_class}}x {{unsubscribe_url}}", "never closed"),
        ("{{/if}} {{unsubscribe_url}}", "without"),
        ("{{#each classes}}{{/each}} {{unsubscribe_url}}", "only"),
        ("{{member.name}} {{unsubscribe_url}}", "only"),
        ("{{favourite_class", "never closed"),
        ("Hello {{favourite_class}}", "unsubscribe_url"),
    ],
)
def test_template_syntax_is_checked(tmp_path: Path, body: str, error: str) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "subject.txt").write_text("Hi\n")
    (folder / "body.txt").write_text("{{unsubscribe_url}}\n")
    (folder / "body.html").write_text(body)
    with pytest.raises(EmailConfigError, match=error):
        load_template(tmp_path, "t")


@pytest.mark.parametrize(
    ("yaml_text", "error"),
    [
        ("campaigns: []", "non-empty"),
        (
            "campaigns:\n  - {name: a, segment: at-risk, template: t, every_days: 7}",
            "segment",
        ),
        (
            "campaigns:\n  - {name: a, segment: at_risk, template: t, every_days: 0}",
            "every_days",
        ),
        (
            "campaigns:\n  - {name: a, segment: at_risk, template: t, every_days: 7}\n"
            "  - {name: b, segment: at_risk, template: t, every_days: 7}",
            "more than one campaign with segment",
        ),
        (
            "campaigns:\n  - {name: a, segment: at_risk, template: t, every_days: 7, x: 1}",
            "unknown keys",
        ),
    ],
)
def test_campaigns_file_is_checked(tmp_path: Path, yaml_text: str, error: str) -> None:
    path = tmp_path / "campaigns.yml"
    path.write_text(yaml_text)
    with pytest.raises(EmailConfigError, match=error):
        load_campaigns(path)


def test_deploy_templates_is_idempotent_and_updates_a_changed_file(
    tmp_path: Path, ses: FakeSesV2
) -> None:
    e = Env(tmp_path, ses)
    templates = e.copy_templates()
    first = e.deploy()
    assert first.details["templates"]["created"] == [
        f"{PREFIX}at_risk_nudge",
        f"{PREFIX}churned_winback",
    ]
    assert (first.records, first.sent, first.unchanged) == (2, 2, 0)
    held = ses.templates[f"{PREFIX}at_risk_nudge"]
    assert held["Html"] == load_template(templates, "at_risk_nudge").html.compiled

    second = e.deploy()
    assert second.details["templates"] == {
        "created": [],
        "updated": [],
        "unchanged": [f"{PREFIX}at_risk_nudge", f"{PREFIX}churned_winback"],
    }
    assert second.api_calls == 2  # two GetEmailTemplate, nothing written
    assert not ses.calls("UpdateEmailTemplate") and len(ses.calls("CreateEmailTemplate")) == 2

    subject = templates / "churned_winback" / "subject.txt"
    subject.write_text("We saved your spot at {{home_location}}\n")
    third = e.deploy()
    assert third.details["templates"]["updated"] == [f"{PREFIX}churned_winback"]
    assert [r.path.rsplit("/", 1)[1] for r in ses.calls("UpdateEmailTemplate")] == [
        f"{PREFIX}churned_winback"
    ]
    held = ses.templates[f"{PREFIX}churned_winback"]
    assert held["Subject"] == "We saved your spot at {{{home_location}}}"
    assert e.deploy().details["templates"]["updated"] == []


def test_a_run_refuses_a_template_ses_holds_in_another_version(env: Env) -> None:
    templates = env.copy_templates()
    (templates / "at_risk_nudge" / "subject.txt").write_text("New subject {{home_location}}\n")
    result = env.run(members(3))
    assert result.status == "failed" and "--deploy-templates" in str(result.error)
    assert result.failed == 3 and env.ses.messages == []
    env.deploy()
    again = env.run()
    assert again.sent == 3 and again.status == "ok"


def test_a_template_naming_a_field_the_mart_lacks_fails_before_any_send(env: Env) -> None:
    # The mart in the warehouse has no favourite_instructor (the win-back template uses it).
    schema = pa.schema([f for f in MART_SCHEMA if f.name != "favourite_instructor"])
    env.write_mart(members(3) + members(3, "churned", start=10), schema=schema)
    result = env.run()
    assert result.status == "failed"
    assert "favourite_instructor" in str(result.error) and "body" in str(result.error)
    assert (result.records, result.failed, result.sent) == (6, 6, 0)
    assert result.api_calls == 0 and env.ses.messages == []
    assert Ledger.load(env.lake).entries == {}

    # A template naming a field no mart has: refused by the deploy and by the run.
    templates = env.copy_templates()
    html = templates / "at_risk_nudge" / "body.html"
    html.write_text(html.read_text().replace("</body>", "<p>{{shoe_size}}</p></body>"))
    deploy = env.deploy()
    assert deploy.status == "failed" and "shoe_size" in str(deploy.error)
    env.write_mart(members(3))
    run = env.run()
    assert run.status == "failed" and "{{shoe_size}}" in str(run.error)
    assert run.api_calls == 0 and env.ses.messages == []


# ---------------------------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------------------------


def test_sends_in_bulk_calls_of_50_with_template_data_and_unsubscribe_links(env: Env) -> None:
    rows = members(120)
    result = env.run(rows)

    assert result.status == "ok", result.error
    assert (result.records, result.sent, result.unchanged, result.failed) == (120, 120, 0, 0)
    assert batch_sizes(env.ses) == [50, 50, 20]  # ceil(120 / 50) calls
    # ListSuppressedDestinations + GetEmailTemplate + GetAccount + 3 sends
    assert result.api_calls == 6 and result.retried == 0
    by_address = {r["email"]: r for r in rows}
    for message in env.ses.messages:
        assert message.template == f"{PREFIX}at_risk_nudge"
        assert message.sender == SENDER and message.delivered
        assert message.subject == f"We miss you at {by_address[message.to[0]]['home_location']}"
    for address, data, _ in destinations(env.ses):
        row = by_address[address]
        assert data["home_location"] == row["home_location"]
        assert data["visits_30d"] == str(row["visits_30d"])
        assert data["favourite_class"] == (row["favourite_class"] or "")
        assert verify_unsubscribe(data["unsubscribe_url"], SECRET) == address
        assert data["unsubscribe_url"].startswith(UNSUBSCRIBE_BASE + "?e=")
        assert data["unsubscribe_url__html"] == data["unsubscribe_url"].replace("&", "&amp;")
        assert verify_unsubscribe(data["unsubscribe_url"], "another-secret") is None
    assert sent_counts(env.ses) == Counter({r["email"]: 1 for r in rows})
    # Paced to the account's MaxSendRate of 1 message a second: 50 s after each full batch,
    # and SES (on the same clock) never had to refuse a call for the rate.
    assert env.clock.sleeps == [50.0, 50.0] and env.ses.throttled == 0
    assert result.details["pace_wait_s"] == 100.0
    ledger = Ledger.load(env.lake)
    entry = ledger.entries["at_risk_nudge|U00000"]
    assert entry["s"] == "sent" and entry["p"] == "2026-11-25" and entry["m"]
    assert result.details["campaigns"]["at_risk_nudge"]["sent"] == 120


def test_every_email_carries_a_one_click_unsubscribe_header(env: Env) -> None:
    """RFC 8058, as Gmail and Yahoo require of bulk senders: the member's own signed link in
    List-Unsubscribe (HTTPS, in angle brackets) and List-Unsubscribe-Post: List-Unsubscribe=
    One-Click, on every message of both campaigns; the link in the body is the same."""
    rows = members(60) + members(40, "churned", start=100)
    assert env.run(rows).sent == 100
    assert len(env.ses.messages) == 100
    for message in env.ses.messages:
        assert message.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
        link = message.header("List-Unsubscribe")
        assert link is not None and link.startswith("<https://") and link.endswith(">")
        assert verify_unsubscribe(link[1:-1], SECRET) == message.to[0]
        assert link[1:-1] in message.text and link[1:-1].replace("&", "&amp;") in message.html


def test_pacing_spaces_calls_by_their_size_over_the_rate() -> None:
    clock = Clock()
    pacer = SendPacer(14.0, clock.monotonic, clock.sleep)
    starts = []
    for size in (50, 50, 20, 50):
        pacer.wait()
        starts.append(clock.t)
        clock.t += 0.2  # the call takes 200 ms
        pacer.sent(size)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.2 + 50 / 14, 0.2 + 50 / 14, 0.2 + 20 / 14])


def test_cadence_weekly_nudge_and_monthly_win_back(env: Env) -> None:
    rows = members(3) + members(3, "churned", start=10)
    first = env.run(rows)
    assert first.sent == 6 and len(env.ses.calls("SendBulkEmail")) == 2  # one per campaign

    again = env.run(days=2)  # the same week
    assert (again.sent, again.unchanged) == (0, 6)
    assert again.details["skipped"] == {"already_sent": 6}
    assert len(env.ses.calls("SendBulkEmail")) == 2 and again.api_calls == 0

    week_later = env.run(days=8)
    assert (week_later.sent, week_later.unchanged) == (3, 3)
    assert {m.template for m in env.ses.messages[6:]} == {f"{PREFIX}at_risk_nudge"}

    month_later = env.run(days=29)  # the nudge again (last sent on day 8), not the win-back
    assert month_later.sent == 3 and month_later.details["campaigns"]["churned_winback"]["due"] == 0
    day_30 = env.run(days=30)  # the win-back went on day 0: due again on day 30
    assert day_30.sent == 3 and day_30.details["campaigns"]["churned_winback"]["sent"] == 3
    counts = sent_counts(env.ses)
    assert {counts[r["email"]] for r in rows if r["segment"] == "at_risk"} == {3}
    assert {counts[r["email"]] for r in rows if r["segment"] == "churned"} == {2}


def test_throttling_is_retried_with_backoff(env: Env) -> None:
    env.ses.fail_next(2, status=429, operation="SendBulkEmail", **THROTTLED)
    result = env.run(members(60))
    assert result.status == "ok" and result.sent == 60
    assert result.retried == 2 and result.details["throttled_responses"] == 2
    assert len(env.ses.calls("SendBulkEmail", ok=False)) == 4
    assert batch_sizes(env.ses) == [50, 10]
    assert result.details["retry_wait_s"] > 0
    assert sent_counts(env.ses) == Counter({r["email"]: 1 for r in members(60)})


def test_the_one_click_header_works_end_to_end(env: Env) -> None:
    """What a mail client does with the header of an e-mail SES sent: POST
    List-Unsubscribe=One-Click to its link. The unsubscribe Lambda's handler answers 200, the
    member is on the register, and the next run of the campaign skips them."""
    from activation.unsubscribe.handler import configure, handler
    from peak.core.settings import Settings

    rows = members(3)
    env.run(rows)
    message = next(m for m in env.ses.messages if m.to == ["member1@example.com"])
    link = (message.header("List-Unsubscribe") or "")[1:-1]
    configure(Settings(lake=env.lake.root, email=env.settings()))
    try:
        answer = handler(
            {
                "version": "2.0",
                "rawQueryString": link.split("?", 1)[1],
                "requestContext": {"http": {"method": "POST", "path": "/"}},
                "headers": {"content-type": "application/x-www-form-urlencoded"},
                "body": "List-Unsubscribe=One-Click",
                "isBase64Encoded": False,
            }
        )
    finally:
        import activation.unsubscribe.handler as module

        module._cached = None
    assert answer["statusCode"] == 200
    week_later = env.run(days=7)
    assert week_later.sent == 2 and week_later.details["skipped"] == {"unsubscribed": 1}
    assert sent_counts(env.ses)["member1@example.com"] == 1


def test_sending_faster_than_the_account_rate_is_refused_by_ses(env: Env) -> None:
    """The fake holds SES's sending rate: an unpaced second call is refused (so the pacing
    test above means something), and the sink's own pacing never meets the refusal."""
    client = env.client()
    request = {
        "FromEmailAddress": SENDER,
        "DefaultContent": {"Template": {"TemplateName": f"{PREFIX}at_risk_nudge"}},
        "BulkEmailEntries": [{"Destination": {"ToAddresses": ["a@example.com"]}}] * 5,
    }
    client.send_bulk_email(**request)
    with pytest.raises(client.exceptions.TooManyRequestsException, match="sending rate"):
        client.send_bulk_email(**request)
    env.clock.t += 5  # five messages at 1 a second
    client.send_bulk_email(**request)
    assert env.ses.throttled == 1


def test_persistent_throttling_stops_cleanly_and_the_next_run_continues(env: Env) -> None:
    rows = members(150)
    attempts = env.settings().max_attempts
    # the first batch goes, then SES throttles every call
    env.ses.fail_next(attempts, status=429, operation="SendBulkEmail", after=1, **THROTTLED)
    result = env.run(rows)

    assert result.status == "failed" and "stopped" in str(result.error)
    assert (result.sent, result.failed) == (50, 100)
    stop = result.details["stopped"]
    assert stop["reason"] == "throttled" and stop["left"] == 100
    assert stop["next"] == {"campaign": "at_risk_nudge", "user_id": "U00050"}
    assert len(env.ses.calls("SendBulkEmail", ok=False)) == 1 + attempts
    assert Ledger.load(env.lake).last_stop["next"]["user_id"] == "U00050"
    assert all(e.reason.startswith("deferred:") for e in result.errors)

    resumed = env.run()
    assert resumed.status == "ok" and (resumed.sent, resumed.unchanged) == (100, 50)
    assert resumed.details["previous_stop"]["reason"] == "throttled"
    assert Ledger.load(env.lake).last_stop is None
    assert sent_counts(env.ses) == Counter({r["email"]: 1 for r in rows})


def test_retry_after_from_ses_is_a_floor_under_the_backoff(env: Env) -> None:
    env.ses.fail_next(1, status=429, operation="SendBulkEmail", retry_after=7, **THROTTLED)
    result = env.run(members(10))
    assert result.status == "ok" and result.sent == 10 and result.retried == 1
    assert 7.0 in env.clock.sleeps  # the backoff alone waits at most backoff_base_s (1 s)


def test_the_run_stops_at_its_deadline_naming_ses_last_answer(env: Env) -> None:
    """An SES throttling every call, Retry-After: 30, cost max_attempts waits per batch (314 s
    with its timeouts); the run now stops at PEAK_EMAIL_DEADLINE_S, and the next one goes on."""
    rows = members(120)
    env.ses.fail_next(100, status=429, operation="SendBulkEmail", retry_after=30, **THROTTLED)
    result = env.run(rows, deadline_s=100, max_attempts=10)
    assert result.status == "failed"
    stop = result.details["stopped"]
    assert stop["reason"] == "deadline" and stop["left"] == 120
    assert "deadline of 100 s" in str(result.error) and "HTTP 429" in str(result.error)
    assert env.clock.sleeps == [30.0, 30.0, 30.0]  # the fourth wait would have passed it
    assert Ledger.load(env.lake).last_stop["reason"] == "deadline"

    env.ses._faults.clear()  # SES is back
    resumed = env.run()
    assert resumed.status == "ok" and resumed.sent == 120


def test_daily_quota_stops_cleanly_at_the_quota(env: Env) -> None:
    env.ses.sent_last_24h = 30  # 30 messages already went out today
    result = env.run(members(230))
    assert result.details["quota"]["remaining"] == 170  # 200 a day
    assert batch_sizes(env.ses) == [50, 50, 50, 20]  # exactly up to the quota, then stop
    assert (result.sent, result.failed) == (170, 60)
    assert result.status == "failed"
    assert result.details["stopped"]["reason"] == "daily_quota"
    assert result.details["stopped"]["next"]["user_id"] == "U00170"

    env.ses.sent_last_24h = 0  # a new day
    resumed = env.run(days=1)
    assert (resumed.sent, resumed.unchanged) == (60, 170)
    assert len(sent_counts(env.ses)) == 230


def test_a_daily_quota_error_from_ses_stops_without_retrying(env: Env) -> None:
    env.ses.fail_next(
        status=400,
        code="LimitExceededException",
        message="Daily message quota exceeded.",
        operation="SendBulkEmail",
        after=1,
    )
    result = env.run(members(120))
    assert len(env.ses.calls("SendBulkEmail", ok=False)) == 2 and result.retried == 0
    assert (result.sent, result.failed) == (50, 70)
    assert result.details["stopped"]["reason"] == "daily_quota"
    entry = Ledger.load(env.lake).entries["at_risk_nudge|U00050"]
    assert entry["s"] == "failed" and "Daily message quota" in entry["e"]


def test_a_quota_used_up_meanwhile_stops_at_the_entry_ses_refused(env: Env) -> None:
    """Another sender on the account used the quota after this run read it: SES takes what it
    can and refuses the rest entry by entry; the run stops there and the next continues."""
    env.ses.reject("member30@example.com", "ACCOUNT_DAILY_QUOTA_EXCEEDED", "Daily quota")
    result = env.run(members(80))
    assert result.status == "failed" and result.details["stopped"]["reason"] == "daily_quota"
    assert (result.sent, result.failed) == (49, 31)
    assert Ledger.load(env.lake).entries["at_risk_nudge|U00030"]["s"] == "failed"
    env.ses.rejects.clear()
    assert env.run().sent == 31


class Crash(BaseException):
    pass


def crash_at(monkeypatch: pytest.MonkeyPatch, name: str, hit: int) -> None:
    hits = itertools.count(1)

    def failpoint(point: str) -> None:
        if point == name and next(hits) == hit:
            raise Crash

    monkeypatch.setattr(email_sink, "failpoint", failpoint)


def test_a_crash_after_a_send_never_sends_twice(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = members(150)
    crash_at(monkeypatch, "email.after_send", 2)  # SES took batch 2; it was not recorded
    with pytest.raises(Crash):
        env.run(rows)
    monkeypatch.undo()
    assert batch_sizes(env.ses) == [50, 50]

    rerun = env.run()
    assert rerun.sent == 50
    assert rerun.details["skipped"] == {"already_sent": 50, "in_doubt": 50}
    assert sent_counts(env.ses) == Counter({r["email"]: 1 for r in rows})  # each member once


def test_a_crash_before_a_send_loses_that_batch_for_the_period(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The at-most-once trade-off: a batch marked 'sending' whose call never left waits for
    its next period; nobody gets two emails."""
    rows = members(150)
    crash_at(monkeypatch, "email.before_send", 2)
    with pytest.raises(Crash):
        env.run(rows)
    monkeypatch.undo()
    assert batch_sizes(env.ses) == [50]

    rerun = env.run()
    assert rerun.sent == 50 and rerun.details["skipped"]["in_doubt"] == 50
    counts = sent_counts(env.ses)
    assert len(counts) == 100 and set(counts.values()) == {1}
    env.ses.sent_last_24h = 0  # a week later: a new day's quota
    assert env.run(days=7).sent == 150  # the next period reaches everyone


def test_a_lost_answer_leaves_the_batch_in_doubt_and_stops(env: Env) -> None:
    """SES takes batch 2 and the connection drops before its answer: the batch may have gone
    (it did), so it is never re-sent; the run stops and the next one leaves it in doubt."""
    env.ses.fail_next(status=0, operation="SendBulkEmail", after=1)
    rows = members(150)
    result = env.run(rows)
    assert result.status == "failed" and len(env.ses.calls("SendBulkEmail", ok=False)) == 2
    assert result.details["in_doubt"]["members"] == 50
    assert (result.sent, result.failed) == (50, 100)
    ledger = Ledger.load(env.lake)
    assert ledger.entries["at_risk_nudge|U00050"]["s"] == "sending"
    rerun = env.run()
    assert rerun.sent == 50 and rerun.details["skipped"]["in_doubt"] == 50
    assert sent_counts(env.ses) == Counter({r["email"]: 1 for r in rows})


@pytest.mark.skipif(sys.platform == "win32", reason="os._exit in a child process")
def test_a_real_crash_in_a_child_process_sends_each_member_once(
    tmp_path: Path, ses: FakeSesV2
) -> None:
    """PEAK_FAILPOINT kills a child process running the sink through the runner, against the
    fake SES via AWS_ENDPOINT_URL; the re-run sends each member exactly once in total."""
    import time

    ses.clock = time.monotonic  # the child sleeps for real: a rate that needs no sleeping
    ses.max_send_rate = 10_000.0
    e = Env(tmp_path, None)
    e.ses = ses
    assert e.deploy().sent == 2
    rows = members(120)
    e.write_mart(rows)
    child_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PEAK_"))},
        "AWS_ACCESS_KEY_ID": ses.access_key,
        "AWS_SECRET_ACCESS_KEY": ses.secret_key,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": ses.base_url,
        "PEAK_EMAIL_SENDER": SENDER,
        "PEAK_EMAIL_TEMPLATE_PREFIX": PREFIX,
    }
    script = textwrap.dedent(
        f"""
        from activation.base import SinkContext
        from activation.runner import run_sink
        from peak.core.lake import Lake
        from peak.model.warehouse import DuckDBWarehouse
        ctx = SinkContext(Lake.from_uri({str(e.lake.root)!r}),
                          DuckDBWarehouse(__import__("pathlib").Path({str(e.db)!r})), "r")
        from peak.core.settings import Settings
        result = run_sink("email", ctx, Settings())
        print(result.status, result.sent, result.error)
        """
    )

    def child(failpoint: str | None) -> subprocess.CompletedProcess[str]:
        extra = {"PEAK_FAILPOINT": failpoint} if failpoint else {}
        return subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**child_env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    crashed = child("email.after_send:2")
    assert crashed.returncode == 137, crashed.stderr
    assert batch_sizes(ses) == [50, 50]
    done = child(None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok 20"), done.stdout  # batch 2 is in doubt: not resent
    assert batch_sizes(ses) == [50, 50, 20]
    assert sent_counts(ses) == Counter({r["email"]: 1 for r in rows})


# ---------------------------------------------------------------------------------------------
# Who is skipped
# ---------------------------------------------------------------------------------------------


def test_suppressed_opted_out_and_unsubscribed_members_are_skipped(env: Env) -> None:
    rows = members(10)
    for address in ("member1@example.com", "MEMBER2@example.com", "member3@example.com"):
        env.ses.suppress(address, "BOUNCE")
    for i in range(1_000):  # the account's others: the list takes two pages of 1,000
        env.ses.suppress(f"bounced{i}@example.org", "BOUNCE")
    assert unsubscribe(env.lake, " Member4@Example.com ", source="test")
    assert not unsubscribe(env.lake, "member4@example.com")  # already there
    opted_in = {r["user_id"]: r["user_id"] != "U00005" for r in rows}
    env.write_mart(rows, opted_in=opted_in)

    result = env.run()
    assert (result.records, result.sent, result.unchanged) == (10, 5, 5)
    assert result.details["skipped"] == {"opted_out": 1, "suppressed": 3, "unsubscribed": 1}
    assert result.details["opt_in_check"] == "dim_users.marketing_opt_in"
    assert result.details["suppression_list"] == 1_003
    assert len(env.ses.calls("ListSuppressedDestinations")) == 2
    assert sorted(sent_counts(env.ses)) == [f"member{i}@example.com" for i in (0, 6, 7, 8, 9)]
    # The audience's suppressed addresses are kept (hashed) for the HubSpot sink's lists.
    held = suppressed(env.lake)
    assert len(held) == 3 and set(held.values()) == {"BOUNCE"}
    assert DoNotMarket.load(env.lake).why("member2@example.com") == "suppressed by SES (BOUNCE)"


def test_the_consent_column_is_taken_from_the_activation_config(env: Env) -> None:
    """The column the config names decides (in the mart when it has it), not a name the sink
    hard-codes: a member whose consent column says no is skipped even though dim_users says
    they opted in."""
    import yaml

    doc = yaml.safe_load(DEFAULT_CAMPAIGNS.read_text())
    doc["consent"]["column"] = "marketing_consent"
    env.campaigns = env.tmp / "activation.yml"
    env.campaigns.write_text(yaml.safe_dump(doc))
    rows = [{**r, "marketing_consent": r["user_id"] != "U00003"} for r in members(5)]
    schema = MART_SCHEMA.append(pa.field("marketing_consent", pa.bool_()))
    env.write_mart(rows, schema=schema, opted_in={r["user_id"]: True for r in rows})

    result = env.run()

    assert result.details["opt_in_check"] == "mart_email_targets.marketing_consent"
    assert result.sent == 4 and result.details["skipped"] == {"opted_out": 1}
    assert "member3@example.com" not in sent_counts(env.ses)


def test_the_unsubscribe_link_round_trip(env: Env) -> None:
    env.run(members(2))
    (_, data, _), _ = destinations(env.ses)
    link = data["unsubscribe_url"]
    address = verify_unsubscribe(link, SECRET)
    assert address == "member0@example.com"
    assert verify_unsubscribe(link.replace("t=", "t=0"), SECRET) is None
    assert unsubscribe(env.lake, address, source="link")
    assert "member0@example.com" in unsubscribed(env.lake)
    later = env.run(days=7)
    assert later.sent == 1 and later.details["skipped"] == {"unsubscribed": 1}
    url = unsubscribe_url("https://x.example/u?lang=en", "A@B.example", "s")
    assert url.startswith("https://x.example/u?lang=en&e=")
    assert verify_unsubscribe(url, "s") == "a@b.example"


def test_invalid_and_shared_addresses_fail_and_unknown_segments_are_skipped(env: Env) -> None:
    rows = [
        member(0),
        member(1, email="not-an-address"),
        member(2, email="MEMBER0@example.com"),
        member(3, segment="active"),
    ]
    result = env.run(rows)
    assert (result.sent, result.failed, result.unchanged) == (1, 2, 1)
    reasons = {e.key: e.reason for e in result.errors}
    assert "valid email" in reasons["U00001"] and "shared with member U00000" in reasons["U00002"]
    assert result.details["skipped"] == {"no_campaign": 1}


def test_a_destination_ses_rejects_is_recorded_and_retried_next_run(env: Env) -> None:
    env.ses.reject("member3@example.com", "MESSAGE_REJECTED", "Address blacklisted.")
    result = env.run(members(5))
    assert result.status == "ok"  # one bad address does not fail the run
    assert (result.sent, result.failed) == (4, 1)
    assert result.errors[0].key == "U00003"
    assert "MESSAGE_REJECTED: Address blacklisted." in result.errors[0].reason
    entry = Ledger.load(env.lake).entries["at_risk_nudge|U00003"]
    assert entry["s"] == "failed" and "blacklisted" in entry["e"]

    env.ses.rejects.clear()
    retry = env.run()
    assert (retry.sent, retry.unchanged) == (1, 4)
    assert retry.details["retrying_failed"] == 1
    assert env.ses.messages[-1].to == ["member3@example.com"]


# ---------------------------------------------------------------------------------------------
# Escaping, dry runs, settings
# ---------------------------------------------------------------------------------------------


def test_values_are_html_escaped_in_html_only(env: Env) -> None:
    nasty = '<script>alert("hi")</script> & Co'
    result = env.run([member(1, favourite_class=nasty, home_location="Peak <Soho>")])
    assert result.sent == 1
    ((_, data, template_name),) = destinations(env.ses)
    assert data["favourite_class"] == nasty  # the text part and subject: as it is
    assert data["favourite_class__html"] == (
        "&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; &amp; Co"
    )
    held = env.ses.templates[template_name]
    html_part = render(held["Html"], data)  # our renderer, on what SES holds
    assert html_part == env.ses.messages[0].html  # and what SES itself made of it
    text_part = env.ses.messages[0].text
    subject = env.ses.messages[0].subject
    assert "<script>" not in html_part and "&lt;script&gt;alert(&quot;hi&quot;)" in html_part
    assert "Peak &lt;Soho&gt;" in html_part
    assert nasty in text_part and "&lt;" not in text_part and "&amp;" not in text_part
    assert subject == "We miss you at Peak <Soho>"


def test_no_credentials_runs_dry_into_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    e = Env(tmp_path, ses=None)
    e.write_mart([*members(3), member(9, "churned", favourite_class="<b>Spin</b>")])
    sink = EmailSink(email_settings=e.settings(sender=None), now=lambda: TODAY)
    result = balanced(sink.run(e.ctx()))

    assert result.dry_run and result.status == "ok"
    assert "no AWS credentials" in result.details["note"]
    assert result.sent == 4 and result.api_calls == 0
    assert result.outbox == e.lake.uri(outbox_prefix("email", "run-1"))
    lines = e.lake.read_bytes(outbox_prefix("email", "run-1") + "emails.jsonl").splitlines()
    emails = [json.loads(line) for line in lines]
    winback = next(m for m in emails if m["campaign"] == "churned_winback")
    assert winback["to"] == "member9@example.com"
    assert "&lt;b&gt;Spin&lt;/b&gt;" in winback["html"] and "<b>Spin</b>" in winback["text"]
    assert winback["period"] == "2026-11-25..2026-12-24"
    assert verify_unsubscribe(winback["unsubscribe_url"], SECRET) == "member9@example.com"
    assert winback["headers"] == {
        "List-Unsubscribe": f"<{winback['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    requests = e.lake.read_bytes(outbox_prefix("email", "run-1") + "send_bulk_email.jsonl")
    assert [len(json.loads(r)["BulkEmailEntries"]) for r in requests.splitlines()] == [3, 1]
    assert Ledger.load(e.lake).entries == {}  # a dry run records nothing


def test_dry_run_sends_nothing_and_a_real_run_then_sends_all(env: Env) -> None:
    before = len(env.ses.requests)
    dry = env.run(members(4), dry_run=True)
    assert dry.dry_run and dry.sent == 4 and dry.api_calls == 0
    assert dry.details["note"].startswith("dry run: nothing was sent")
    assert len(env.ses.requests) == before
    assert env.run().sent == 4


def test_a_real_send_needs_a_sender_and_an_unsubscribe_secret(env: Env) -> None:
    no_sender = env.run(members(2), sender=None)  # not configured to send: a dry run
    assert no_sender.dry_run and "PEAK_EMAIL_SENDER is not set" in no_sender.details["note"]
    no_secret = env.run(unsubscribe_secret=None)
    assert no_secret.status == "failed" and "PEAK_EMAIL_UNSUBSCRIBE_SECRET" in str(no_secret.error)
    assert no_secret.api_calls == 0 and env.ses.messages == []
    emulator = env.run(unsubscribe_secret=None, endpoint_url="http://127.0.0.1:5000")
    assert emulator.sent == 2 and "development default" in emulator.details["unsubscribe_secret"]
    plain = env.run(members(3), unsubscribe_url="http://peak.example/unsubscribe", days=7)
    assert plain.status == "failed" and "https://" in str(plain.error) and plain.sent == 0


def test_configuration_set_and_campaign_tag_are_sent(env: Env) -> None:
    env.client().create_configuration_set(ConfigurationSetName="peak-retention")
    result = env.run(members(2), configuration_set="peak-retention")
    assert result.sent == 2
    (call,) = env.ses.calls("SendBulkEmail")
    assert call.body["ConfigurationSetName"] == "peak-retention"
    assert call.body["DefaultEmailTags"] == [{"Name": "campaign", "Value": "at_risk_nudge"}]
    template = call.body["DefaultContent"]["Template"]
    assert set(json.loads(template["TemplateData"]).values()) == {""}
    assert {m.configuration_set for m in env.ses.messages} == {"peak-retention"}
    # A configuration set SES does not have: every entry refused for it, and the run stops.
    missing = env.run(members(120), configuration_set="peak-nowhere", days=7, max_send_rate=99)
    assert missing.status == "failed" and missing.sent == 0
    assert "CONFIGURATION_SET_NOT_FOUND" in missing.errors[0].reason
    assert len(env.ses.calls("SendBulkEmail")) == 2  # the first batch, and nothing after it


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAK_EMAIL_SENDER", SENDER)
    monkeypatch.setenv("PEAK_EMAIL_CONFIGURATION_SET", "peak-retention")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("PEAK_EMAIL_UNSUBSCRIBE_URL", UNSUBSCRIBE_BASE)
    monkeypatch.setenv("PEAK_EMAIL_UNSUBSCRIBE_SECRET", SECRET)
    monkeypatch.setenv("PEAK_EMAIL_MAX_SEND_RATE", "10")
    settings = EmailSettings.load()
    assert (settings.sender, settings.configuration_set, settings.region) == (
        SENDER,
        "peak-retention",
        "eu-west-2",
    )
    assert settings.secret == SECRET and "test-unsub" not in repr(settings)
    assert settings.max_send_rate == 10
    monkeypatch.setenv("PEAK_EMAIL_UNSUBSCRIBE_SECRET", "")
    assert EmailSettings.load().dev_secret
    monkeypatch.setenv("PEAK_EMAIL_BATCH", "51")
    with pytest.raises(ValueError, match="PEAK_EMAIL_BATCH"):
        EmailSettings.load()

    from activation.runner import SINKS
    from peak.core.settings import Settings

    monkeypatch.delenv("PEAK_EMAIL_BATCH")
    sink = SINKS["email"](Settings())
    assert isinstance(sink, EmailSink) and sink.config.sender == SENDER
    assert math.isclose(sink.config.max_send_rate or 0, 10)


def test_without_a_region_the_run_fails_cleanly(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    env.write_mart(members(2))
    sink = EmailSink(email_settings=env.settings(region=None), now=lambda: TODAY)
    result = balanced(sink.run(env.ctx()))
    assert result.status == "failed" and "region" in str(result.error).lower()
    assert (result.failed, result.sent) == (2, 0)


def test_the_ledger_forgets_periods_long_over(env: Env) -> None:
    env.run(members(3))
    assert len(Ledger.load(env.lake).entries) == 3
    later = env.run(members(2, start=10), days=200)  # the first three left the mart
    assert later.sent == 2 and later.details["ledger_pruned"] == 3
    assert sorted(Ledger.load(env.lake).entries) == [
        "at_risk_nudge|U00010",
        "at_risk_nudge|U00011",
    ]


def test_the_register_keeps_hashes_takes_concurrent_writers_and_reads_the_old_file(
    tmp_path: Path,
) -> None:
    """Many one-click POSTs at once (the Lambda) each leave their record, once; the lake holds
    no address in clear; the register's first form (one JSON file of addresses) still counts."""
    from concurrent.futures import ThreadPoolExecutor

    lake = Lake.from_uri(str(tmp_path / "lake"))
    addresses = [f"member{i}@example.com" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda a: unsubscribe(lake, a, source="one-click"), addresses * 2))
    assert sum(first) == 40  # each address recorded once, however many times it came
    register = unsubscribed(lake)
    assert len(register) == 40 and "MEMBER7@Example.com " in register
    assert "member40@example.com" not in register
    stored = b"".join(lake.read_bytes(k) for k in lake.list("_state/"))
    assert b"@" not in stored and not any("@" in k for k in lake.list("_state/"))

    lake.write_json(
        "_state/activation/email/unsubscribes.json",
        {"version": 1, "emails": {"old@example.com": {"at": "2026-01-01T00:00:00+00:00"}}},
    )
    assert "old@example.com" in unsubscribed(lake) and "OLD@example.com " in unsubscribed(lake)
    with pytest.raises(ValueError):
        unsubscribe(lake, "not an address")


# ---------------------------------------------------------------------------------------------
# The fake SES answers like SES
# ---------------------------------------------------------------------------------------------


def bulk(template: str = f"{PREFIX}at_risk_nudge", n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "FromEmailAddress": SENDER,
        "DefaultContent": {"Template": {"TemplateName": template, "TemplateData": "{}"}},
        "BulkEmailEntries": [
            {"Destination": {"ToAddresses": [f"r{i}@example.com"]}} for i in range(n)
        ],
        **extra,
    }


def test_the_fake_refuses_what_ses_refuses(env: Env) -> None:
    import time

    client = env.client()
    ses = env.ses
    ses.max_send_rate, ses.clock = 1_000_000.0, time.monotonic  # no pacing needed here

    def refused(code: str, **request: Any) -> str:
        with pytest.raises(client.exceptions.ClientError) as err:
            client.send_bulk_email(**request)
        assert err.value.response["Error"]["Code"] == code, err.value.response
        return str(err.value.response["Error"]["Message"])

    assert "exceeds 50" in refused("BadRequestException", **bulk(n=51))
    assert "not verified" in refused(
        "MessageRejected", **{**bulk(), "FromEmailAddress": "x@elsewhere.example"}
    )
    header = {"Name": "List-Unsubscribe", "Value": "<https://u.example/\u00e9>"}
    entry = {"Destination": {"ToAddresses": ["a@example.com"]}, "ReplacementHeaders": [header]}
    assert "invalid header" in refused("BadRequestException", **bulk(BulkEmailEntries=[entry]))
    entry["ReplacementHeaders"] = [{"Name": "From", "Value": "someone@else.example"}]
    assert "sets From" in refused("BadRequestException", **bulk(BulkEmailEntries=[entry]))
    long_value = {"Name": "X-Long", "Value": "x" * 871}
    entry["ReplacementHeaders"] = [long_value]
    assert "invalid header" in refused("BadRequestException", **bulk(BulkEmailEntries=[entry]))

    answer = client.send_bulk_email(**bulk(template="nope", n=2))
    assert [r["Status"] for r in answer["BulkEmailEntryResults"]] == ["TEMPLATE_NOT_FOUND"] * 2
    with pytest.raises(client.exceptions.AlreadyExistsException):
        client.create_email_template(
            TemplateName=f"{PREFIX}at_risk_nudge", TemplateContent={"Subject": "s", "Text": "t"}
        )
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_email_template(TemplateName="nope")
    with pytest.raises(client.exceptions.ClientError, match="InvalidNextToken"):
        client.list_suppressed_destinations(NextToken="garbage")

    # A message whose data lacks a field the template uses: taken, never delivered (SES reports
    # a rendering failure), as with an address on the suppression list.
    client.send_bulk_email(**bulk(n=1))
    assert ses.messages[-1].why_not == "rendering failure: 'home_location'"
    client.create_email_template(
        TemplateName="plain", TemplateContent={"Subject": "Hi", "Text": "t"}
    )
    ses.suppress("r1@example.com", "COMPLAINT")
    client.send_bulk_email(**bulk(template="plain", n=2))
    delivered, suppressed_ = ses.messages[-2:]
    assert delivered.delivered and (suppressed_.delivered, suppressed_.why_not) == (
        False,
        "suppressed",
    )

    forged = boto3.client(
        "sesv2",
        endpoint_url=ses.base_url,
        region_name=REGION,
        aws_access_key_id=ses.access_key,
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(forged.exceptions.ClientError, match="SignatureDoesNotMatch"):
        forged.get_account()
