"""Benchmark: the HubSpot sink syncing 100k contacts against the fake HubSpot's rate limit.

It builds ``mart_hubspot_contacts`` with ``--contacts`` churned/at-risk members in a DuckDB file,
starts the fake HubSpot (tests/fake_hubspot.py) enforcing ``--limit`` calls per rolling
``--window`` seconds, configures the sink with the same limit, and measures three runs:

- first sync:   every contact is new (full batches of 100)
- 1% changed:   ``--changed`` of the members have a new ``visits_30d``
- unchanged:    nothing changed (no contact calls at all)

For each it prints the API calls (and the target: ceil(changed/100) + a small constant),
contacts/s, the average call rate as a percentage of the configured limit, the busiest rolling
window the fake saw, and the 429s it served (target 0). HubSpot's real limit is 190 calls per
10 s; ``--window 1`` scales time tenfold (190 per second) for a quicker run, and the rate is
then reported against that scaled limit. Results go to bench/out/hubspot.json. This is a
benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/hubspot_sync.py                      # 100k contacts, 190 per 10 s
    .venv/bin/python bench/hubspot_sync.py --window 1           # the same, time scaled 10x
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT))  # run as a script: import the repository's packages

import duckdb  # noqa: E402

from activation.base import SinkContext  # noqa: E402
from activation.hubspot import HubSpotSink  # noqa: E402
from peak.core.lake import Lake  # noqa: E402
from peak.core.settings import HUBSPOT_BATCH_LIMIT, HubSpotSettings  # noqa: E402
from peak.model.warehouse import DuckDBWarehouse  # noqa: E402
from tests.fake_hubspot import FakeHubSpot  # noqa: E402

TOKEN = "bench-token"
LOCATIONS = 12


def build_mart(db: Path, contacts: int, changed_every: int | None = None) -> None:
    """The mart; with ``changed_every``, every n-th member has one more visit."""
    bump = f"case when i % {changed_every} = 7 then 1 else 0 end" if changed_every else "0"
    con = duckdb.connect(str(db))
    try:
        con.execute(
            f"""
            create or replace table main.mart_hubspot_contacts as
            select
                'U' || lpad(i::varchar, 7, '0')                       as user_id,
                'member' || i || '@example.com'                       as email,
                'Peak Gym ' || (i % {LOCATIONS} + 1)                  as home_location,
                ['basic', 'plus', 'premium'][i % 3 + 1]               as plan,
                date '2024-01-01' + (i % 700)::int                    as join_date,
                case when i % 3 = 0 then 'churned' else 'at_risk' end as churn_status,
                case when i % 3 = 0 then 'cancelled' else 'visits dropped' end as churn_reason,
                date '2026-10-01' + (i % 50)::int                     as churn_date,
                case when i % 11 = 0 then null
                     else date '2026-09-01' + (i % 60)::int end       as last_visit_date,
                (i % 13 + {bump})::bigint                             as visits_30d,
                i % 4 <> 0                                            as marketing_opt_in
            from range({contacts}) t(i)
            """
        )
    finally:
        con.close()


def measure(label: str, hub: FakeHubSpot, config: HubSpotSettings, ctx: SinkContext) -> dict:
    before_requests = len(hub.requests)
    before_429 = hub.rate_limited
    started = time.perf_counter()
    result = HubSpotSink(config).run(ctx)
    seconds = time.perf_counter() - started
    requests = hub.requests[before_requests:]
    contact_calls = sum(1 for r in requests if r.path.endswith("/batch/upsert"))
    changed = result.records - result.unchanged
    limit_per_s = config.rate_limit / config.rate_window_s
    calls_per_s = result.api_calls / seconds if seconds else 0.0
    # The sending phase alone (first call to last, as the fake saw them): what pacing governs.
    times = sorted(r.t for r in requests)
    phase = times[-1] - times[0] if len(times) > 1 else 0.0
    phase_calls_per_s = (len(times) - 1) / phase if phase else 0.0
    return {
        "run": label,
        "status": result.status,
        "records": result.records,
        "sent": result.sent,
        "unchanged": result.unchanged,
        "failed": result.failed,
        "api_calls": result.api_calls,
        "contact_calls": contact_calls,
        "target_contact_calls": math.ceil(changed / HUBSPOT_BATCH_LIMIT),
        "other_calls": result.api_calls - contact_calls,
        "retried": result.retried,
        "seconds": round(seconds, 2),
        "contacts_per_s": round(result.records / seconds),
        "sent_per_s": round(result.sent / seconds),
        "calls_per_s": round(calls_per_s, 1),
        "pct_of_limit": round(100 * calls_per_s / limit_per_s, 1),
        "sending_s": round(phase, 2),
        "sending_calls_per_s": round(phase_calls_per_s, 1),
        # Under one window's worth of calls nothing is paced: a rate would mean nothing.
        "sending_pct_of_limit": (
            round(100 * phase_calls_per_s / limit_per_s, 1)
            if len(times) > config.rate_limit
            else None
        ),
        "busiest_window": hub.max_in_window(config.rate_window_s, requests),
        "limit": config.rate_limit,
        "http_429": hub.rate_limited - before_429,
        "throttle_wait_s": result.details.get("throttle_wait_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share changed in run 2")
    parser.add_argument("--limit", type=int, default=190, help="calls per window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds (10 = HubSpot's)")
    parser.add_argument("--latency", type=float, default=0.0, help="fake's added s per call")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    scale = f" (time scaled {10 / args.window:g}x)" if args.window != 10 else ""
    print(
        f"HubSpot sink: {args.contacts:,} contacts, fake HubSpot enforcing {args.limit} calls "
        f"per {args.window:g} s{scale}, sink configured the same",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="peak-bench-hubspot-") as tmp:
        db = Path(tmp) / "warehouse.duckdb"
        lake = Lake.from_uri(str(Path(tmp) / "lake"))
        hub = FakeHubSpot(
            token=TOKEN,
            rate_limit=args.limit,
            window_s=args.window,
            latency_s=args.latency,
            keep_bodies=False,
        ).start()
        try:
            config = HubSpotSettings(
                access_token=TOKEN,
                base_url=hub.base_url,
                rate_limit=args.limit,
                rate_window_s=args.window,
            )
            every = max(1, round(1 / args.changed)) if args.changed else None
            plan = [
                ("first sync", None),
                (f"{args.changed:.0%} changed", every),
                ("unchanged", every),
            ]
            for i, (label, changed_every) in enumerate(plan):
                build_mart(db, args.contacts, changed_every)
                ctx = SinkContext(lake=lake, warehouse=DuckDBWarehouse(db), run_id=f"bench-{i}")
                row = measure(label, hub, config, ctx)
                rows.append(row)
                sending = (
                    f"{row['sending_s']:.2f} s: {row['sending_calls_per_s']:.1f}/s = "
                    f"{row['sending_pct_of_limit']:.1f}%"
                    if row["sending_pct_of_limit"] is not None
                    else "within one window"
                )
                print(
                    f"  {label:<11} {row['seconds']:>6.2f} s | calls {row['api_calls']:>5} "
                    f"(contact calls {row['contact_calls']}, target {row['target_contact_calls']}"
                    f"; other {row['other_calls']}) | {row['contacts_per_s']:>6,} contacts/s | "
                    f"{row['calls_per_s']:>5.1f} calls/s = {row['pct_of_limit']:5.1f}% of limit "
                    f"(sending phase {sending}) | busiest window "
                    f"{row['busiest_window']}/{row['limit']} | 429s {row['http_429']} | "
                    f"{row['status']}: sent {row['sent']:,}, unchanged {row['unchanged']:,}, "
                    f"failed {row['failed']}",
                    flush=True,
                )
        finally:
            hub.stop()
    note = (
        "% of limit = calls/s / (limit / window), over the whole run (reading the mart, "
        "planning, state included) and over the sending phase alone. A rolling window starts "
        "with its whole allowance, so a phase of a few windows can average a little over 100%; "
        "busiest window = the most calls the fake saw in any rolling window (at most the limit)."
    )
    print(f"  {note}")
    report = {
        "contacts": args.contacts,
        "limit": args.limit,
        "window_s": args.window,
        "latency_s": args.latency,
        "runs": rows,
        "note": note,
    }
    (OUT / "hubspot.json").write_text(json.dumps(report, indent=2))
    print(f"  written to {OUT / 'hubspot.json'}")


if __name__ == "__main__":
    main()
