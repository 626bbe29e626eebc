"""The Redis leaderboard sink against a real Redis and a DuckDB mart built here (no dbt)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import redis

from activation.base import SinkContext
from activation.leaderboard import (
    Keys,
    LeaderboardSink,
    encode_score,
    member_details,
    ranks,
    slug,
    visits_of,
)
from activation.leaderboard import publication as leaderboard
from peak.core.lake import Lake
from peak.core.report import new_run_id
from peak.core.settings import (
    LEADERBOARD_TTL_SECONDS,
    LeaderboardSettings,
    RedisSettings,
    Settings,
)
from peak.model.warehouse import DuckDBWarehouse, serving_path

CURRENT = dt.date(2026, 11, 23)  # the Monday of 2026-W48
GYMS = ("Peak Camden", "Peak Shoreditch", "Peak St. Pancras")

# ---------------------------------------------------------------------------------------------
# The mart, as dbt builds it: these columns, ranked by the mart's own rule.
# ---------------------------------------------------------------------------------------------

MART_DDL = """
create table main.mart_leaderboard_weekly (
    week_start date, iso_week varchar, board varchar, user_id varchar, handle varchar,
    visits bigint, streak_weeks bigint, first_check_in_at timestamp, rank bigint
)
"""
MART_INSERT = """
insert into main.mart_leaderboard_weekly
select week_start, strftime(week_start, '%G-W%V'), board, user_id, handle,
       visits, streak_weeks, first_check_in_at,
       rank() over (partition by week_start, board order by visits desc)
from ({source})
"""


def create_mart(path: Path, source_sql: str, **tables: pa.Table) -> Path:
    """A DuckDB file holding ``mart_leaderboard_weekly`` made from ``source_sql``.

    ``source_sql`` selects week_start, board, user_id, handle, visits,
    streak_weeks, first_check_in_at (it may read the Arrow ``tables`` by name); iso_week and
    rank are derived as the mart derives them. The file replaces ``path`` atomically.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        for name, table in tables.items():
            con.register(name, table)
        con.execute(MART_DDL)
        con.execute(MART_INSERT.format(source=source_sql))
    finally:
        con.close()
    os.replace(tmp, path)
    return path


def write_mart(path: Path, rows: list[dict[str, Any]]) -> Path:
    return create_mart(path, "select * from source_rows", source_rows=pa.Table.from_pylist(rows))


def row(
    week: dt.date, board: str, user: int, home: str, visits: int, streak: int, first: dt.datetime
):
    return {
        "week_start": week,
        "board": board,
        "user_id": f"U{user:03d}",
        "handle": f"runner-{user:03d}",
        "visits": visits,
        "streak_weeks": streak,
        "first_check_in_at": first,
    }


def weekly_rows(weeks: int, members: int = 40, seed: int = 7, current: dt.date = CURRENT):
    """Check-ins of ``members`` people over ``weeks`` weeks ending at ``current``: few distinct
    visit counts, so many members tie."""
    rng = random.Random(seed)
    rows = []
    for back in range(weeks):
        week = current - dt.timedelta(weeks=back)
        for user in range(members):
            home = GYMS[user % len(GYMS)]
            visits = {home: rng.randint(1, 3)}
            if rng.random() < 0.3:
                visits[rng.choice(GYMS)] = rng.randint(1, 2)
            first = {g: dt.datetime.combine(week, dt.time(6 + rng.randint(0, 1))) for g in visits}
            streak = rng.randint(0, 1)
            for gym, n in visits.items():
                rows.append(row(week, gym, user, home, n, streak, first[gym]))
            overall = sum(visits.values())
            rows.append(row(week, "overall", user, home, overall, streak, min(first.values())))
    return rows


def mart_order(path: Path) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(iso_week, board) -> [(user_id, visits)] in the mart's rank order (ties by user_id,
    descending: Redis' order among equal scores)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "select iso_week, board, user_id, visits from mart_leaderboard_weekly "
            "order by iso_week, board, rank, user_id desc"
        ).fetchall()
    finally:
        con.close()
    order: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for iso_week, board, user_id, visits in rows:
        order.setdefault((iso_week, board), []).append((user_id, visits))
    return order


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings(redis_url: str, redis_prefix: str) -> Settings:
    return Settings(
        redis=RedisSettings(url=redis_url), leaderboard=LeaderboardSettings(prefix=redis_prefix)
    )


