"""The leaderboard page's reads of mart_leaderboard_weekly (when Redis is unreachable, or for the
weeks older than Redis keeps): the weeks and boards, one board's top, and each week's winners.
Tied members share a rank (``tied`` says so: the page shows "=1")."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboard.data.query import _iso, _run
from peak.model.warehouse import Warehouse

BOARDS_SQL = """
select week_start, iso_week, board, count(*) as members
from mart_leaderboard_weekly
group by week_start, iso_week, board
order by week_start desc, board
"""


def mart_boards(warehouse: Warehouse) -> pd.DataFrame:
    """Every week and board of mart_leaderboard_weekly, newest week first, with its size."""
    return _run(warehouse, BOARDS_SQL, [])


BOARD_SQL = """
select rank, tied, handle, visits, streak_weeks
from (
    select
        rank,
        count(*) over (partition by rank) > 1 as tied,
        handle,
        visits,
        streak_weeks
    from mart_leaderboard_weekly
    where week_start = cast(? as date) and board = ?
) as board
order by rank, handle
limit ?
"""


def mart_board(warehouse: Warehouse, week_start: dt.date, board: str, top: int) -> pd.DataFrame:
    """The first ``top`` members of one board of the mart, by its rank (ties by handle)."""
    return _run(warehouse, BOARD_SQL, [_iso(week_start), board, int(top)])


WINNERS_SQL = """
select week_start, iso_week, handle, visits
from mart_leaderboard_weekly
where board = 'overall' and rank = 1
order by week_start desc, handle
"""


def mart_winners(warehouse: Warehouse) -> pd.DataFrame:
    """Each week's first place(s) on the overall board (tied winners one row each), newest
    first."""
    return _run(warehouse, WINNERS_SQL, [])
