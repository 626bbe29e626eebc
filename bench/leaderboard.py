"""Benchmark: the leaderboard sink's rebuild against a naive client and against redis-benchmark.

It builds a DuckDB ``mart_leaderboard_weekly`` for one week with ``--members`` members (default
100k), each on the overall board and on one of five gyms' boards (2 entries per member), and
measures against one Redis:

- rebuild:   ``LeaderboardSink.run`` rewriting every board and member hash (the content hash
             is dropped before each repeat), mart read and consistency check included; median
             of ``--repeat``. Also the first publish into an empty prefix and an unchanged re-run;
- naive:     one round trip per member (its two ZADDs, HSET and EXPIRE in one pipeline call) on
             a ``--naive-members`` subset, extrapolated to all members;
- reference: ``redis-benchmark -n 1000000 -P 100 -r 100000`` running ZADD, Redis' own C client
             pipelining 100 commands at a time: the server's ceiling for single-member ZADDs.

It prints members/s (members whose boards and display hash were written, per second of the
whole run) and the ratio of our rate to redis-benchmark's ZADD/s, and writes them to
bench/out/leaderboard.json. Without ``--redis-url`` it starts a private ``redis-server`` on a
free port (no persistence) and stops it at the end. This is a benchmark, not a test.

    .venv/bin/python bench/leaderboard.py
    .venv/bin/python bench/leaderboard.py --members 1000000 --repeat 3
    .venv/bin/python bench/leaderboard.py --redis-url redis://127.0.0.1:6379/15
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent))

import redis  # noqa: E402

from activation.base import SinkContext  # noqa: E402
from activation.leaderboard.boards import MART, MEMBER_FIELDS, Keys, encode_score  # noqa: E402
from activation.leaderboard.sink import LeaderboardSink  # noqa: E402
from peak.core.lake import Lake  # noqa: E402
from peak.core.report import new_run_id  # noqa: E402
from peak.core.settings import LeaderboardSettings, RedisSettings, Settings  # noqa: E402
from peak.model.warehouse import DuckDBWarehouse, serving_path  # noqa: E402
from tests.redis_server import delete_prefix, private_server  # noqa: E402
from tests.test_leaderboard import create_mart  # noqa: E402

PREFIX = "peak:bench:leaderboard"
NAIVE_PREFIX = "peak:bench:naive"
ZSET = "peak:bench:zset"
GYMS = ("Peak Camden", "Peak Shoreditch", "Peak St. Pancras", "Peak Brixton", "Peak Hackney")

MEMBERS_SQL = """
with members as (
    select 'U' || lpad(i::varchar, 8, '0') as user_id,
           'runner-' || i as handle,
           {gyms}[i % {n_gyms} + 1] as home_location,
           (hash(i) % 20 + 1)::bigint as visits,
           (hash(i * 31) % 12)::bigint as streak_weeks,
           timestamp '2026-11-23 06:00' + to_seconds((hash(i * 7) % 600000)::bigint)
               as first_check_in_at
    from range({members}) as t(i)
)
select date '2026-11-23' as week_start, 'overall' as board, user_id, handle, home_location,
       visits, streak_weeks, first_check_in_at
from members
union all
select date '2026-11-23', home_location, user_id, handle, home_location,
       visits, streak_weeks, first_check_in_at
