"""The email sink against moto's SES (boto3 end to end).

moto implements SES v1 templates, SendBulkTemplatedEmail and GetSendQuota (200 a day, 1 a
second), and keeps what was "sent" in its backend (``sent_messages``). It does not implement the
SES v2 suppression list (``ListSuppressedDestinations`` raises NotImplementedError), so the sink
gets an SES v2 client wrapped in botocore's ``Stubber`` for that one call: the Stubber checks our
request and its canned answers against botocore's own service model, which is as faithful as a
fake can be. Throttling, per-destination failures and lost answers are injected by wrapping the
moto client. Time never passes: sleeps advance a fake clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import shutil
import socket
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
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import TemplateMessage, ses_backends

import activation.email.sink as email_sink
from activation.base import SinkContext, SinkResult
from activation.email import EmailSink
from activation.email.campaigns import load_campaigns
from activation.email.errors import EmailConfigError
from activation.email.ledger import Ledger
from activation.email.settings import DEFAULT_CAMPAIGNS, DEFAULT_TEMPLATES
from activation.email.templates import load_template, render
from activation.pacing import SendPacer
from activation.unsubscribe.links import unsubscribe_url, verify_unsubscribe
from activation.unsubscribe.register import unsubscribe, unsubscribed
from peak.core.lake import Lake
from peak.core.layout import outbox_prefix
from peak.core.settings import EmailSettings
from peak.model.warehouse import DuckDBWarehouse

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


def moto_messages() -> list[TemplateMessage]:
    """One entry per SendBulkTemplatedEmail moto accepted."""
    backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
    return [m for m in backend.sent_messages if isinstance(m, TemplateMessage)]


def destinations() -> list[tuple[str, dict[str, str], str]]:
    """(address, template data, template) of every destination moto accepted."""
    out = []
    for message in moto_messages():
        for d in message.destinations:
            data = json.loads(d.get("ReplacementTemplateData") or "{}")
            out.append((d["Destination"]["ToAddresses"][0], data, message.template))
    return out


def sent_counts() -> Counter[str]:
    return Counter(address for address, _, _ in destinations())


def batch_sizes() -> list[int]:
    return [len(m.destinations) for m in moto_messages()]


def balanced(result: SinkResult) -> SinkResult:
    assert result.balanced, result.to_dict()
    return result


def suppression_client(addresses: list[str], page: int = 2) -> Any:
    """An SES v2 client whose ListSuppressedDestinations answers from ``addresses``, ``page``
    per page (Stubber: request and answers are checked against botocore's model)."""
    client = boto3.client("sesv2", region_name=REGION)
    stub = Stubber(client)
    chunks = [addresses[i : i + page] for i in range(0, len(addresses), page)] or [[]]
    for n, chunk in enumerate(chunks):
        response: dict[str, Any] = {
            "SuppressedDestinationSummaries": [
                {
                    "EmailAddress": a,
                    "Reason": "BOUNCE",
                    "LastUpdateTime": dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
                }
                for a in chunk
            ]
        }
        if n + 1 < len(chunks):
            response["NextToken"] = f"page-{n + 2}"
        expected: dict[str, Any] = {"PageSize": 1000}
        if n:
            expected["NextToken"] = f"page-{n + 1}"
        stub.add_response("list_suppressed_destinations", response, expected)
    stub.activate()
    client.stub = stub  # type: ignore[attr-defined]
    return client


class Wrapped:
    """The moto SES client, with faults injected into SendBulkTemplatedEmail."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.send_calls = 0
        self.raise_on: set[int] = set()  # 1-based send calls that raise `error`
        self.raise_from: int | None = None  # every send call from this one raises
        self.error: Exception = throttling()
        self.reject: dict[str, tuple[str, str]] = {}  # address -> (Status, Error)
        self.quota: dict[str, float] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_send_quota(self, **kwargs: Any) -> dict[str, Any]:
        return dict(self.quota) if self.quota else self.client.get_send_quota(**kwargs)

    def send_bulk_templated_email(self, **kwargs: Any) -> dict[str, Any]:
        self.send_calls += 1
        n = self.send_calls
        if n in self.raise_on or (self.raise_from is not None and n >= self.raise_from):
            raise self.error
        response = self.client.send_bulk_templated_email(**kwargs)
        statuses = []
        for d, s in zip(kwargs["Destinations"], response["Status"], strict=True):
            address = d["Destination"]["ToAddresses"][0]
            if address in self.reject:
                status, error = self.reject[address]
                statuses.append({"Status": status, "Error": error})
            else:
                statuses.append({"Status": "Success", "MessageId": s["MessageId"]})
        return {**response, "Status": statuses}


def throttling(message: str = "Maximum sending rate exceeded.") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "Throttling", "Message": message, "Type": "Sender"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "SendBulkTemplatedEmail",
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "PEAK_FAILPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ses = boto3.client("ses", region_name=REGION)
        ses.verify_email_identity(EmailAddress=SENDER_ADDRESS)
        yield ses


class Env:
    def __init__(self, tmp_path: Path, ses: Any) -> None:
        self.tmp = tmp_path
        self.lake = Lake.from_uri(str(tmp_path / "lake"))
        self.db = tmp_path / "warehouse.duckdb"
        self.ses = ses
        self.clock = Clock()
        self.now = TODAY
        self.suppressed: list[str] = []
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

    def sink(self, client: Any = "moto", **overrides: Any) -> EmailSink:
        sink = EmailSink(
            email_settings=self.settings(**overrides),
            sleep=self.clock.sleep,
            clock=self.clock.monotonic,
            ses_client=self.ses if client == "moto" else client,
            sesv2_client=suppression_client(self.suppressed),
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

    def deploy(self, client: Any = "moto", **overrides: Any) -> SinkResult:
        return balanced(self.sink(client, **overrides).deploy_templates(self.ctx()))

    def run(
        self,
        rows: list[dict[str, Any]] | None = None,
        *,
        days: int = 0,
        client: Any = "moto",
        dry_run: bool = False,
        **overrides: Any,
    ) -> SinkResult:
        if rows is not None:
            self.write_mart(rows)
        self.now = TODAY + dt.timedelta(days=days)
        return balanced(self.sink(client, **overrides).run(self.ctx(dry_run)))


@pytest.fixture
def env(tmp_path: Path, aws: Any) -> Env:
    e = Env(tmp_path, aws)
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


def test_deploy_templates_is_idempotent_and_updates_a_changed_file(tmp_path: Path, aws: Any):
    e = Env(tmp_path, aws)
    templates = e.copy_templates()
    first = e.deploy()
    assert first.details["templates"]["created"] == [
        f"{PREFIX}at_risk_nudge",
        f"{PREFIX}churned_winback",
    ]
    assert (first.records, first.sent, first.unchanged) == (2, 2, 0)
    held = aws.get_template(TemplateName=f"{PREFIX}at_risk_nudge")["Template"]
    assert held["HtmlPart"] == load_template(templates, "at_risk_nudge").html.compiled

    spy = Wrapped(aws)
    calls: list[str] = []
    for op in ("create_template", "update_template"):
        setattr(spy, op, lambda _op=op, **kw: (calls.append(_op), getattr(aws, _op)(**kw))[1])
    second = e.deploy(client=spy)
    assert second.details["templates"] == {
        "created": [],
        "updated": [],
        "unchanged": [f"{PREFIX}at_risk_nudge", f"{PREFIX}churned_winback"],
    }
    assert calls == [] and second.api_calls == 2  # two GetTemplate, nothing written

    subject = templates / "churned_winback" / "subject.txt"
    subject.write_text("We saved your spot at {{home_location}}\n")
    third = e.deploy(client=spy)
    assert third.details["templates"]["updated"] == [f"{PREFIX}churned_winback"]
    assert calls == ["update_template"]
    held = aws.get_template(TemplateName=f"{PREFIX}churned_winback")["Template"]
    assert held["SubjectPart"] == "We saved your spot at {{{home_location}}}"
    assert e.deploy(client=spy).details["templates"]["updated"] == []


def test_a_run_refuses_a_template_ses_holds_in_another_version(env: Env) -> None:
    templates = env.copy_templates()
    (templates / "at_risk_nudge" / "subject.txt").write_text("New subject {{home_location}}\n")
    result = env.run(members(3))
    assert result.status == "failed" and "--deploy-templates" in str(result.error)
    assert result.failed == 3 and moto_messages() == []
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
    assert result.api_calls == 0 and moto_messages() == []
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
    assert run.api_calls == 0 and moto_messages() == []


# ---------------------------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------------------------


def test_sends_in_bulk_calls_of_50_with_template_data_and_unsubscribe_links(env: Env) -> None:
    rows = members(120)
    result = env.run(rows)

    assert result.status == "ok", result.error
    assert (result.records, result.sent, result.unchanged, result.failed) == (120, 120, 0, 0)
    assert batch_sizes() == [50, 50, 20]  # ceil(120 / 50) calls
    # ListSuppressedDestinations + GetTemplate + GetSendQuota + 3 sends
    assert result.api_calls == 6 and result.retried == 0
    by_address = {r["email"]: r for r in rows}
    for message in moto_messages():
        assert message.template == f"{PREFIX}at_risk_nudge"
        assert message.source == SENDER
    for address, data, _ in destinations():
        row = by_address[address]
        assert data["home_location"] == row["home_location"]
        assert data["visits_30d"] == str(row["visits_30d"])
        assert data["favourite_class"] == (row["favourite_class"] or "")
        assert verify_unsubscribe(data["unsubscribe_url"], SECRET) == address
        assert data["unsubscribe_url"].startswith(UNSUBSCRIBE_BASE + "?e=")
        assert data["unsubscribe_url__html"] == data["unsubscribe_url"].replace("&", "&amp;")
        assert verify_unsubscribe(data["unsubscribe_url"], "another-secret") is None
    assert sent_counts() == Counter({r["email"]: 1 for r in rows})
    # Paced to moto's MaxSendRate of 1 message a second: 50 s after each full batch.
    assert env.clock.sleeps == [50.0, 50.0]
    assert result.details["pace_wait_s"] == 100.0
    ledger = Ledger.load(env.lake)
    entry = ledger.entries["at_risk_nudge|U00000"]
    assert entry["s"] == "sent" and entry["p"] == "2026-11-25" and entry["m"]
    assert result.details["campaigns"]["at_risk_nudge"]["sent"] == 120


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
    assert first.sent == 6 and len(moto_messages()) == 2  # one call per campaign

    again = env.run(days=2)  # the same week
    assert (again.sent, again.unchanged) == (0, 6)
    assert again.details["skipped"] == {"already_sent": 6}
    assert len(moto_messages()) == 2 and again.api_calls == 0

    week_later = env.run(days=8)
    assert (week_later.sent, week_later.unchanged) == (3, 3)
    assert [m.template for m in moto_messages()][2:] == [f"{PREFIX}at_risk_nudge"]

    month_later = env.run(days=29)  # the nudge again (last sent on day 8), not the win-back
    assert month_later.sent == 3 and month_later.details["campaigns"]["churned_winback"]["due"] == 0
    day_30 = env.run(days=30)  # the win-back went on day 0: due again on day 30
    assert day_30.sent == 3 and day_30.details["campaigns"]["churned_winback"]["sent"] == 3
    counts = sent_counts()
    assert {counts[r["email"]] for r in rows if r["segment"] == "at_risk"} == {3}
    assert {counts[r["email"]] for r in rows if r["segment"] == "churned"} == {2}


def test_throttling_is_retried_with_backoff(env: Env) -> None:
    client = Wrapped(env.ses)
    client.raise_on = {1, 2}
    result = env.run(members(60), client=client)
    assert result.status == "ok" and result.sent == 60
    assert result.retried == 2 and result.details["throttled_responses"] == 2
    assert client.send_calls == 4 and batch_sizes() == [50, 10]
    assert result.details["retry_wait_s"] > 0
    assert sent_counts() == Counter({r["email"]: 1 for r in members(60)})


def test_persistent_throttling_stops_cleanly_and_the_next_run_continues(env: Env) -> None:
    rows = members(150)
    client = Wrapped(env.ses)
    client.raise_from = 2  # the first batch goes, then SES throttles every call
    result = env.run(rows, client=client)

    assert result.status == "failed" and "stopped" in str(result.error)
    assert (result.sent, result.failed) == (50, 100)
    stop = result.details["stopped"]
    assert stop["reason"] == "throttled" and stop["left"] == 100
    assert stop["next"] == {"campaign": "at_risk_nudge", "user_id": "U00050"}
    assert client.send_calls == 1 + env.settings().max_attempts
    assert Ledger.load(env.lake).last_stop["next"]["user_id"] == "U00050"
    assert all(e.reason.startswith("deferred:") for e in result.errors)

    resumed = env.run()
    assert resumed.status == "ok" and (resumed.sent, resumed.unchanged) == (100, 50)
    assert resumed.details["previous_stop"]["reason"] == "throttled"
    assert Ledger.load(env.lake).last_stop is None
    assert sent_counts() == Counter({r["email"]: 1 for r in rows})


def test_daily_quota_stops_cleanly_at_the_quota(env: Env) -> None:
    env.ses.send_bulk_templated_email(  # 30 messages already went out today
        Source=SENDER,
        Template=f"{PREFIX}at_risk_nudge",
        DefaultTemplateData="{}",
        Destinations=[{"Destination": {"ToAddresses": [f"x{i}@example.com"]}} for i in range(30)],
    )
    result = env.run(members(230))
    assert result.details["quota"]["remaining"] == 170  # moto: 200 a day
    assert batch_sizes()[1:] == [50, 50, 50, 20]  # exactly up to the quota, then stop
    assert (result.sent, result.failed) == (170, 60)
    assert result.status == "failed"
    assert result.details["stopped"]["reason"] == "daily_quota"
    assert result.details["stopped"]["next"]["user_id"] == "U00170"

    tomorrow = Wrapped(env.ses)
    tomorrow.quota = {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 0.0}
    resumed = env.run(days=1, client=tomorrow)
    assert (resumed.sent, resumed.unchanged) == (60, 170)
    assert len(sent_counts()) == 230 + 30


def test_a_daily_quota_error_from_ses_stops_without_retrying(env: Env) -> None:
    client = Wrapped(env.ses)
    client.raise_on = {2}
    client.error = throttling("Daily message quota exceeded.")
    result = env.run(members(120), client=client)
    assert client.send_calls == 2 and result.retried == 0
    assert (result.sent, result.failed) == (50, 70)
    assert result.details["stopped"]["reason"] == "daily_quota"
    entry = Ledger.load(env.lake).entries["at_risk_nudge|U00050"]
    assert entry["s"] == "failed" and "Daily message quota" in entry["e"]


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
    assert batch_sizes() == [50, 50]

    rerun = env.run()
    assert rerun.sent == 50
    assert rerun.details["skipped"] == {"already_sent": 50, "in_doubt": 50}
    assert sent_counts() == Counter({r["email"]: 1 for r in rows})  # each member once


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
    assert batch_sizes() == [50]

    rerun = env.run()
    assert rerun.sent == 50 and rerun.details["skipped"]["in_doubt"] == 50
    counts = sent_counts()
    assert len(counts) == 100 and set(counts.values()) == {1}
    fresh = Wrapped(env.ses)  # moto never forgets what it sent: a new day's quota
    fresh.quota = {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 0.0}
    assert env.run(days=7, client=fresh).sent == 150  # the next period reaches everyone


def test_a_lost_answer_leaves_the_batch_in_doubt_and_stops(env: Env) -> None:
    client = Wrapped(env.ses)
    client.raise_on = {2}
    client.error = ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com/")
    result = env.run(members(150), client=client)
    assert result.status == "failed" and client.send_calls == 2  # never re-sent
    assert result.details["in_doubt"]["members"] == 50
    assert (result.sent, result.failed) == (50, 100)
    ledger = Ledger.load(env.lake)
    assert ledger.entries["at_risk_nudge|U00050"]["s"] == "sending"
    rerun = env.run()
    assert rerun.sent == 50 and rerun.details["skipped"]["in_doubt"] == 50


@pytest.mark.skipif(sys.platform == "win32", reason="os._exit in a child process")
def test_a_real_crash_in_a_child_process_sends_each_member_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PEAK_FAILPOINT kills a child process running the sink through the runner, against moto's
    server via AWS_ENDPOINT_URL; the re-run sends each member exactly once in total."""
    import moto.ses.models
    from moto.server import ThreadedMotoServer

    class FastQuota(moto.ses.models.SESQuota):  # moto's 1 a second would make the child sleep
        def __init__(self, sent: int) -> None:
            super().__init__(sent)
            self.max_send_rate = 10_000

    monkeypatch.setattr(moto.ses.models, "SESQuota", FastQuota)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        child_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PEAK_"))},
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
            "PEAK_EMAIL_SENDER": SENDER,
            "PEAK_EMAIL_TEMPLATE_PREFIX": PREFIX,
            "PEAK_EMAIL_CHECK_SUPPRESSION": "false",  # moto has no SES v2 suppression list
        }
        for key, value in child_env.items():
            if key.startswith(("AWS_", "PEAK_")):
                monkeypatch.setenv(key, value)
        ses = boto3.client("ses", region_name=REGION)  # botocore reads AWS_DEFAULT_REGION only
        ses.verify_email_identity(EmailAddress=SENDER_ADDRESS)
        ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages.clear()
        e = Env(tmp_path, ses)
        assert e.deploy().sent == 2
        rows = members(120)
        e.write_mart(rows)
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
        assert batch_sizes() == [50, 50]
        done = child(None)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ok 20"), done.stdout  # batch 2 is in doubt: not resent
        assert batch_sizes() == [50, 50, 20]
        assert sent_counts() == Counter({r["email"]: 1 for r in rows})
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Who is skipped
# ---------------------------------------------------------------------------------------------


