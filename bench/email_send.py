"""Benchmark: the email sink sending 10k retention emails through SES API v2 (the fake).

It builds ``mart_email_targets`` with ``--emails`` members (half at risk, half churned) in a
DuckDB file, deploys the two templates to the fake SES v2 of ``tests/fake_sesv2.py`` (a real
HTTP server that checks every request's signature, renders every message and holds SES's
limits; moto has no SES v2 bulk sending), and runs the sink once. The fake reports a production
account: ``--rate`` messages a second, no daily limit. Pacing is measured on a virtual clock: the
sink's sleeps advance it instead of the wall clock, and the fake counts its sending rate on the
same clock (a call the sink sends too early is refused), so the wall time is the sink's own cost
and the paced time is what a real account at ``--rate`` would take.

It prints the SendBulkEmail calls (the target is ceil(n/50) per campaign), the other API calls,
the sink's wall time, the paced time against ``n / rate``, and, as the reference, a bare loop
of the very same boto3 send calls (the requests the sink made, replayed) against the same fake,
with the ratio of the sink's wall time to it. A second run (nothing due) is timed too. Results
go to bench/out/email.json. A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/email_send.py                 # 10k emails, 14 a second
    .venv/bin/python bench/email_send.py --emails 2000
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run as a script: import the repository's packages

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import boto3  # noqa: E402
import duckdb  # noqa: E402

from activation.base import SinkContext  # noqa: E402
from activation.email import EmailSink  # noqa: E402
from activation.email.settings import client_config  # noqa: E402
from peak.core.lake import Lake  # noqa: E402
from peak.core.settings import SES_BULK_LIMIT, EmailSettings  # noqa: E402
from peak.model.warehouse import DuckDBWarehouse  # noqa: E402
from tests.fake_sesv2 import FakeSesV2  # noqa: E402

OUT = HERE / "out"
REGION = "eu-west-1"
SENDER = "Peak Fitness <hello@peak.example>"


def build_mart(db: Path, n: int) -> dict[str, int]:
    con = duckdb.connect(str(db))
    try:
        con.execute(
            f"""
            create or replace table main.mart_email_targets as
            select
                'U' || lpad(i::varchar, 7, '0')                           as user_id,
                'member' || i || '@example.com'                           as email,
                case when i % 2 = 0 then 'at_risk' else 'churned' end     as segment,
                case when i % 2 = 0 then 'visit_rate_drop' else 'inactive' end as churn_reason,
                date '2026-11-01' + (i % 20)::int                         as churn_date,
                'Peak ' || (['Camden', 'Soho', 'Brixton', 'Leeds'])[1 + i % 4] as home_location,
                (['basic', 'plus', 'premium'])[1 + i % 3]                 as plan,
                date '2025-01-01' + (i % 300)::int                        as join_date,
                date '2026-10-01' + (i % 25)::int                         as last_visit_date,
                (30 + i % 25)::bigint                                     as days_since_last_visit,
                (i % 5)::bigint                                           as visits_30d,
                (10 + i % 9)::bigint                                      as visits_90d,
                (i % 12)::bigint                                          as longest_streak_weeks,
                case when i % 4 = 0 then null else 'Spin & Core <45>' end as favourite_class,
                case when i % 4 = 0 then null else 'Sam Lee' end          as favourite_instructor
            from range({n}) t(i)
            """
        )
        con.execute(  # every member opted in: the sink's double-check reads this
            "create or replace table main.dim_users as select user_id, true as marketing_opt_in"
            " from main.mart_email_targets"
        )
        counts = dict(
            con.execute(
                "select segment, count(*) from main.mart_email_targets group by 1"
            ).fetchall()
        )
    finally:
        con.close()
    return counts


class Recorder:
    """The boto3 SES v2 client, its sends recorded (to replay them as the reference)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sends: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def send_bulk_email(self, **kwargs: Any) -> dict[str, Any]:
        self.sends.append(kwargs)
        return self.client.send_bulk_email(**kwargs)