@pytest.fixture
def mart(lake: Lake) -> Path:
    """Where the sink reads the mart: the lake's published warehouse."""
    return serving_path(lake)


def context(lake: Lake, dry_run: bool = False) -> SinkContext:
    return SinkContext(lake, DuckDBWarehouse(serving_path(lake)), new_run_id(), dry_run)


def dump(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under the prefix with its content (sorted sets in ZREVRANGE order)."""
    out: dict[str, Any] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}*", count=1000)):
        kind = client.type(key)
        if kind == "zset":
            out[key] = client.zrevrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            out[key] = client.hgetall(key)
        else:
            out[key] = kind
    return out


# ---------------------------------------------------------------------------------------------
# Keys, slugs and scores.
# ---------------------------------------------------------------------------------------------


def test_slugs_are_lower_case_with_one_dash_per_run_of_other_characters():
    assert slug("overall") == "overall"
    assert slug("Peak Camden") == "peak-camden"
    assert slug("Peak St. Pancras") == "peak-st-pancras"
    assert slug("  Zürich / Oerlikon ") == "zurich-oerlikon"
    with pytest.raises(leaderboard.SinkError, match="no letter or digit"):
        slug("???")


def test_a_gym_named_without_ascii_letters_gets_a_key_of_its_own():
    names = ["北京 健身", "上海 健身", "Peak 北京", "Peak 上海", "Zürich"]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert all(s == s.strip("-") and re.fullmatch(r"[a-z0-9-]+", s) for s in slugs)
    assert slugs[2].startswith("peak-") and slugs[4] == "zurich"
    assert slug("北京 健身") == slugs[0]  # stable: the same name, the same key


def test_a_gym_named_without_ascii_letters_stops_no_board(
    lake, mart, settings, redis_client, redis_prefix
):
    first = dt.datetime(2026, 11, 23, 7)
    gyms = ("北京 健身", "上海 健身", "Peak Camden")
    rows = [row(CURRENT, "overall", u, "", 1, 1, first) for u in range(3)]
    rows += [row(CURRENT, gym, u, "", 1, 1, first) for u, gym in enumerate(gyms)]
    write_mart(mart, rows)

    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "ok", result.error
    keys = Keys(redis_prefix)
    names = redis_client.hgetall(keys.boards("2026-W48"))
    assert sorted(names.values()) == sorted(["overall", *gyms])
    for board_slug, name in names.items():
        assert redis_client.zcard(keys.board("2026-W48", board_slug)) == (
            3 if name == "overall" else 1
        )


def test_the_score_is_the_visits_and_equal_scores_share_a_rank():
    entries = [(9, 1), (9, 1), (7, 3), (7, 3), (7, 3), (0, 6)]  # (visits, rank), the mart's
    scores = [float(encode_score(v)) for v, _ in entries]
    assert [visits_of(s) for s in scores] == [v for v, _ in entries]
    assert ranks(scores) == [r for _, r in entries]
    assert ranks([]) == [] and ranks([5.0]) == [1]
    top = encode_score(leaderboard.MAX_VISITS)
    assert float(top) == top


# ---------------------------------------------------------------------------------------------
# Publishing.
# ---------------------------------------------------------------------------------------------


def test_boards_reproduce_the_mart_rank_for_every_week_and_gym(
    lake, mart, settings, redis_client, redis_prefix
):
    write_mart(mart, weekly_rows(weeks=3))
    expected = mart_order(mart)

    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "ok", result.error
    rows = sum(len(v) for v in expected.values())
    assert (result.records, result.sent, result.unchanged, result.failed) == (rows, rows, 0, 0)
    assert result.balanced
    keys = Keys(redis_prefix)
    for (iso_week, board), entries in expected.items():
        stored = redis_client.zrevrange(keys.board(iso_week, slug(board)), 0, -1, withscores=True)
        assert [m for m, _ in stored] == [u for u, _ in entries], (iso_week, board)
        assert [visits_of(s) for _, s in stored] == [v for _, v in entries]
    weeks = redis_client.zrange(keys.weeks, 0, -1, withscores=True)
    assert weeks == [("2026-W46", 20261109.0), ("2026-W47", 20261116.0), ("2026-W48", 20261123.0)]
    assert redis_client.hgetall(keys.boards("2026-W48")) == {
        "overall": "overall",
        "peak-camden": "Peak Camden",
        "peak-shoreditch": "Peak Shoreditch",
        "peak-st-pancras": "Peak St. Pancras",
    }


def test_members_with_as_many_visits_share_a_rank_whatever_their_streak(
    lake, mart, settings, redis_client, redis_prefix
):
    first = dt.datetime(2026, 11, 23, 7, 0)
    later = first + dt.timedelta(hours=1)
    rows = [
        row(CURRENT, "overall", 5, "Peak Camden", 3, 1, first),
        row(CURRENT, "overall", 2, "Peak Camden", 3, 1, first),
        row(CURRENT, "overall", 9, "Peak Camden", 3, 1, later),  # later first check-in
        row(CURRENT, "overall", 7, "Peak Camden", 3, 2, later),  # longer streak
        row(CURRENT, "overall", 1, "Peak Camden", 2, 9, first),  # fewer visits
        row(CURRENT, "overall", 4, "Peak Camden", 4, 0, later),  # most visits
    ]
    write_mart(mart, rows)

    assert LeaderboardSink(settings).run(context(lake)).status == "ok"

    key = Keys(redis_prefix).board("2026-W48", "overall")
    board = redis_client.zrevrange(key, 0, -1, withscores=True)
    got = dict(zip([m for m, _ in board], ranks([s for _, s in board]), strict=True))
    assert got == {"U004": 1, "U002": 2, "U005": 2, "U007": 2, "U009": 2, "U001": 6}
    # a rank is the count of higher scores plus one, whatever Redis' order among ties
    assert [redis_client.zcount(key, f"({s}", "+inf") + 1 for _, s in board] == list(got.values())


def test_member_hashes_hold_the_masked_handle_only_never_the_home_gym(
    lake, mart, settings, redis_client, redis_prefix
):
    keys = Keys(redis_prefix)
    # what an earlier version published: every member's home gym (personal data), in public
    redis_client.hset(keys.members("home_location"), mapping={"U004": "Peak Shoreditch"})
    write_mart(mart, weekly_rows(weeks=2))

    LeaderboardSink(settings).run(context(lake))

    stored = dump(redis_client, redis_prefix)
    assert member_details(redis_client, keys, ["U004", "nobody"]) == ["runner-004", None]
    assert len(stored[keys.members("handle")]) == 40
    assert [k for k in stored if k.startswith(f"{redis_prefix}:members:")] == [
        keys.members("handle")
    ]
    assert not [g for g in GYMS if g in json.dumps(stored[keys.members("handle")])]
    assert not [k for k in stored if ":tmp:" in k]  # the temporary hashes were renamed
    assert "@" not in json.dumps(stored)


def test_an_email_in_the_display_data_is_refused_before_anything_is_written(
    lake, mart, settings, redis_client, redis_prefix
):
    rows = weekly_rows(weeks=1, members=3)
    for r in rows:
        if r["user_id"] == "U001":
            r["handle"] = "alice@example.com"
    write_mart(mart, rows)

    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "failed"
    assert "email address" in result.error and "alice" not in result.error
    assert dump(redis_client, redis_prefix) == {}


def test_every_key_expires_within_seven_days(lake, mart, settings, redis_client, redis_prefix):
    write_mart(mart, weekly_rows(weeks=2))

    LeaderboardSink(settings).run(context(lake))

    keys = list(redis_client.scan_iter(match=f"{redis_prefix}*", count=1000))
    # 2 weeks x 4 boards, 2 board indexes, the weeks index, the meta hash, the handle hash
    assert len(keys) == 13
    assert not [k for k in keys if ":tmp:" in k]
    ttls = {k: redis_client.ttl(k) for k in keys}
    assert all(0 < ttl <= LEADERBOARD_TTL_SECONDS for ttl in ttls.values()), ttls


def test_only_the_newest_week_and_the_n_before_it_are_published(
    lake, mart, redis_url, redis_prefix, redis_client
):
    settings = Settings(
        redis=RedisSettings(url=redis_url),
        leaderboard=LeaderboardSettings(prefix=redis_prefix, weeks=2),
    )
    write_mart(mart, weekly_rows(weeks=5, members=6))  # 2026-W44 .. 2026-W48

    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "ok"
    keys = Keys(redis_prefix)
    assert redis_client.zrange(keys.weeks, 0, -1) == ["2026-W46", "2026-W47", "2026-W48"]
    written = {k.split(":")[-2] for k in redis_client.scan_iter(f"{redis_prefix}:2026-W*")}
    assert written == {"2026-W46", "2026-W47", "2026-W48"}
    assert result.details["weeks"] == ["2026-W46", "2026-W47", "2026-W48"]

    # A week later the window moves: 2026-W46 is no longer listed and is left to expire.
    write_mart(mart, weekly_rows(weeks=5, members=6, current=CURRENT + dt.timedelta(weeks=1)))
    assert LeaderboardSink(settings).run(context(lake)).status == "ok"
    assert redis_client.zrange(keys.weeks, 0, -1) == ["2026-W47", "2026-W48", "2026-W49"]
    assert not [f for f in redis_client.hkeys(keys.meta) if f.startswith("2026-W46")]
    old = keys.board("2026-W46", "overall")
    assert 0 < redis_client.ttl(old) <= LEADERBOARD_TTL_SECONDS


def test_a_second_run_reports_unchanged_and_keeps_the_content(
    lake, mart, settings, redis_client, redis_prefix
):
    rows = weekly_rows(weeks=2)
    write_mart(mart, rows)
    first = LeaderboardSink(settings).run(context(lake))
    before = dump(redis_client, redis_prefix)

    again = LeaderboardSink(settings).run(context(lake))

    assert again.status == "ok"
    assert (again.records, again.sent, again.unchanged) == (first.records, 0, first.records)
    assert again.details["boards_rebuilt"] == 0
    assert dump(redis_client, redis_prefix) == before

    # One gym's board changes: only that board is rewritten.
    for r in rows:
        if r["week_start"] == CURRENT and r["board"] == "Peak Camden" and r["user_id"] == "U003":
            r["visits"] = 50
    write_mart(mart, rows)
    changed = LeaderboardSink(settings).run(context(lake))
    camden = len(redis_client.zrange(Keys(redis_prefix).board("2026-W48", "peak-camden"), 0, -1))
    assert (changed.sent, changed.unchanged) == (camden, first.records - camden)
    assert changed.details["boards_rebuilt"] == 1
    assert redis_client.zrevrange(Keys(redis_prefix).board("2026-W48", "peak-camden"), 0, 0) == [
        "U003"
    ]


def test_a_board_that_differs_from_the_mart_fails_the_run_and_is_rewritten_next_time(
    lake, mart, settings, redis_client, redis_prefix, monkeypatch
):
    write_mart(mart, weekly_rows(weeks=2))
    keys = Keys(redis_prefix)
    camden = keys.board("2026-W47", "peak-camden")
    commit = LeaderboardSink._commit

    def commit_then_corrupt(self, client, *args):
        done = commit(self, client, *args)
        client.zadd(camden, {"U999": encode_score(99)})  # an intruder on top
        return done

    monkeypatch.setattr(LeaderboardSink, "_commit", commit_then_corrupt)
    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "failed"
    assert "2026-W47/Peak Camden" in result.error and camden in result.error
    assert "ranks 2 in Redis, 1 in the mart" in result.error and "\n" not in result.error
    size = redis_client.zcard(camden) - 1
    assert result.failed == size and result.balanced
    assert [e.key for e in result.errors] == [camden]

    monkeypatch.undo()
    repaired = LeaderboardSink(settings).run(context(lake))
    assert repaired.status == "ok"
    assert repaired.sent == size and repaired.details["boards_rebuilt"] == 1
    assert "U999" not in redis_client.zrange(camden, 0, -1)


def test_a_mart_whose_ranks_do_not_follow_visits_is_refused(
    lake, mart, settings, redis_client, redis_prefix
):
    write_mart(mart, weekly_rows(weeks=1, members=5))
    con = duckdb.connect(str(mart))
    (last,) = con.execute(
        "select max(rank) from mart_leaderboard_weekly where board = 'overall'"
    ).fetchone()
    con.execute(
        "update mart_leaderboard_weekly set visits = 99 where board = 'overall' and rank = ?",
        [last],
    )
    con.close()

    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "failed"
    assert f"rank {last} has 99 visits, out of order" in result.error
    assert dump(redis_client, redis_prefix) == {}


def test_a_mart_whose_tied_members_do_not_share_a_rank_is_refused(
    lake, mart, settings, redis_client, redis_prefix
):
    first = dt.datetime(2026, 11, 23, 7, 0)
    write_mart(mart, [row(CURRENT, "overall", u, "", 3, 1, first) for u in range(3)])
    con = duckdb.connect(str(mart))
    con.execute("update mart_leaderboard_weekly set rank = 2 where user_id = 'U001'")
    con.close()

    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "failed"
    assert "rank 2 with 3 visits, 1 expected" in result.error
    assert dump(redis_client, redis_prefix) == {}


def test_an_unreachable_redis_is_one_line_and_leaves_the_boards_alone(
    lake, mart, settings, redis_client, redis_prefix, free_port
):
    write_mart(mart, weekly_rows(weeks=1))
    LeaderboardSink(settings).run(context(lake))
    before = dump(redis_client, redis_prefix)
    write_mart(mart, weekly_rows(weeks=1, seed=99))
    port = free_port

    for url, expected in [
        (
            f"redis://:hunter2@127.0.0.1:{port}/0",
            f"redis unreachable at redis://:***@127.0.0.1:{port}/0: ",
        ),
        ("http://127.0.0.1:6379", "bad REDIS_URL http://127.0.0.1:6379: "),
    ]:
        down = settings.model_copy(update={"redis": RedisSettings(url=url)})
        result = LeaderboardSink(down).run(context(lake))
        assert result.status == "failed"
        assert result.error.startswith(expected), result.error
        assert "\n" not in result.error and "hunter2" not in result.error
        assert (result.records, result.sent) == (0, 0)

    assert dump(redis_client, redis_prefix) == before


def test_a_dry_run_writes_the_outbox_and_never_calls_redis(
    lake, mart, settings, redis_client, redis_prefix, monkeypatch
):
    rows = weekly_rows(weeks=2, members=5)
    write_mart(mart, rows)

    def no_redis(*args, **kwargs):
        raise AssertionError("a dry run called Redis")

    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", no_redis)
    ctx = context(lake, dry_run=True)
    result = LeaderboardSink(settings).run(ctx)
    monkeypatch.undo()

    assert result.status == "ok" and result.dry_run
    assert result.records == result.sent == len(rows) and result.balanced
    outbox = lake.path(f"outbox/leaderboard/{ctx.run_id}")
    assert result.outbox == lake.uri(f"outbox/leaderboard/{ctx.run_id}/")
    boards = [json.loads(line) for line in (outbox / "boards.jsonl").read_text().splitlines()]
    assert len(boards) == len(rows)
    order = mart_order(mart)
    keys = Keys(redis_prefix)
    overall = [
        (b["member"], b["score"]) for b in boards if b["key"] == keys.board("2026-W48", "overall")
    ]
    assert sorted(overall) == sorted(order[("2026-W48", "overall")])
    members = (outbox / "members.jsonl").read_text().splitlines()
    assert len(members) == 5 and "@" not in "".join(members)
    index = [json.loads(line) for line in (outbox / "index.jsonl").read_text().splitlines()]
    assert index[0] == {"key": keys.weeks, "members": {"2026-W47": 20261116, "2026-W48": 20261123}}
    assert dump(redis_client, redis_prefix) == {}


def test_a_reader_never_sees_a_half_built_board(
    lake, mart, settings, redis_url, redis_prefix, monkeypatch
):
    source = """
        select date '2026-11-23' as week_start, 'overall' as board,
               'U' || lpad(i::varchar, 6, '0') as user_id, 'runner-' || i as handle,
               (hash(i + {seed}) % 30)::bigint as visits,
               (hash(i * 7 + {seed}) % 5)::bigint as streak_weeks,
               timestamp '2026-11-23 06:00' + to_seconds((hash(i + {seed}) % 500000)::bigint)
                   as first_check_in_at
        from range({n}) as t(i)
    """
    create_mart(mart, source.format(seed=1, n=120_000))
    assert LeaderboardSink(settings).run(context(lake)).status == "ok"
    key = Keys(redis_prefix).board("2026-W48", "overall")
    reader = redis.Redis.from_url(redis_url, decode_responses=True)

    def snapshot() -> tuple[int, tuple[str, ...]]:
        pipe = reader.pipeline(transaction=True)  # both answers from one instant
        pipe.zcard(key)
        pipe.zrevrange(key, 0, 4)
        size, top = pipe.execute()
        return size, tuple(top)

    old = snapshot()
    create_mart(mart, source.format(seed=2, n=90_000))
    seen: list[tuple[int, tuple[str, ...]]] = []
    polls_while_filling: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append(snapshot())

    stream = leaderboard._stream

    def slow_stream(client, commands):
        start = len(seen)
        sent = stream(client, commands)
        time.sleep(0.2)  # the new board is complete under its temporary key, not yet live
        polls_while_filling.append(len(seen) - start)
        return sent

    monkeypatch.setattr(leaderboard, "_stream", slow_stream)
    thread = threading.Thread(target=poll)
    thread.start()
    try:
        result = LeaderboardSink(settings).run(context(lake))
    finally:
        stop.set()
        thread.join()
    new = snapshot()

    assert result.status == "ok"
    assert old[0] == 120_000 and new[0] == 90_000 and old[1] != new[1]
    assert polls_while_filling[0] > 10
    assert set(seen) <= {old, new}
    assert seen[-1] == new


@pytest.mark.parametrize("fail", ["commit", "stream"])
def test_a_run_that_fails_midway_leaves_no_key_without_a_ttl(
    lake, mart, redis_url, redis_client, redis_prefix, monkeypatch, fail
):
    ttl = 3600  # the configured TTL, below the 7-day default
    settings = Settings(
        redis=RedisSettings(url=redis_url),
        leaderboard=LeaderboardSettings(prefix=redis_prefix, ttl_seconds=ttl),
    )
    write_mart(mart, weekly_rows(weeks=2))
    monkeypatch.setattr(leaderboard, "BATCH", 7)  # several ZADDs and HSETs per key
    stream = leaderboard._stream

    def commit_fails(self, client, *args):
        raise redis.ConnectionError("connection dropped")

    def stream_cut(client, commands):  # the first board's DEL, first ZADD and a bit more
        stream(client, itertools.islice(commands, 4))
        raise redis.ConnectionError("connection dropped")

    if fail == "commit":
        monkeypatch.setattr(LeaderboardSink, "_commit", commit_fails)
    else:
        monkeypatch.setattr(leaderboard, "_stream", stream_cut)
    result = LeaderboardSink(settings).run(context(lake))

    assert result.status == "failed" and "connection dropped" in result.error
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}*", count=1000))
    # Only temporary keys were written: with the commit failing, 2 weeks x 4 boards and the
    # handle hash; with the stream cut, the first board.
    assert len(keys) == (9 if fail == "commit" else 1), keys
    assert all(":tmp:" in k for k in keys), keys
    ttls = {k: redis_client.ttl(k) for k in keys}
    assert all(0 < t <= ttl for t in ttls.values()), ttls