def test_suppressed_opted_out_and_unsubscribed_members_are_skipped(env: Env) -> None:
    rows = members(10)
    env.suppressed = ["member1@example.com", "MEMBER2@example.com", "member3@example.com"]
    assert unsubscribe(env.lake, " Member4@Example.com ", source="test")
    assert not unsubscribe(env.lake, "member4@example.com")  # already there
    opted_in = {r["user_id"]: r["user_id"] != "U00005" for r in rows}
    env.write_mart(rows, opted_in=opted_in)

    result = env.run()
    assert (result.records, result.sent, result.unchanged) == (10, 5, 5)
    assert result.details["skipped"] == {"opted_out": 1, "suppressed": 3, "unsubscribed": 1}
    assert result.details["opt_in_check"] == "dim_users.marketing_opt_in"
    assert result.details["suppression_list"] == 3  # read over two pages
    env.last_sink.sesv2().stub.assert_no_pending_responses()
    assert sorted(sent_counts()) == [f"member{i}@example.com" for i in (0, 6, 7, 8, 9)]


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
    assert "member3@example.com" not in sent_counts()


def test_the_unsubscribe_link_round_trip(env: Env) -> None:
    env.run(members(2))
    (_, data, _), _ = destinations()
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
    client = Wrapped(env.ses)
    client.reject = {"member3@example.com": ("MessageRejected", "Address blacklisted.")}
    result = env.run(members(5), client=client)
    assert result.status == "ok"  # one bad address does not fail the run
    assert (result.sent, result.failed) == (4, 1)
    assert result.errors[0].key == "U00003"
    assert "MessageRejected: Address blacklisted." in result.errors[0].reason
    entry = Ledger.load(env.lake).entries["at_risk_nudge|U00003"]
    assert entry["s"] == "failed" and "blacklisted" in entry["e"]

    retry = env.run()
    assert (retry.sent, retry.unchanged) == (1, 4)
    assert retry.details["retrying_failed"] == 1
    assert moto_messages()[-1].destinations[0]["Destination"]["ToAddresses"] == [
        "member3@example.com"
    ]


