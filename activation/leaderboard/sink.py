"""The Redis leaderboard: ``mart_leaderboard_weekly`` as one sorted set per week and board.

What it writes (``P`` is ``PEAK_LEADERBOARD_PREFIX``, default ``peak:leaderboard``; every key
expires ``PEAK_LEADERBOARD_TTL_SECONDS`` (7 days) after the run that last wrote it):

- ``P:<iso_week>:<board-slug>``: sorted set, member ``user_id``, score
  ``encode_score(visits, rank)``; ``<board-slug>`` is ``overall`` or :func:`slug` of the gym;
- ``P:<iso_week>:boards``: hash, board slug -> board name (``peak-camden`` -> ``Peak Camden``);
- ``P:weeks``: sorted set of the ``iso_week``s published, scored ``YYYYMMDD`` of their Monday;
- ``P:members:handle`` and ``P:members:home_location``: hashes, ``user_id`` -> the member's
  display handle and home gym (never an email), for every member on a published board
  (:func:`member_details` reads them);
- ``P:meta``: hash, ``<iso_week>:<board-slug>`` -> content hash of the board last written.

*Which weeks.* The newest ``week_start`` in the mart is the current week (not today's date: a
backfill or a late mart then still publishes its own latest week); it and the
``PEAK_LEADERBOARD_WEEKS`` weeks before it are written. Boards of weeks that fell out of the
window are not listed any more and are left to expire.

*Order.* ``ZREVRANGE`` returns a board in exactly the mart's ``rank`` order. The score holds the
week's visits in the high bits and ``2**32 - rank`` in the low 32 bits (an integer below 2**53,
so exact in Redis' doubles): higher visits first and, among equal visits, the mart's tie-break
(streak, earliest check-in, user_id) through its rank. The dashboard reads visits back with
:func:`visits_of`. The mart's ranks must therefore be unique and follow visits; the sink checks
both before it writes anything.

*Atomic, idempotent rebuilds.* A board is filled under ``…:tmp:<run_id>`` and then renamed over
the live key in one ``MULTI`` with the indexes and TTLs, so a reader sees the whole old board
or the whole new one. A temporary key gets its TTL right after the write that creates it, so
one left behind by a run that failed before its commit expires too. A board whose content
hash matches ``P:meta`` (and whose key still holds that many members) is not rewritten: it
counts as ``unchanged`` and only its TTL is renewed.

*Checked.* After the commit the top ``VERIFY_TOP`` of every board in Redis (and its size) must
equal the mart's, read again from the warehouse by ``rank``; otherwise the run fails naming
the board, and that board's hash is forgotten so the next run rewrites it.

*Fast.* The bulk writes are packed as RESP here and streamed on one pooled connection, one
reply per command (``ZADD`` and ``HSET`` with ``BATCH`` members each; the two member hashes
are rebuilt under temporary keys and renamed in the same ``MULTI`` as the boards): redis-py's
``Pipeline`` packs and parses every argument in Python, several times slower (README.md,
``bench/leaderboard.py``). Single Redis node (or
ElastiCache without cluster mode) only.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from activation.base import RecordError, SinkContext, SinkError, SinkResult, write_outbox
from activation.config import ActivationSettings, redacted_url
from peak.core.layout import outbox_prefix
from peak.model.warehouse import Warehouse

MART = "mart_leaderboard_weekly"
#: Members per ZADD or HSET: a few hundred KB per command.
BATCH = 10_000
#: Board entries compared with the mart after each run.
VERIFY_TOP = 10
#: The score's low bits hold the rank; visits above them must keep the score below 2**53.
RANK_BITS = 32
MAX_RANK = (1 << RANK_BITS) - 1
MAX_VISITS = (1 << (53 - RANK_BITS)) - 1
#: Slugs the key layout uses for itself within a week.
RESERVED_SLUGS = frozenset({"boards"})

#: The members' display fields, each one hash ``P:members:<field>`` of user_id -> value.
MEMBER_FIELDS = ("handle", "home_location")


# ---------------------------------------------------------------------------------------------
# Keys, slugs and scores: written once, used by the sink, the tests and the dashboard.
# ---------------------------------------------------------------------------------------------


def slug(board: str) -> str:
    """A board's key segment: ASCII lower case, each run of other characters one ``-``.

    ``Peak Camden`` -> ``peak-camden``, ``Zürich Oerlikon`` -> ``zurich-oerlikon``, ``overall``
    stays ``overall``.
    """
    ascii_name = unicodedata.normalize("NFKD", board).encode("ascii", "ignore").decode()
    value = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if not value:
        raise SinkError(f"board {board!r} has no letter or digit to name its key")
    return value


def encode_score(visits: Any, rank: Any) -> Any:
    """The sorted-set score: visits, then the mart's rank, in one integer exact as a double.

    Works on ints and, element-wise, on NumPy int64 arrays."""
    return (visits << RANK_BITS) | (MAX_RANK + 1 - rank)


def visits_of(score: float) -> int:
    """The week's visits of a board entry, from its score."""
    return int(score) >> RANK_BITS