from members
"""


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rebuild(sink: LeaderboardSink, lake: Lake, client: redis.Redis, force: bool) -> float:
    """One run of the sink; ``force`` drops the content hashes so every board is rewritten."""
    if force:
        client.delete(sink.keys.meta)
    ctx = SinkContext(lake, DuckDBWarehouse(serving_path(lake)), new_run_id())
    start = time.perf_counter()
    result = sink.run(ctx)
    seconds = time.perf_counter() - start
    if result.status != "ok" or (force and result.sent != result.records):
        raise SystemExit(f"the sink did not rebuild: {result.status} {result.error}")
    return seconds


def naive(lake: Lake, client: redis.Redis, members: int, ttl: int) -> float:
    """Seconds to write ``members`` members with one round trip each."""
    rows = (
        DuckDBWarehouse(serving_path(lake))
        .query(
            f"select user_id, board, iso_week, handle, visits, rank from {MART} "
            "where user_id in (select distinct user_id from "
            f"{MART} order by user_id limit ?) order by user_id, board",
            [members],
        )
        .to_pylist()
    )
    keys = Keys(NAIVE_PREFIX)
    by_member: dict[str, list[dict]] = {}
    for row in rows:
        by_member.setdefault(row["user_id"], []).append(row)
    start = time.perf_counter()
    for user_id, entries in by_member.items():
        pipe = client.pipeline(transaction=False)
        for e in entries:
            board = keys.board(e["iso_week"], e["board"])
            pipe.zadd(board, {user_id: encode_score(e["visits"])})
        for field in MEMBER_FIELDS:
            pipe.hset(keys.members(field), user_id, e[field])
        pipe.execute()
    seconds = time.perf_counter() - start
    delete_prefix(client, NAIVE_PREFIX)
    return seconds


def redis_benchmark(url: str, requests: int) -> float:
    """ZADD requests/s of redis-benchmark (100 pipelined, 100k random members)."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise SystemExit("redis-benchmark not found: install redis-tools")
    parts = urlsplit(url)
    cmd = [exe, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    if parts.path.strip("/"):
        cmd += ["--dbnum", parts.path.strip("/")]
    if parts.password:
        cmd += ["-a", parts.password, "--no-auth-warning"]
    cmd += ["-n", str(requests), "-P", "100", "-r", "100000", "-q"]
    cmd += ["zadd", ZSET, "__rand_int__", "member:__rand_int__"]
    output = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rates = re.findall(r"([\d.]+) requests per second", output)
    if not rates:
        raise SystemExit(f"could not read redis-benchmark's output: {output!r}")
    return float(rates[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--naive-members", type=int, default=10_000)
    parser.add_argument("--benchmark-requests", type=int, default=1_000_000)
    parser.add_argument("--redis-url", help="an existing Redis (default: a private one)")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="peak-bench-") as tmp,
        private_server(args.redis_url) as url,
    ):
        lake = Lake.from_uri(tmp)
        gyms = "[" + ", ".join(f"'{g}'" for g in GYMS) + "]"
        sql = MEMBERS_SQL.format(gyms=gyms, n_gyms=len(GYMS), members=args.members)
        build = timed(lambda: create_mart(serving_path(lake), sql))
        entries = 2 * args.members
        print(f"mart: {args.members:,} members, {entries:,} board entries ({build:.1f}s to build)")

        settings = Settings(
            redis=RedisSettings(url=url), leaderboard=LeaderboardSettings(prefix=PREFIX)
        )
        sink = LeaderboardSink(settings)
        client = redis.Redis.from_url(url)
        try:
            delete_prefix(client, f"{PREFIX}:")
            first = rebuild(sink, lake, client, force=True)
            runs = [rebuild(sink, lake, client, force=True) for _ in range(args.repeat)]
            unchanged = statistics.median(rebuild(sink, lake, client, False) for _ in range(3))
            subset = min(args.naive_members, args.members)
            naive_s = naive(lake, client, subset, settings.leaderboard.ttl_seconds)
            zadd_rate = redis_benchmark(url, args.benchmark_requests)
            client.delete(ZSET)
            delete_prefix(client, f"{PREFIX}:")
        finally:
            client.close()

    median = statistics.median(runs)
    members_rate = args.members / median
    naive_rate = subset / naive_s
    figures = {
        "members": args.members,
        "board_entries": entries,
        "repeat": args.repeat,
        "first_publish_s": round(first, 3),
        "rebuild_s": [round(s, 3) for s in runs],
        "rebuild_median_s": round(median, 3),
        "members_per_s": round(members_rate),
        "board_entries_per_s": round(entries / median),
        "unchanged_rerun_s": round(unchanged, 3),
        "naive_members": subset,
        "naive_members_per_s": round(naive_rate),
        "naive_extrapolated_s": round(args.members / naive_rate, 1),
        "redis_benchmark_zadd_per_s": round(zadd_rate),
        "ratio_members_to_zadd": round(members_rate / zadd_rate, 3),
        "ratio_entries_to_zadd": round(entries / median / zadd_rate, 3),
    }
    naive_note = f"measured on {subset:,}, extrapolated"
    lines = [
        ("first publish (empty Redis)", f"{first:.3f} s", ""),
        (f"rebuild, median of {args.repeat}", f"{median:.3f} s", f"{members_rate:,.0f} members/s"),
        ("", "", f"{entries / median:,.0f} board entries/s"),
        ("unchanged re-run, median of 3", f"{unchanged:.3f} s", ""),
        ("naive: 1 round trip per member", f"{args.members / naive_rate:.1f} s", naive_note),
        ("", "", f"{naive_rate:,.0f} members/s"),
        ("redis-benchmark ZADD -P 100", "", f"{zadd_rate:,.0f} ZADD/s"),
        ("members/s : ZADD/s", f"{figures['ratio_members_to_zadd']:.3f}", ""),
        ("board entries/s : ZADD/s", f"{figures['ratio_entries_to_zadd']:.3f}", ""),
        ("rebuild : naive", f"{members_rate / naive_rate:.1f}x", ""),
    ]
    for label, value, rate in lines:
        print(f"{label:32} {value:>10}   {rate}")
    OUT.mkdir(exist_ok=True)
    (OUT / "leaderboard.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {OUT / 'leaderboard.json'}")


if __name__ == "__main__":
    main()
