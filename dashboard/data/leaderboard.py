"""The leaderboard page's fallback when Redis is unreachable: the weeks and boards of
mart_leaderboard_weekly, one board's top, and each week's winner."""

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
select rank, handle, visits, streak_weeks
from mart_leaderboard_weekly
where week_start = cast(? as date) and board = ? and rank <= ?
order by rank
"""


def mart_board(warehouse: Warehouse, week_start: dt.date, board: str, top: int) -> pd.DataFrame:
    """The top of one board of the mart, by its own rank."""
    return _run(warehouse, BOARD_SQL, [_iso(week_start), board, int(top)])


WINNERS_SQL = """
select week_start, iso_week, handle, visits
from mart_leaderboard_weekly
where board = 'overall' and rank = 1
order by week_start desc
"""


def mart_winners(warehouse: Warehouse) -> pd.DataFrame:
    """Each week's first place on the overall board, newest first."""
    return _run(warehouse, WINNERS_SQL, [])