@dataclass(frozen=True)
class Keys:
    """Every key the leaderboard writes, under one prefix."""

    prefix: str

    def board(self, iso_week: str, board_slug: str) -> str:
        return f"{self.prefix}:{iso_week}:{board_slug}"

    def live(self, board: Board) -> str:
        return self.board(board.iso_week, board.slug)

    def temporary(self, board: Board, run_id: str) -> str:
        """Where a run fills a board before renaming it over the live key."""
        return f"{self.live(board)}:tmp:{run_id}"

    def boards(self, iso_week: str) -> str:
        return f"{self.prefix}:{iso_week}:boards"

    def members(self, field: str) -> str:
        """The hash of one display field (``handle``, ``home_location``) for every member."""
        return f"{self.prefix}:members:{field}"

    def members_temporary(self, field: str, run_id: str) -> str:
        return f"{self.members(field)}:tmp:{run_id}"

    @property
    def weeks(self) -> str:
        return f"{self.prefix}:weeks"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:meta"


# ---------------------------------------------------------------------------------------------
# The plan: what the mart says the leaderboard should hold.
# ---------------------------------------------------------------------------------------------


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
    home_locations: list[str]

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return zip(self.user_ids, self.handles, self.home_locations, strict=True)

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass
class Plan:
    current: dt.date | None
    first: dt.date | None
    boards: list[Board]
    members: Members

    @property
    def entries(self) -> int:
        return sum(len(b) for b in self.boards)

    def weeks(self) -> dict[str, dt.date]:
        return {b.iso_week: b.week_start for b in self.boards}


_PLAN_COLUMNS = "week_start, iso_week, board, user_id, handle, home_location, visits, rank"
_IN_WINDOW = "week_start between cast(? as date) and cast(? as date)"


def read_plan(warehouse: Warehouse, weeks_kept: int) -> Plan:
    """Read the window of the mart (in one query: one snapshot) and turn it into boards."""
    newest = warehouse.query(f"select max(week_start) from {MART}").column(0)[0].as_py()
    if newest is None:
        return Plan(None, None, [], Members([], [], []))
    first = newest - dt.timedelta(weeks=weeks_kept)
    table = warehouse.query(
        f"select {_PLAN_COLUMNS} from {MART} where {_IN_WINDOW} order by week_start, board, rank",
        [first.isoformat(), newest.isoformat()],
    )
    boards = _boards(table)
    _check_slugs(boards)
    return Plan(newest, first, boards, _members(table))


def _column(table: pa.Table, name: str) -> np.ndarray:
    """A column without nulls as a NumPy array (``tolist`` of it beats ``to_pylist`` by far)."""
    column = table.column(name)
    if column.null_count:
        raise SinkError(f"{MART}: {column.null_count} row(s) without {name}")
    return column.to_numpy(zero_copy_only=False)


def _boards(table: pa.Table) -> list[Board]:
    """Each run of rows of one week and board becomes a :class:`Board`, its scores checked."""
    n = table.num_rows
    week, name = table.column("week_start"), table.column("board")
    starts = [0, n]
    if n > 1:
        head, tail = slice(0, n - 1), slice(1, None)
        changed = pc.or_(pc.not_equal(week[tail], week[head]), pc.not_equal(name[tail], name[head]))
        starts[1:1] = [i + 1 for i in pc.indices_nonzero(changed).to_pylist()]
    users = _column(table, "user_id").tolist()
    visits, ranks = _column(table, "visits"), _column(table, "rank")
    boards = []
    for start, end in itertools.pairwise(starts):
        board_name = name[start].as_py()
        board = Board(
            week_start=week[start].as_py(),
            iso_week=table.column("iso_week")[start].as_py(),
            name=board_name,
            slug=slug(board_name),
            members=users[start:end],
            ranks=ranks[start:end],
            scores=np.empty(0, dtype=np.int64),
        )
        board.scores = _scores(board, visits[start:end])
        boards.append(board)
    return boards


