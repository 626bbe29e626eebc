"""Running sinks by name, their exit codes and run-report lines, and `peak activate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from activation import runner
from activation.base import SinkContext, SinkResult
from activation.leaderboard import Keys
from peak.cli import app
from peak.cli.activate import register
from peak.core.lake import Lake
from peak.core.report import RunReport, new_run_id
from peak.core.settings import Settings
from peak.model.warehouse import DuckDBWarehouse, serving_path
from tests.test_leaderboard import weekly_rows, write_mart


class Counting:
    """A sink that counts what it is given."""

    def __init__(self, name: str, records: int = 3) -> None:
        self.name = name
        self.records = records

    def run(self, ctx: SinkContext) -> SinkResult:
        return SinkResult(sink=self.name, records=self.records, sent=self.records)


class Exploding:
    name = "exploding"

    def run(self, ctx: SinkContext) -> SinkResult:
        raise RuntimeError("the API fell over\ntraceback lines nobody needs")


@pytest.fixture
def ctx(lake: Lake) -> SinkContext:
    return SinkContext(lake, DuckDBWarehouse(serving_path(lake)), new_run_id())


def results(**statuses: str) -> dict[str, SinkResult]:
    return {name: SinkResult(sink=name, status=status) for name, status in statuses.items()}


def test_a_sink_that_raises_does_not_stop_the_others(ctx, monkeypatch):
    monkeypatch.setattr(
        runner,
        "SINKS",
        {
            "leaderboard": lambda settings: Counting("leaderboard"),
            "hubspot": lambda settings: Exploding(),
            "email": lambda settings: Counting("email", records=5),
        },
    )
    done = []

    out = runner.run_sinks(ctx, ["all"], Settings(), on_done=lambda name, r: done.append(name))

    assert list(out) == done == ["leaderboard", "hubspot", "email"]
    assert out["hubspot"].status == "failed"
    assert out["hubspot"].error == "RuntimeError: the API fell over"
    assert out["hubspot"].sink == "hubspot"
    assert (out["leaderboard"].status, out["email"].sent) == ("ok", 5)
    assert runner.exit_code(out) == 8


def test_a_sink_whose_module_is_missing_fails_alone_and_is_left_out_of_all(ctx, monkeypatch):
    ghost = runner.LazySink("activation.no_such_sink", "GhostSink")
    monkeypatch.setitem(runner.SINKS, "email", ghost)
    monkeypatch.setitem(runner.SINKS, "leaderboard", lambda settings: Counting("leaderboard"))

    assert "email" not in runner.available()
    assert "email" not in runner.resolve(["all"])
    out = runner.run_sinks(ctx, ["leaderboard", "email"], Settings())

    assert out["email"].status == "failed"
    assert out["email"].error == "activation.no_such_sink is not installed yet"
    assert out["leaderboard"].status == "ok"
    assert runner.exit_code(out) == 16


def test_names_resolve_in_order_without_repeats_and_unknown_ones_are_refused():
    assert runner.resolve(["leaderboard", "all", "leaderboard"])[0] == "leaderboard"
    assert len(set(runner.resolve(["all", "all"]))) == len(runner.resolve(["all"]))
    with pytest.raises(ValueError, match="unknown sink 'sms'"):
        runner.resolve(["sms"])


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ({"leaderboard": "ok", "hubspot": "ok", "email": "skipped"}, 0),
        ({"leaderboard": "failed"}, 4),
        ({"leaderboard": "ok", "hubspot": "failed"}, 8),
        ({"email": "failed"}, 16),
        ({"leaderboard": "failed", "hubspot": "failed", "email": "ok"}, 12),
        ({"leaderboard": "failed", "hubspot": "failed", "email": "failed"}, 28),
        ({"webhook": "failed"}, 1),
    ],
)
def test_the_exit_code_has_one_bit_per_failed_sink(statuses, code):
    assert runner.exit_code(results(**statuses)) == code


def test_each_sink_gets_a_line_in_the_run_report(lake):
    report = RunReport("activate")
    done = {"leaderboard": SinkResult(sink="leaderboard", records=4, sent=1, unchanged=3)}
    done |= results(hubspot="failed")

    runner.record(report, done)

    stage = report.stages["activation"]
    assert stage["leaderboard"]["records"] == 4 and stage["leaderboard"]["balanced"]
    assert stage["hubspot"]["status"] == "failed"
    saved = json.loads(lake.read_bytes(report.save(lake)))
    assert saved["stages"]["activation"]["leaderboard"]["unchanged"] == 3


# ---------------------------------------------------------------------------------------------
# peak activate
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> CliRunner:
    register(app)  # a no-op once peak.cli registers the command itself
    return CliRunner()


@pytest.fixture
def published(lake: Lake) -> Path:
    """A lake whose serving warehouse holds the leaderboard mart."""
    rows = weekly_rows(weeks=2, members=12)
    write_mart(serving_path(lake), rows)
    return Path(lake.root)


def last_report(root: Path) -> dict:
    reports = [json.loads(p.read_text()) for p in (root / "_runs").glob("*.json")]
    return max(reports, key=lambda r: r["started_at"])


def test_peak_activate_dry_run_writes_the_outbox_without_redis(cli, published, free_port):
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port}/0", "PEAK_LEADERBOARD_PREFIX": "x:y"}

    result = cli.invoke(
        app, ["--lake", str(published), "activate", "leaderboard", "--dry-run"], env=env
    )

    assert result.exit_code == 0, result.output
    assert "activate leaderboard (dry run)" in result.stdout
    assert "ok (dry run)" in result.stdout
    report = last_report(published)
    line = report["stages"]["activation"]["leaderboard"]
    assert report["status"] == "ok" and line["dry_run"] and line["balanced"]
    outbox = published / "outbox" / "leaderboard" / report["run_id"]
    assert sorted(p.name for p in outbox.iterdir()) == [
        "boards.jsonl",
        "index.jsonl",
        "members.jsonl",
    ]
    assert json.loads((outbox / "index.jsonl").read_text().splitlines()[0])["key"] == "x:y:weeks"


def test_peak_activate_publishes_the_leaderboard(cli, published, redis_url, redis_prefix):
    env = {"REDIS_URL": redis_url, "PEAK_LEADERBOARD_PREFIX": redis_prefix}

    result = cli.invoke(app, ["--lake", str(published), "activate", "leaderboard"], env=env)

    assert result.exit_code == 0, result.output
    line = last_report(published)["stages"]["activation"]["leaderboard"]
    assert line["status"] == "ok" and line["sent"] == line["records"] > 0
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.zrange(Keys(redis_prefix).weeks, 0, -1) == ["2026-W47", "2026-W48"]
    finally:
        client.close()
    for column in ("sink", "records", "sent", "unchanged", "failed", "retried", "status"):
        assert column in result.stdout


def test_peak_activate_exits_with_the_sink_bit_and_one_error_line(cli, published, free_port):
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port}/0"}

    result = cli.invoke(app, ["--lake", str(published), "activate", "leaderboard"], env=env)

    assert result.exit_code == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: leaderboard: redis unreachable at redis://127.0.0.1:{free_port}/0: "
        f"Error 111 connecting to 127.0.0.1:{free_port}. Connection refused."
    ]
    report = last_report(published)
    assert report["status"] == "failed"
    assert report["stages"]["activation"]["leaderboard"]["status"] == "failed"


def test_peak_activate_refuses_an_unknown_sink(cli, published):
    result = cli.invoke(app, ["--lake", str(published), "activate", "sms"])

    assert result.exit_code == 2
    assert "leaderboard" in result.output and "all" in result.output


def test_peak_activate_email_deploys_the_templates_idempotently(cli, lake, monkeypatch):
    from tests.fake_sesv2 import FakeSesV2  # SES API v2 templates (moto lacks them)

    fake = FakeSesV2()
    for name, value in {
        "AWS_ACCESS_KEY_ID": fake.access_key,
        "AWS_SECRET_ACCESS_KEY": fake.secret_key,
        "AWS_REGION": fake.region,
        "AWS_DEFAULT_REGION": fake.region,
    }.items():
        monkeypatch.setenv(name, value)
    root = Path(lake.root)
    argv = ["--lake", str(root), "activate", "email", "--deploy-templates"]
    with fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.base_url)
        first = cli.invoke(app, argv)
        assert first.exit_code == 0, first.output
        line = last_report(root)["stages"]["activation"]["email"]
        assert line["records"] == line["sent"] >= 2 and not line["dry_run"]
        second = cli.invoke(app, argv)
        assert second.exit_code == 0, second.output
        line = last_report(root)["stages"]["activation"]["email"]
        assert line["sent"] == 0 and line["unchanged"] == line["records"]
    refused = cli.invoke(
        app, ["--lake", str(root), "activate", "leaderboard", "--deploy-templates"]
    )
    assert refused.exit_code == 1 and "email sink only" in refused.stderr


def test_peak_activate_refuses_to_run_beside_another_activation(cli, published):
    """Given another activation holding the lake's activation lock (a scheduled run, say),
    when `peak activate` starts, then it fails naming the reason and runs no sink; once the
    lock is released the same command runs."""
    from peak.core.layout import ACTIVATION_LOCK_KEY
    from peak.core.locks import lake_lock

    argv = ["--lake", str(published), "activate", "leaderboard", "--dry-run"]
    held = lake_lock(
        Lake(str(published)),
        ACTIVATION_LOCK_KEY,
        "scheduled-run",
        what="activation",
        stale_after=runner.STALE_LOCK,
    )
    with held:
        refused = cli.invoke(app, argv)
    assert refused.exit_code == 1
    assert "another activation is running" in refused.stderr
    assert not (published / "outbox").exists()  # no sink ran
    assert last_report(published)["status"] == "failed"
    after = cli.invoke(app, argv)
    assert after.exit_code == 0, after.output
    assert (published / "outbox" / "leaderboard").is_dir()
