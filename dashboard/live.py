"""The live leaderboard: what the Redis sink published, read back (no Streamlit here).

Key names, slugs and the score encoding come from :mod:`activation.leaderboard.boards` (``Keys``,
``visits_of``, ``member_details``), the leaderboard's read side that the sink writes by too; the
connection from its ``connect`` (a PING with a short timeout: a dashboard must not hang on a dead
Redis). When Redis cannot be reached :func:`connect` raises :class:`LeaderboardUnavailable` and
the page falls back to the mart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

import pandas as pd
import redis

from activation.base import SinkError
from activation.leaderboard.boards import Keys, member_details, ranks, visits_of
from activation.leaderboard.boards import connect as connect_boards
from peak.core.errors import DashboardError
from peak.core.settings import RedisSettings

#: A sorted set read with its scores (the client returns bytes: no decode_responses).
Scored = list[tuple[bytes, float]]

#: Seconds to wait for Redis to connect or answer.
TIMEOUT_S = 2.0
OVERALL = "overall"


class LeaderboardUnavailable(DashboardError):
    """Redis is unreachable (the message names it, password redacted)."""


def connect(settings: RedisSettings, timeout: float = TIMEOUT_S) -> redis.Redis:
    """A client that answered PING, or :class:`LeaderboardUnavailable`."""
    quick = settings.model_copy(update={"timeout": min(timeout, settings.timeout)})
    try:
        return connect_boards(quick)
    except SinkError as exc:
        raise LeaderboardUnavailable(str(exc)) from None


@dataclass(frozen=True)
class Week:
    iso_week: str
    week_start: dt.date


class LiveLeaderboard:
    """Reads the boards under one prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)

    def weeks(self) -> list[Week]:
        """The published weeks, newest first (``P:weeks`` is scored YYYYMMDD of each Monday)."""
        entries = cast(Scored, self.client.zrevrange(self.keys.weeks, 0, -1, withscores=True))
        return [
            Week(_str(name), dt.datetime.strptime(str(int(score)), "%Y%m%d").date())
            for name, score in entries
        ]

    def boards(self, iso_week: str) -> dict[str, str]:
        """Board slug -> board name for a week, ``overall`` first, then by name."""
        raw = self.client.hgetall(self.keys.boards(iso_week))
        names = {_str(k): _str(v) for k, v in raw.items()}
        return dict(sorted(names.items(), key=lambda kv: (kv[0] != OVERALL, kv[1])))

    def board(self, iso_week: str, board_slug: str, top: int) -> pd.DataFrame:
        """The top of a board: ``rank, tied, handle, visits, user_id`` in rank order (ties by
        handle, as the mart's fallback orders them: every member tied with the last one is read
        before the cut), with the members' masked handles from the ``P:members:handle`` hash.
        ``tied``: another member shares the rank, shown here or not."""
        key = self.keys.board(iso_week, board_slug)
        entries = cast(Scored, self.client.zrevrange(key, 0, top - 1, withscores=True))
        if len(entries) == top:  # the members tied with the last one, beyond the cut too
            last = entries[-1][1]
            tied_last = cast(Scored, self.client.zrevrangebyscore(key, last, last, withscores=True))
            entries = [e for e in entries if e[1] > last] + tied_last
        users = [_str(member) for member, _ in entries]
        scores = [score for _, score in entries]
        details = member_details(self.client, self.keys, users)
        pipe = self.client.pipeline(transaction=False)
        distinct = sorted(set(scores))
        for score in distinct:
            pipe.zcount(key, score, score)
        sharing = dict(zip(distinct, pipe.execute() if distinct else [], strict=True))
        frame = pd.DataFrame(
            {
                "rank": ranks(scores),
                "tied": [sharing[score] > 1 for score in scores],
                "handle": [
                    _text(d) or _unnamed(user_id) for d, user_id in zip(details, users, strict=True)
                ],
                "visits": [visits_of(score) for score in scores],
                "user_id": users,
            }
        )
        return frame.sort_values(["rank", "handle"], kind="stable", ignore_index=True).head(top)

    def size(self, iso_week: str, board_slug: str) -> int:
        return int(self.client.zcard(self.keys.board(iso_week, board_slug)))

    def winners(self, weeks: list[Week], most: int = 50) -> pd.DataFrame:
        """Each week's first place(s) on the overall board, tied winners one row each (at
        most ``most`` a week)."""
        pipe = self.client.pipeline(transaction=False)
        for week in weeks:
            pipe.zrevrange(self.keys.board(week.iso_week, OVERALL), 0, 0, withscores=True)
        tops: list[Scored] = pipe.execute() if weeks else []
        pipe = self.client.pipeline(transaction=False)
        won = [(week, top[0][1]) for week, top in zip(weeks, tops, strict=True) if top]
        for week, score in won:
            key = self.keys.board(week.iso_week, OVERALL)
            pipe.zrevrangebyscore(key, score, score, start=0, num=most)
        firsts: list[list[bytes]] = pipe.execute() if won else []
        rows = []
        for (week, score), users in zip(won, firsts, strict=True):
            ids = [_str(u) for u in users]
            for user_id, handle in zip(
                ids, member_details(self.client, self.keys, ids), strict=True
            ):
                rows.append(
                    {
                        "week_start": pd.Timestamp(week.week_start),
                        "iso_week": week.iso_week,
                        "handle": _text(handle) or _unnamed(user_id),
                        "visits": visits_of(score),
                    }
                )
        columns = ["week_start", "iso_week", "handle", "visits"]
        return pd.DataFrame(rows, columns=columns)


def _str(value: bytes | str) -> str:
    """A Redis reply as text (the client is built without decode_responses)."""
    return value.decode() if isinstance(value, bytes) else value


def _unnamed(user_id: str) -> str:
    """A board entry whose handle Redis lost: a mask, never the raw member id."""
    return "Member ***" + user_id[-4:]


def _text(value: bytes | str | None) -> str | None:
    return None if value is None else _str(value)