# ---------------------------------------------------------------------------------------------
# Escaping, dry runs, settings
# ---------------------------------------------------------------------------------------------


def test_values_are_html_escaped_in_html_only(env: Env) -> None:
    nasty = '<script>alert("hi")</script> & Co'
    result = env.run([member(1, favourite_class=nasty, home_location="Peak <Soho>")])
    assert result.sent == 1
    ((_, data, template_name),) = destinations()
    assert data["favourite_class"] == nasty  # the text part and subject: as it is
    assert data["favourite_class__html"] == (
        "&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; &amp; Co"
    )
    held = env.ses.get_template(TemplateName=template_name)["Template"]
    html_part = render(held["HtmlPart"], data)  # what SES renders: it escapes nothing itself
    text_part = render(held["TextPart"], data)
    subject = render(held["SubjectPart"], data)
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
    requests = e.lake.read_bytes(
        outbox_prefix("email", "run-1") + "send_bulk_templated_email.jsonl"
    )
    assert [len(json.loads(r)["Destinations"]) for r in requests.splitlines()] == [3, 1]
    assert Ledger.load(e.lake).entries == {}  # a dry run records nothing


def test_dry_run_sends_nothing_and_a_real_run_then_sends_all(env: Env) -> None:
    dry = env.run(members(4), dry_run=True)
    assert dry.dry_run and dry.sent == 4 and dry.api_calls == 0
    assert dry.details["note"].startswith("dry run: nothing was sent")
    assert moto_messages() == []
    assert env.run().sent == 4


