"""The member page: one member's profile, visits and churn-status history, by the booking
system's member id (masked handle and e-mail only, never the address)."""

from __future__ import annotations

import pandas as pd

from dashboard.data.query import _run
from peak.model.warehouse import Warehouse

PROFILE_SQL = """
select user_id, handle, email_masked, home_location, plan, status, join_date
from dim_users
where user_id = ?
"""

VISITS_SQL = """
select local_date, checked_in_local, class_name, instructor, location
from fct_attendance
where user_id = ? and location is not null
order by checked_in_local desc
"""

HISTORY_SQL = """
select
    cast(dbt_valid_from as date) as valid_from,
    cast(dbt_valid_to as date) as valid_to,
    churn_status,
    churn_reason
from snap_churn_status
where user_id = ?
order by dbt_valid_from
"""


def member_profile(warehouse: Warehouse, user_id: str) -> pd.DataFrame:
    """The member's row of dim_users (no row for an unknown id)."""
    return _run(warehouse, PROFILE_SQL, [user_id])


def member_visits(warehouse: Warehouse, user_id: str) -> pd.DataFrame:
    """Every check-in of the member, newest first: day, local time, class, instructor, gym."""
    return _run(warehouse, VISITS_SQL, [user_id])


def member_status_history(warehouse: Warehouse, user_id: str) -> pd.DataFrame:
    """The member's churn status over the daily runs: each version's status and reason, from
    the day it held to the day it changed (open for the current one)."""
    return _run(warehouse, HISTORY_SQL, [user_id])
