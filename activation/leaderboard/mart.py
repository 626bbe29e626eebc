"""Reading ``mart_leaderboard_weekly``: the window of weeks as a
:class:`~activation.leaderboard.publication.Publication`, and each board's top for the check
after a run.

*Which weeks.* The newest ``week_start`` in the mart is the current week (not today's date: a
backfill or a late mart then still publishes its own latest week); it and the
``PEAK_LEADERBOARD_WEEKS`` weeks before it are read, in one query (one snapshot). The mart's
ranks must follow visits (tied members share one), two boards of a week must not share a slug,
and no display field may hold an email address: the sink checks all of it before it writes
anything.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from activation.base import SinkError
from activation.leaderboard.boards import MART, RESERVED_SLUGS, slug
from activation.leaderboard.publication import Board, Members, Publication, board_scores
from peak.model.warehouse import Warehouse

#: The mart's columns the sink publishes (each in its dbt contract: tests/test_manifest.py).
READ_COLUMNS = (
    "week_start",
    "iso_week",
    "board",
    "user_id",
    "handle",
    "visits",
    "rank",
)
_COLUMNS = ", ".join(READ_COLUMNS)
_IN_WINDOW = "week_start between cast(? as date) and cast(? as date)"


def read_publication(warehouse: Warehouse, weeks_kept: int) -> Publication:
    """Read the window of the mart (in one query: one snapshot) and turn it into boards."""
    newest = warehouse.query(f"select max(week_start) from {MART}").column(0)[0].as_py()
    if newest is None:
        return Publication(None, None, [], Members([], []))
    first = newest - dt.timedelta(weeks=weeks_kept)
    table = warehouse.query(
        f"select {_COLUMNS} from {MART} where {_IN_WINDOW} "
        "order by week_start, board, rank, user_id",
        [first.isoformat(), newest.isoformat()],
    )
    boards = _boards(table)
    _check_slugs(boards)
    return Publication(newest, first, boards, _members(table))


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
        board.scores = board_scores(board, visits[start:end])
        boards.append(board)
    return boards


def _members(table: pa.Table) -> Members:
    """Each member's handle in the newest week they are in (the rows come oldest week first).
    The display hash is public: an email address is refused."""
    display = ("handle",)
    for column in display:
        if pc.any(pc.match_substring(table.column(column), "@")).as_py():
            raise SinkError(f"{MART}: a {column} contains an email address")
    newest = (
        table.select(["user_id", *display])
        .group_by("user_id", use_threads=False)  # keeps the row order, so "last" is newest
        .aggregate([(column, "last") for column in display])
    )
    user_ids, handles = (
        pc.fill_null(newest.column(name), "").to_numpy(zero_copy_only=False).tolist()
        for name in ("user_id", "handle_last")
    )
    return Members(user_ids, handles)


def _check_slugs(boards: Sequence[Board]) -> None:
    """Two boards of one week must not share a key, nor take a key the layout uses."""
    seen: dict[tuple[str, str], str] = {}
    for board in boards:
        if board.slug in RESERVED_SLUGS:
            raise SinkError(f"board {board.name!r} would take the reserved key {board.slug!r}")
        other = seen.setdefault((board.iso_week, board.slug), board.name)
        if other != board.name:
            raise SinkError(f"boards {other!r} and {board.name!r} share the key {board.slug!r}")


def mart_top(
    warehouse: Warehouse, publication: Publication, n: int
) -> dict[tuple[dt.date, str], dict[str, tuple[int, int]]]:
    """The members ranked ``n`` or better on each board in the publication's window (every
    tied member included), by the mart's own rank: user_id -> (visits, rank). None when the
    publication holds no week."""
    if publication.first is None or publication.current is None:
        return {}
    table = warehouse.query(
        f"select week_start, board, user_id, visits, rank from {MART} "
        f"where {_IN_WINDOW} and rank <= ?",
        [publication.first.isoformat(), publication.current.isoformat(), n],
    )
    top: dict[tuple[dt.date, str], dict[str, tuple[int, int]]] = {}
    columns = (table.column(i).to_pylist() for i in range(5))
    for week, board, user_id, visits, rank in zip(*columns, strict=True):
        top.setdefault((week, board), {})[user_id] = (visits, rank)
    return top