class VirtualClock:
    """Wall time plus every second the sink chose to sleep (without sleeping)."""

    def __init__(self) -> None:
        self.slept = 0.0

    def monotonic(self) -> float:
        return time.perf_counter() + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += max(0.0, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=14.0, help="MaxSendRate to report")
    args = parser.parse_args()
    n = args.emails

    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "PEAK_FAILPOINT"):
        os.environ.pop(key, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    clock = VirtualClock()
    fake = FakeSesV2(
        region=REGION,
        max_send_rate=args.rate,
        max_24h=-1.0,
        verified=("hello@peak.example",),
        clock=clock.monotonic,
    )
    for i in range(1000):  # the account's suppression list: 1,000 addresses, not our members
        fake.suppress(f"bounced{i}@example.org", "BOUNCE")
    with tempfile.TemporaryDirectory(prefix="peak-email-bench-") as tmp, fake:
        root = Path(tmp)
        db = root / "warehouse.duckdb"
        counts = build_mart(db, n)
        target_calls = sum(math.ceil(c / SES_BULK_LIMIT) for c in counts.values())
        lake = Lake.from_uri(str(root / "lake"))
        sesv2 = boto3.client(
            "sesv2",
            endpoint_url=fake.base_url,
            region_name=REGION,
            aws_access_key_id=fake.access_key,
            aws_secret_access_key=fake.secret_key,
            config=client_config(),
        )
        settings = EmailSettings(
            sender=SENDER,
            region=REGION,
            endpoint_url=None,
            unsubscribe_url="https://peak.example/unsubscribe",
            unsubscribe_secret="bench-secret",
            template_prefix="bench-",
        )
        client = Recorder(sesv2)

        def sink() -> EmailSink:
            return EmailSink(
                email_settings=settings,
                sleep=clock.sleep,
                clock=clock.monotonic,
                sesv2_client=client,
            )

        sink().deploy_templates(SinkContext(lake, DuckDBWarehouse(db), "deploy"))

        t0, slept0 = time.perf_counter(), clock.slept
        result = sink().run(SinkContext(lake, DuckDBWarehouse(db), "bench-1"))
        sink_s = time.perf_counter() - t0
        paced_s = sink_s + clock.slept - slept0
        send_calls = len(client.sends)
        ses_recipients = len(fake.messages)
        headers = sum(1 for m in fake.messages if m.header("List-Unsubscribe-Post"))

        t0 = time.perf_counter()
        again = sink().run(SinkContext(lake, DuckDBWarehouse(db), "bench-2"))
        again_s = time.perf_counter() - t0

        requests = list(client.sends)
        fake.messages.clear()
        fake.max_send_rate = 1e9  # the reference replays the calls unpaced, an hour later
        clock.slept += 3600
        t0 = time.perf_counter()
        for request in requests:  # the reference: the same calls, nothing else
            sesv2.send_bulk_email(**request)
        bare_s = time.perf_counter() - t0

    report = {
        "emails": n,
        "segments": counts,
        "send_calls": send_calls,
        "send_calls_target": target_calls,
        "other_api_calls": result.api_calls - send_calls,
        "sent": result.sent,
        "ses_recipients": ses_recipients,
        "one_click_headers": headers,
        "status": result.status,
        "sink_wall_s": round(sink_s, 3),
        "bare_loop_s": round(bare_s, 3),
        "ratio_to_bare_loop": round(sink_s / bare_s, 2) if bare_s else None,
        "rate_per_s": args.rate,
        "paced_s": round(paced_s, 1),
        "paced_target_s": round(n / args.rate, 1),
        "second_run_s": round(again_s, 3),
        "second_run_send_calls": len(client.sends) - send_calls,
        "second_run_unchanged": again.unchanged,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "email.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"email sink: {n:,} emails through the fake SES API v2 ({counts})")
    print(
        f"  SendBulkEmail calls {send_calls} (target ceil(n/50) per campaign = "
        f"{target_calls}); other calls {report['other_api_calls']}; sent {result.sent:,}; "
        f"SES took {ses_recipients:,}, {headers:,} with one-click unsubscribe headers; "
        f"status {result.status}"
    )
    print(
        f"  sink {sink_s:.2f} s wall ({n / sink_s:,.0f} emails/s) vs a bare loop of the same "
        f"calls {bare_s:.2f} s: {report['ratio_to_bare_loop']}x"
    )
    print(
        f"  paced at {args.rate:g}/s: {paced_s:,.1f} s (n/rate = {n / args.rate:,.1f} s, "
        f"{paced_s / (n / args.rate):.3f}x)"
    )
    print(
        f"  second run (nothing due): {again_s:.2f} s, {report['second_run_send_calls']} send "
        f"calls, {again.unchanged:,} unchanged"
    )
    print(f"  -> {OUT / 'email.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
