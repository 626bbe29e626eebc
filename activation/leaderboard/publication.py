"""What a run publishes to Redis, and how it is written there fast.

A :class:`Publication` is the boards of the window of weeks (each board's members in rank order
and their scores, the encoding checked to reproduce the mart's ranks: :func:`board_scores`) and
each member's display data. :func:`write_temporary` fills the boards that changed and both
member hashes under temporary keys (``…:tmp:<run_id>``), ``BATCH`` members per ``ZADD`` or
``HSET``, packed as RESP (:mod:`activation.leaderboard.resp`) and streamed on one pooled
connection with one reply per command; the sink then renames them over the live keys in one
``MULTI``. A temporary key gets its TTL right after the write that creates it, so one left behind
by a run that failed before its commit expires too. Single Redis node (or ElastiCache without
cluster mode) only.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from activation.base import SinkError
from activation.leaderboard.boards import (
    MART,
    MAX_VISITS,
    MEMBER_FIELDS,
    Keys,
    encode_score,
)
from activation.leaderboard.resp import command, pairs

#: Members per ZADD or HSET: a few hundred KB per command.
BATCH = 10_000


@dataclass
class Board:
    """One week's board: its members in rank order and their scores."""

    week_start: dt.date
    iso_week: str
    name: str
    slug: str
    members: list[str]
    ranks: np.ndarray
    scores: np.ndarray

    @property
    def field(self) -> str:
        """Its field in ``P:meta``."""
        return f"{self.iso_week}:{self.slug}"

    @property
    def label(self) -> str:
        return f"{self.iso_week}/{self.name}"

    @functools.cached_property
    def digest(self) -> str:
        """A hash of the board's content (members and scores, in order)."""
        content = hashlib.sha256(self.scores.astype("<i8").tobytes())
        content.update("\n".join(self.members).encode())
        return content.hexdigest()

    def __len__(self) -> int:
        return len(self.members)


@dataclass
class Members:
    """Each member's display data, from the newest week they appear in (parallel lists)."""

    user_ids: list[str]
    handles: list[str]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return zip(self.user_ids, self.handles, strict=True)

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass
class Publication:
    """What a run publishes: the boards of the window of weeks (``current`` the newest week in
    the mart, ``first`` the oldest kept) and the display data of every member on them."""

    current: dt.date | None
    first: dt.date | None
    boards: list[Board]
    members: Members

    @property
    def entries(self) -> int:
        return sum(len(b) for b in self.boards)

    def weeks(self) -> dict[str, dt.date]:
        return {b.iso_week: b.week_start for b in self.boards}


def board_scores(board: Board, visits: np.ndarray) -> np.ndarray:
    """Encode the board's scores, refusing a mart whose ranks Redis would not reproduce: visits
    within ``0..MAX_VISITS``, never more than those of the row before, and each rank one plus
    the count of members with more visits (tied members share it)."""
    ranks = board.ranks
    bad_visits = np.flatnonzero(np.diff(visits, prepend=MAX_VISITS) > 0)
    if bad_visits.size or visits.min() < 0:
        at = bad_visits[0] if bad_visits.size else int(np.argmin(visits))
        before = f"rank {ranks[at - 1]} has {visits[at - 1]}" if at else f"at most {MAX_VISITS}"
        raise SinkError(
            f"{MART} {board.label}: rank {ranks[at]} has {visits[at]} visits, out of order "
            f"({before})"
        )
    # visits are non-increasing: a row's rank is the position of the first row with its visits
    new = np.flatnonzero(np.diff(visits, prepend=MAX_VISITS + 1) != 0)
    expected = (new + 1)[np.searchsorted(new, np.arange(len(visits)), side="right") - 1]
    bad_rank = np.flatnonzero(ranks != expected)
    if bad_rank.size:
        at = bad_rank[0]
        raise SinkError(
            f"{MART} {board.label}: rank {ranks[at]} with {visits[at]} visits, "
            f"{expected[at]} expected (one plus the members with more visits)"
        )
    return encode_score(visits.astype(np.int64))


def _stream(client: redis.Redis, commands: Iterable[bytes]) -> int:
    """Send every command on one connection, then read one reply each; raise the first error."""
    pool = client.connection_pool
    conn = pool.get_connection()
    sent = 0
    first_error: redis.ResponseError | None = None
    try:
        for packed in commands:
            conn.send_packed_command([packed])
            sent += 1
        for _ in range(sent):
            try:
                conn.read_response()
            except redis.ResponseError as exc:  # keep reading: the connection stays in step
                first_error = first_error or exc
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    if first_error is not None:
        raise first_error
    return sent


def _fill_commands(verb: bytes, name: bytes, first: Any, second: Any, ttl: int) -> Iterator[bytes]:
    """Fill the temporary key ``name`` afresh, ``BATCH`` pairs per ``verb`` (ZADD, HSET).

    Its TTL is set right after the command that creates it (later ZADDs and HSETs keep it): a
    run that dies before its commit leaves temporary keys that still expire."""
    yield command(b"DEL", name)
    for start in range(0, len(first), BATCH):
        end = min(start + BATCH, len(first))
        body = pairs(first[start:end], second[start:end])
        yield command(verb, name, body=body, body_args=2 * (end - start))
        if start == 0:
            yield command(b"EXPIRE", name, b"%d" % ttl)


def _board_commands(board: Board, key: str, ttl: int) -> Iterator[bytes]:
    """Fill ``key`` (a temporary key) with the board, ``BATCH`` members per ZADD."""
    yield from _fill_commands(b"ZADD", key.encode(), board.scores, board.members, ttl)


def _member_commands(keys: Keys, members: Members, run_id: str, ttl: int) -> Iterator[bytes]:
    """Fill the temporary member hashes, ``BATCH`` members per ``HSET``."""
    columns = {"handle": members.handles}
    for field in MEMBER_FIELDS:
        name = keys.members_temporary(field, run_id).encode()
        yield from _fill_commands(b"HSET", name, members.user_ids, columns[field], ttl)


def write_temporary(
    client: redis.Redis,
    keys: Keys,
    changed: Sequence[Board],
    members: Members,
    run_id: str,
    ttl: int,
) -> int:
    """Fill the changed boards and the member hashes under their temporary keys, each with
    its TTL; returns the commands sent."""

    def commands() -> Iterator[bytes]:
        for board in changed:
            yield from _board_commands(board, keys.temporary(board, run_id), ttl)
        yield from _member_commands(keys, members, run_id, ttl)

    return _stream(client, commands())