def test_a_real_send_needs_a_sender_and_an_unsubscribe_secret(env: Env) -> None:
    no_sender = env.run(members(2), sender=None)  # not configured to send: a dry run
    assert no_sender.dry_run and "PEAK_EMAIL_SENDER is not set" in no_sender.details["note"]
    no_secret = env.run(unsubscribe_secret=None)
    assert no_secret.status == "failed" and "PEAK_EMAIL_UNSUBSCRIBE_SECRET" in str(no_secret.error)
    assert no_secret.api_calls == 0 and moto_messages() == []
    emulator = env.run(unsubscribe_secret=None, endpoint_url="http://127.0.0.1:5000")
    assert emulator.sent == 2 and "development default" in emulator.details["unsubscribe_secret"]


def test_configuration_set_and_campaign_tag_are_sent(env: Env) -> None:
    seen: list[dict[str, Any]] = []
    client = Wrapped(env.ses)
    original = client.send_bulk_templated_email
    client.send_bulk_templated_email = lambda **kw: (seen.append(kw), original(**kw))[1]
    env.ses.create_configuration_set(ConfigurationSet={"Name": "peak-retention"})
    result = env.run(members(2), client=client, configuration_set="peak-retention")
    assert result.sent == 2
    assert seen[0]["ConfigurationSetName"] == "peak-retention"
    assert seen[0]["DefaultTags"] == [{"Name": "campaign", "Value": "at_risk_nudge"}]
    assert set(json.loads(seen[0]["DefaultTemplateData"]).values()) == {""}


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
    assert "old@example.com" in unsubscribed(lake)
    assert not unsubscribe(lake, "Old@Example.com")
    with pytest.raises(ValueError):
        unsubscribe(lake, "not an address")