def _scores(board: Board, visits: np.ndarray) -> np.ndarray:
    """Encode the board's scores, refusing a mart whose ranks the encoding cannot reproduce:
    ranks must be unique and within ``1..MAX_RANK``, visits within ``0..MAX_VISITS`` and never
    more than those of the rank before."""
    ranks = board.ranks
    bad_rank = np.flatnonzero(np.diff(ranks, prepend=0) <= 0)
    bad_visits = np.flatnonzero(np.diff(visits, prepend=MAX_VISITS) > 0)
    if bad_rank.size or ranks[-1] > MAX_RANK:
        at = bad_rank[0] if bad_rank.size else len(ranks) - 1
        before = ranks[at - 1] if at else 0
        raise SinkError(f"{MART} {board.label}: rank {ranks[at]} after {before} is not unique")
    if bad_visits.size or visits.min() < 0:
        at = bad_visits[0] if bad_visits.size else int(np.argmin(visits))
        before = f"rank {ranks[at - 1]} has {visits[at - 1]}" if at else f"at most {MAX_VISITS}"
        raise SinkError(
            f"{MART} {board.label}: rank {ranks[at]} has {visits[at]} visits, out of order "
            f"({before})"
        )
    return encode_score(visits.astype(np.int64), ranks.astype(np.int64))


def _members(table: pa.Table) -> Members:
    """Each member's handle and home location in the newest week they are in (the rows come
    oldest week first). The display hashes are public: an email address is refused."""
    display = ("handle", "home_location")
    for column in display:
        if pc.any(pc.match_substring(table.column(column), "@")).as_py():
            raise SinkError(f"{MART}: a {column} contains an email address")
    newest = (
        table.select(["user_id", *display])
        .group_by("user_id", use_threads=False)  # keeps the row order, so "last" is newest
        .aggregate([(column, "last") for column in display])
    )
    user_ids, handles, homes = (
        pc.fill_null(newest.column(name), "").to_numpy(zero_copy_only=False).tolist()
        for name in ("user_id", "handle_last", "home_location_last")
    )
    return Members(user_ids, handles, homes)


def _check_slugs(boards: Sequence[Board]) -> None:
    """Two boards of one week must not share a key, nor take a key the layout uses."""
    seen: dict[tuple[str, str], str] = {}
    for board in boards:
        if board.slug in RESERVED_SLUGS:
            raise SinkError(f"board {board.name!r} would take the reserved key {board.slug!r}")
        other = seen.setdefault((board.iso_week, board.slug), board.name)
        if other != board.name:
            raise SinkError(f"boards {other!r} and {board.name!r} share the key {board.slug!r}")


# ---------------------------------------------------------------------------------------------
# RESP: the bulk writes, packed as they are sent.
# ---------------------------------------------------------------------------------------------

_BULK = b"$%d\r\n%s\r\n"


def _bulk(arg: bytes) -> bytes:
    return _BULK % (len(arg), arg)


def _command(*args: bytes, body: bytes = b"", body_args: int = 0) -> bytes:
    """One RESP command: ``args`` then ``body``, ``body_args`` arguments already packed."""
    return b"*%d\r\n" % (len(args) + body_args) + b"".join(map(_bulk, args)) + body


def _pairs(first: Any, second: Any) -> bytes:
    """Pairs of RESP bulk strings (``score member`` of a ZADD, ``field value`` of an HSET),
    packed back to back by Arrow's string kernels: no Python loop per element."""
    packed = []
    for values in (first, second):
        array = values if isinstance(values, pa.Array) else pa.array(values)
        text = pc.cast(array, pa.string())
        size = pc.cast(pc.binary_length(text), pa.string())
        packed.append(pc.binary_join_element_wise("$", size, "\r\n", text, "\r\n", ""))
    joined = pc.binary_join_element_wise(packed[0], packed[1], "")
    if len(joined) == 0:
        return b""
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
    start, end = offsets[joined.offset], offsets[joined.offset + len(joined)]
    return memoryview(joined.buffers()[2])[start:end].tobytes()


