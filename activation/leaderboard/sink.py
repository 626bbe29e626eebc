"""The Redis leaderboard sink: ``mart_leaderboard_weekly`` as one sorted set per week and board.

What it writes (``P`` is ``PEAK_LEADERBOARD_PREFIX``, default ``peak:leaderboard``; every key
expires ``PEAK_LEADERBOARD_TTL_SECONDS`` (7 days) after the run that last wrote it; the layout
and the score encoding are :mod:`activation.leaderboard.boards`):

- ``P:<iso_week>:<board-slug>``: sorted set, member ``user_id``, score the week's visits
  (``encode_score``; a rank is the count of higher scores plus one, tied members share it);
  ``<board-slug>`` is ``overall`` or ``slug`` of the gym;
- ``P:<iso_week>:boards``: hash, board slug -> board name (``peak-camden`` -> ``Peak Camden``);
- ``P:weeks``: sorted set of the ``iso_week``s published, scored ``YYYYMMDD`` of their Monday;
- ``P:members:handle``: hash, ``user_id`` -> the member's masked display handle (never an
  email, nor a home gym: personal data), for every member on a published board; the
  ``P:members:home_location`` hash earlier versions wrote is deleted;
- ``P:meta``: hash, ``<iso_week>:<board-slug>`` -> content hash of the board last written.

Boards of weeks that fell out of the window (:mod:`activation.leaderboard.mart`) are not listed
any more and are left to expire.

*Atomic, idempotent rebuilds.* A board is filled under ``…:tmp:<run_id>``
(:mod:`activation.leaderboard.publication`) and then renamed over the live key in one ``MULTI``
with the indexes and TTLs, so a reader sees the whole old board or the whole new one. A board
whose content hash matches ``P:meta`` (and whose key still holds that many members) is not
rewritten: it counts as ``unchanged`` and only its TTL is renewed.

*Checked.* After the commit every member the mart ranks ``VERIFY_TOP`` or better (read again
from the warehouse) must hold their visits as score in Redis and the same rank there (the count
of higher scores plus one), and every board its size; otherwise the run fails naming the
board, and that board's hash is forgotten so the next run rewrites it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis

from activation.base import RecordError, SinkContext, SinkError, SinkResult, write_outbox
from activation.leaderboard.boards import (
    MART,
    MEMBER_FIELDS,
    RETIRED_MEMBER_FIELDS,
    Keys,
    connect,
    first_line,
    visits_of,
)
from activation.leaderboard.mart import mart_top, read_publication
from activation.leaderboard.publication import Board, Publication, write_temporary
from peak.core.layout import outbox_prefix
from peak.core.settings import Settings
from peak.model.warehouse import Warehouse

#: Board entries compared with the mart after each run.
VERIFY_TOP = 10


class LeaderboardSink:
    """Publishes ``mart_leaderboard_weekly`` to Redis (see the module's documentation)."""

    name = "leaderboard"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.leaderboard.prefix)

    @property
    def ttl(self) -> int:
        return self.settings.leaderboard.ttl_seconds

    def run(self, ctx: SinkContext) -> SinkResult:
        result = SinkResult(sink=self.name, dry_run=ctx.dry_run)
        started = time.perf_counter()
        client: redis.Redis | None = None
        try:
            if ctx.dry_run:
                self._dry_run(
                    ctx, read_publication(ctx.warehouse, self.settings.leaderboard.weeks), result
                )
            else:
                client = connect(self.settings.redis)  # before anything else: down means untouched
                publication = read_publication(ctx.warehouse, self.settings.leaderboard.weeks)
                self._publish(client, ctx, publication, result)
        except SinkError as exc:
            _fail(result, str(exc))
        except redis.RedisError as exc:
            _fail(result, f"redis error: {first_line(exc)}")
        finally:
            if client is not None:
                client.close()
        result.details["seconds"] = round(time.perf_counter() - started, 3)
        return result

    # -- dry run --------------------------------------------------------------------------------

    def _dry_run(self, ctx: SinkContext, publication: Publication, result: SinkResult) -> None:
        """Write what a run would write to the outbox; no Redis call at all."""
        sink = self.name
        write_outbox(ctx, sink, "boards", self._board_records(publication))
        write_outbox(ctx, sink, "members", self._member_records(publication))
        write_outbox(ctx, sink, "index", self._index_records(publication))
        result.outbox = ctx.lake.uri(outbox_prefix(sink, ctx.run_id))
        result.records = result.sent = publication.entries
        result.details.update(self._describe(publication))

    def _board_records(self, publication: Publication) -> Iterator[dict[str, Any]]:
        for board in publication.boards:
            key = self.keys.live(board)
            ranks, scores = board.ranks.tolist(), board.scores.tolist()
            for member, rank, score in zip(board.members, ranks, scores, strict=True):
                yield {"key": key, "member": member, "rank": rank, "score": score}

    def _member_records(self, publication: Publication) -> Iterator[dict[str, Any]]:
        for user_id, handle in publication.members:
            yield {"user_id": user_id, "handle": handle}

    def _index_records(self, publication: Publication) -> Iterator[dict[str, Any]]:
        yield {"key": self.keys.weeks, "members": _week_scores(publication)}
        for iso_week, names in _board_names(publication).items():
            yield {"key": self.keys.boards(iso_week), "fields": names}

    def _describe(self, publication: Publication) -> dict[str, Any]:
        return {
            "prefix": self.keys.prefix,
            "current_week": publication.boards[-1].iso_week if publication.boards else None,
            "weeks": sorted(publication.weeks()),
            "boards": len(publication.boards),
            "members": len(publication.members),
        }

    # -- the run --------------------------------------------------------------------------------

    def _publish(
        self, client: redis.Redis, ctx: SinkContext, publication: Publication, result: SinkResult
    ) -> None:
        result.records = publication.entries
        result.details.update(self._describe(publication))
        if not publication.boards:
            result.details["note"] = f"{MART} is empty: Redis left as it is"
            return
        meta, unchanged = self._unchanged(client, publication)
        changed = [b for b in publication.boards if b.field not in unchanged]
        try:
            result.api_calls += write_temporary(
                client, self.keys, changed, publication.members, ctx.run_id, self.ttl
            )
            result.api_calls += self._commit(client, publication, changed, ctx.run_id, set(meta))
        except redis.RedisError:
            result.failed = publication.entries  # the live boards were not replaced
            raise
        result.sent = sum(len(b) for b in changed)
        result.unchanged = publication.entries - result.sent
        result.details["boards_rebuilt"] = len(changed)
        result.details["boards_unchanged"] = len(publication.boards) - len(changed)
        self._verify(client, ctx.warehouse, publication, changed, result)

    def _unchanged(
        self, client: redis.Redis, publication: Publication
    ) -> tuple[dict[str, str], set[str]]:
        """The stored content hashes, and the boards whose live key still holds that content."""
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(self.keys.meta)
        for board in publication.boards:
            pipe.zcard(self.keys.live(board))
        stored, *sizes = pipe.execute()
        meta = {k.decode(): v.decode() for k, v in stored.items()}
        same = {
            board.field
            for board, size in zip(publication.boards, sizes, strict=True)
            if meta.get(board.field) == board.digest and size == len(board)
        }
        return meta, same

    def _commit(
        self,
        client: redis.Redis,
        publication: Publication,
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
        for board in publication.boards:
            pipe.expire(keys.live(board), ttl)
        for field in MEMBER_FIELDS:
            if publication.members:
                pipe.rename(keys.members_temporary(field, run_id), keys.members(field))
                pipe.expire(keys.members(field), ttl)
        pipe.delete(*[keys.members(field) for field in RETIRED_MEMBER_FIELDS])
        pipe.hset(keys.meta, mapping={b.field: b.digest for b in publication.boards})
        stale = stored_fields - {b.field for b in publication.boards}
        if stale:
            pipe.hdel(keys.meta, *sorted(stale))
        pipe.expire(keys.meta, ttl)
        for iso_week, names in _board_names(publication).items():
            pipe.delete(keys.boards(iso_week))
            pipe.hset(keys.boards(iso_week), mapping=dict[Any, Any](names))
            pipe.expire(keys.boards(iso_week), ttl)
        pipe.delete(keys.weeks)
        pipe.zadd(keys.weeks, _week_scores(publication))
        pipe.expire(keys.weeks, ttl)
        commands = len(pipe)
        pipe.execute()
        return commands

    def _verify(
        self,
        client: redis.Redis,
        warehouse: Warehouse,
        publication: Publication,
        changed: list[Board],
        result: SinkResult,
    ) -> None:
        """Every board's top members (their scores and ranks) and size in Redis must match the
        mart's own ranks."""
        expected = mart_top(warehouse, publication, VERIFY_TOP)
        tops = [expected.get((b.week_start, b.name), {}) for b in publication.boards]
        pipe = client.pipeline(transaction=False)
        for board, top in zip(publication.boards, tops, strict=True):
            key = self.keys.live(board)
            pipe.zcard(key)
            if top:
                pipe.zmscore(key, list(top))
            for visits in sorted({v for v, _ in top.values()}):
                pipe.zcount(key, f"({visits}", "+inf")
        replies = iter(pipe.execute())
        rebuilt = {b.field for b in changed}
        problems: list[tuple[Board, RecordError]] = []
        calls = 0
        for board, top in zip(publication.boards, tops, strict=True):
            size = next(replies)
            scores = next(replies) if top else []
            higher = {v: next(replies) for v in sorted({v for v, _ in top.values()})}
            calls += 1 + bool(top) + len(higher)
            reason = _difference(top, scores, higher, size, len(board))
            if reason is None:
                continue
            key = self.keys.live(board)
            problems.append((board, RecordError(key=key, reason=reason)))
            if board.field in rebuilt:  # its entries were counted sent or unchanged: now failed
                result.sent -= len(board)
            else:
                result.unchanged -= len(board)
            result.failed += len(board)
        result.api_calls += calls
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


def _difference(
    top: dict[str, tuple[int, int]],
    scores: list[float | None],
    higher: dict[int, int],
    size: int,
    expected_size: int,
) -> str | None:
    """Why a board in Redis does not match the mart's top members (user_id -> (visits, rank)),
    given their scores in Redis (in ``top``'s order), the count of scores above each of the
    mart's visits, and the sizes; or None."""
    for (user_id, (visits, rank)), score in zip(top.items(), scores, strict=True):
        if score is None:
            return f"{user_id} (rank {rank} in the mart) is missing from Redis"
        if visits_of(score) != visits:
            return f"{user_id} has {visits_of(score)} visits in Redis, {visits} in the mart"
        if higher[visits] + 1 != rank:
            return f"{user_id} ranks {higher[visits] + 1} in Redis, {rank} in the mart"
    if size != expected_size:
        return f"Redis holds {size} members, the mart {expected_size}"
    return None


def _board_names(publication: Publication) -> dict[str, dict[str, str]]:
    """iso_week -> {slug: board name}: the per-week board index."""
    names: dict[str, dict[str, str]] = {}
    for board in publication.boards:
        names.setdefault(board.iso_week, {})[board.slug] = board.name
    return names


def _week_scores(publication: Publication) -> dict[str, int]:
    """iso_week -> YYYYMMDD of its Monday: ``P:weeks`` sorts newest last."""
    return {iso: int(start.strftime("%Y%m%d")) for iso, start in publication.weeks().items()}


def _fail(result: SinkResult, message: str) -> None:
    result.status = "failed"
    result.error = message