def _stream(client: redis.Redis, commands: Iterable[bytes]) -> int:
    """Send every command on one connection, then read one reply each; raise the first error."""
    pool = client.connection_pool
    conn = pool.get_connection()
    sent = 0
    first_error: redis.ResponseError | None = None
    try:
        for command in commands:
            conn.send_packed_command([command])
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
    yield _command(b"DEL", name)
    for start in range(0, len(first), BATCH):
        end = min(start + BATCH, len(first))
        body = _pairs(first[start:end], second[start:end])
        yield _command(verb, name, body=body, body_args=2 * (end - start))
        if start == 0:
            yield _command(b"EXPIRE", name, b"%d" % ttl)


def _board_commands(board: Board, key: str, ttl: int) -> Iterator[bytes]:
    """Fill ``key`` (a temporary key) with the board, ``BATCH`` members per ZADD."""
    yield from _fill_commands(b"ZADD", key.encode(), board.scores, board.members, ttl)


def _member_commands(keys: Keys, members: Members, run_id: str, ttl: int) -> Iterator[bytes]:
    """Fill the temporary member hashes, ``BATCH`` members per ``HSET``."""
    columns = {"handle": members.handles, "home_location": members.home_locations}
    for field in MEMBER_FIELDS:
        name = keys.members_temporary(field, run_id).encode()
        yield from _fill_commands(b"HSET", name, members.user_ids, columns[field], ttl)


def member_details(
    client: redis.Redis, keys: Keys, user_ids: Sequence[str]
) -> list[tuple[str | None, str | None]]:
    """Each member's (handle, home_location) from Redis, None where unknown."""
    if not user_ids:
        return []
    pipe = client.pipeline(transaction=False)
    for field in MEMBER_FIELDS:
        pipe.hmget(keys.members(field), list(user_ids))
    handles, homes = pipe.execute()

    def text(value: Any) -> str | None:
        return value.decode() if isinstance(value, bytes) else value

    return [(text(h), text(m)) for h, m in zip(handles, homes, strict=True)]


# ---------------------------------------------------------------------------------------------
# The sink.
# ---------------------------------------------------------------------------------------------


def connect(settings: ActivationSettings) -> redis.Redis:
    """A client that has answered PING, or a one-line :class:`SinkError`."""
    where = redacted_url(settings.redis_url)
    try:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
        )
    except ValueError as exc:
        raise SinkError(f"bad REDIS_URL {where}: {_first_line(exc)}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise SinkError(f"redis unreachable at {where}: {_first_line(exc)}") from None
    return client


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class LeaderboardSink:
    """Publishes ``mart_leaderboard_weekly`` to Redis (see the module's documentation)."""

    name = "leaderboard"

    def __init__(self, settings: ActivationSettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.leaderboard_prefix)

    @property
    def ttl(self) -> int:
        return self.settings.leaderboard_ttl_seconds

    def run(self, ctx: SinkContext) -> SinkResult:
        result = SinkResult(sink=self.name, dry_run=ctx.dry_run)
        started = time.perf_counter()
        client: redis.Redis | None = None
        try:
            if ctx.dry_run:
                self._dry_run(
                    ctx, read_plan(ctx.warehouse, self.settings.leaderboard_weeks), result
                )
            else:
                client = connect(self.settings)  # before anything else: down means untouched
                plan = read_plan(ctx.warehouse, self.settings.leaderboard_weeks)
                self._publish(client, ctx, plan, result)
        except SinkError as exc:
            _fail(result, str(exc))
        except redis.RedisError as exc:
            _fail(result, f"redis error: {_first_line(exc)}")
        finally:
            if client is not None:
                client.close()
        result.details["seconds"] = round(time.perf_counter() - started, 3)
        return result

    # -- dry run --------------------------------------------------------------------------------

    def _dry_run(self, ctx: SinkContext, plan: Plan, result: SinkResult) -> None:
        """Write what a run would write to the outbox; no Redis call at all."""
        sink = self.name
        write_outbox(ctx, sink, "boards", self._board_records(plan))
        write_outbox(ctx, sink, "members", self._member_records(plan))
        write_outbox(ctx, sink, "index", self._index_records(plan))
        result.outbox = ctx.lake.uri(outbox_prefix(sink, ctx.run_id))
        result.records = result.sent = plan.entries
        result.details.update(self._describe(plan))

    def _board_records(self, plan: Plan) -> Iterator[dict[str, Any]]:
        for board in plan.boards:
            key = self.keys.live(board)
            ranks, scores = board.ranks.tolist(), board.scores.tolist()
            for member, rank, score in zip(board.members, ranks, scores, strict=True):
                yield {"key": key, "member": member, "rank": rank, "score": score}

    def _member_records(self, plan: Plan) -> Iterator[dict[str, Any]]:
        for user_id, handle, home in plan.members:
            yield {"user_id": user_id, "handle": handle, "home_location": home}

    def _index_records(self, plan: Plan) -> Iterator[dict[str, Any]]:
        yield {"key": self.keys.weeks, "members": _week_scores(plan)}
        for iso_week, names in _board_names(plan).items():
            yield {"key": self.keys.boards(iso_week), "fields": names}

    def _describe(self, plan: Plan) -> dict[str, Any]:
        return {
            "prefix": self.keys.prefix,
            "current_week": plan.boards[-1].iso_week if plan.boards else None,
            "weeks": sorted(plan.weeks()),
            "boards": len(plan.boards),
            "members": len(plan.members),
        }

    # -- the run --------------------------------------------------------------------------------

    def _publish(
        self, client: redis.Redis, ctx: SinkContext, plan: Plan, result: SinkResult
    ) -> None:
        result.records = plan.entries
        result.details.update(self._describe(plan))
        if not plan.boards:
            result.details["note"] = f"{MART} is empty: Redis left as it is"
            return
        meta, unchanged = self._unchanged(client, plan)
        changed = [b for b in plan.boards if b.field not in unchanged]
        try:
            result.api_calls += _stream(client, self._bulk_commands(plan, changed, ctx.run_id))
            result.api_calls += self._commit(client, plan, changed, ctx.run_id, set(meta))
        except redis.RedisError:
            result.failed = plan.entries  # the live boards were not replaced
            raise
        result.sent = sum(len(b) for b in changed)
        result.unchanged = plan.entries - result.sent
        result.details["boards_rebuilt"] = len(changed)
        result.details["boards_unchanged"] = len(plan.boards) - len(changed)
        self._verify(client, ctx.warehouse, plan, changed, result)

    def _unchanged(self, client: redis.Redis, plan: Plan) -> tuple[dict[str, str], set[str]]:
        """The stored content hashes, and the boards whose live key still holds that content."""
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(self.keys.meta)
        for board in plan.boards:
            pipe.zcard(self.keys.live(board))
        stored, *sizes = pipe.execute()
        meta = {k.decode(): v.decode() for k, v in stored.items()}
        same = {
            board.field
            for board, size in zip(plan.boards, sizes, strict=True)
            if meta.get(board.field) == board.digest and size == len(board)
        }
        return meta, same

    def _bulk_commands(self, plan: Plan, changed: list[Board], run_id: str) -> Iterator[bytes]:
        for board in changed:
            key = self.keys.temporary(board, run_id)
            yield from _board_commands(board, key, self.ttl)
        yield from _member_commands(self.keys, plan.members, run_id, self.ttl)

    def _commit(
        self,
        client: redis.Redis,
        plan: Plan,
        changed: list[Board],
        run_id: str,
        stored_fields: set[str],
    ) -> int:
        """One MULTI: new boards over the live ones, the indexes and every TTL; returns commands."""
        keys, ttl = self.keys, self.ttl
        pipe = client.pipeline(transaction=True)
        for board in changed:
            pipe.rename(
                keys.temporary(board, run_id),
                keys.live(board),
            )
        for board in plan.boards:
            pipe.expire(keys.live(board), ttl)
        for field in MEMBER_FIELDS:
            if plan.members:
                pipe.rename(keys.members_temporary(field, run_id), keys.members(field))
                pipe.expire(keys.members(field), ttl)
        pipe.hset(keys.meta, mapping={b.field: b.digest for b in plan.boards})
        stale = stored_fields - {b.field for b in plan.boards}
        if stale:
            pipe.hdel(keys.meta, *sorted(stale))
        pipe.expire(keys.meta, ttl)
        for iso_week, names in _board_names(plan).items():
            pipe.delete(keys.boards(iso_week))
            pipe.hset(keys.boards(iso_week), mapping=names)
            pipe.expire(keys.boards(iso_week), ttl)
        pipe.delete(keys.weeks)
        pipe.zadd(keys.weeks, _week_scores(plan))
        pipe.expire(keys.weeks, ttl)
        commands = len(pipe)
        pipe.execute()
        return commands

    def _verify(
        self,
        client: redis.Redis,
        warehouse: Warehouse,
        plan: Plan,
        changed: list[Board],
        result: SinkResult,
    ) -> None:
        """Every board's top entries and size in Redis must match the mart's own ranks."""
        expected = mart_top(warehouse, plan, VERIFY_TOP)
        pipe = client.pipeline(transaction=False)
        for board in plan.boards:
            key = self.keys.live(board)
            pipe.zrevrange(key, 0, VERIFY_TOP - 1)
            pipe.zcard(key)
        replies = pipe.execute()
        result.api_calls += len(replies)
        rebuilt = {b.field for b in changed}
        problems: list[tuple[Board, RecordError]] = []
        for board, top, size in zip(plan.boards, replies[::2], replies[1::2], strict=True):
            want = expected.get((board.week_start, board.name), [])
            reason = _difference([m.decode() for m in top], want, size, len(board))
            if reason is None:
                continue
            key = self.keys.live(board)
            problems.append((board, RecordError(key=key, reason=reason)))
            if board.field in rebuilt:  # its entries were counted sent or unchanged: now failed
                result.sent -= len(board)
            else:
                result.unchanged -= len(board)
            result.failed += len(board)
        if not problems:
            return
        client.hdel(self.keys.meta, *[board.field for board, _ in problems])  # rewrite next run
        result.errors.extend(error for _, error in problems)
        board, error = problems[0]
        _fail(
            result,
            f"consistency check failed on {len(problems)} board(s); "
            f"first {board.label} ({error.key}): {error.reason}",
        )


def _difference(top: list[str], want: list[str], size: int, expected_size: int) -> str | None:
    """Why a board in Redis does not match the mart, or None."""
    if top != want:
        at = next(i for i in range(max(len(top), len(want))) if top[i : i + 1] != want[i : i + 1])
        got = top[at] if at < len(top) else "nothing"
        wanted = want[at] if at < len(want) else "nothing"
        return f"Redis top {VERIFY_TOP} differs from the mart at rank {at + 1}: {got}, not {wanted}"
    if size != expected_size:
        return f"Redis holds {size} members, the mart {expected_size}"
    return None


def mart_top(warehouse: Warehouse, plan: Plan, n: int) -> dict[tuple[dt.date, str], list[str]]:
    """The mart's top ``n`` user_ids of each board in the plan's window, by its own rank."""
    table = warehouse.query(
        f"select week_start, board, user_id from {MART} where {_IN_WINDOW} and rank <= ? "
        "order by week_start, board, rank",
        [plan.first.isoformat(), plan.current.isoformat(), n],
    )
    top: dict[tuple[dt.date, str], list[str]] = {}
    for week, board, user_id in zip(*(table.column(i).to_pylist() for i in range(3)), strict=True):
        top.setdefault((week, board), []).append(user_id)
    return top


def _board_names(plan: Plan) -> dict[str, dict[str, str]]:
    """iso_week -> {slug: board name}: the per-week board index."""
    names: dict[str, dict[str, str]] = {}
    for board in plan.boards:
        names.setdefault(board.iso_week, {})[board.slug] = board.name
    return names


def _week_scores(plan: Plan) -> dict[str, int]:
    """iso_week -> YYYYMMDD of its Monday: ``P:weeks`` sorts newest last."""
    return {iso: int(start.strftime("%Y%m%d")) for iso, start in plan.weeks().items()}


def _fail(result: SinkResult, message: str) -> None:
    result.status = "failed"
    result.error = message
