"""The dashboard's queries: plain functions from a warehouse and the filters to pandas frames,
one module per page (:mod:`~dashboard.data.kpis` for the overview, then
:mod:`~dashboard.data.locations`, :mod:`~dashboard.data.classes`,
:mod:`~dashboard.data.retention` and :mod:`~dashboard.data.leaderboard`), over
:mod:`~dashboard.data.filters` (the shared filters) and :mod:`~dashboard.data.query` (how a query
runs). Pages call them by name through ``dashboard.ui.query``, so every one is exported here.

Nothing here imports Streamlit, so every figure a page shows can be computed (and tested) without
it. Every query

* reads the dbt marts through :class:`peak.model.warehouse.Warehouse` (the published, read-only
  DuckDB copy locally; Athena on the ``athena`` target), never a database file directly;
* is plain SQL that DuckDB and Athena (Trino) both accept: ``cast(? as date)``, ``case``,
  ``coalesce``, ``count(distinct …)``, no ``::``, no DuckDB-only functions, no date arithmetic
  in SQL (the periods are computed here and bound);
* binds every value with ``?``: dates as ISO strings, locations one placeholder each. The SQL text
  is fixed; only the number of location placeholders depends on the filter, never their text;
* never selects ``email``: members appear by ``handle`` or ``dim_users.email_masked``.
"""

from __future__ import annotations

from dashboard.data.classes import (
    WEEKDAYS,
    class_period,
    instructors,
    utilisation_grid,
    with_utilisation,
)
from dashboard.data.filters import DAY, DEFAULT_DAYS, Bounds, Filters, bounds
from dashboard.data.kpis import KPIS, daily_visits, overview, visits_per_member
from dashboard.data.leaderboard import mart_board, mart_boards, mart_winners
from dashboard.data.locations import (
    by_grain,
    home_members,
    location_daily,
    location_summary,
    membership_mix,
    peak_hours,
)
from dashboard.data.member import member_profile, member_status_history, member_visits
from dashboard.data.retention import (
    AT_RISK_ROWS,
    COHORT_MONTHS,
    ONBOARDING_DAYS,
    at_risk_members,
    churn_status_now,
    churned,
    cohort_window,
    cohorts,
    member_movement,
    onboarding,
    status_history,
)

__all__ = [
    "AT_RISK_ROWS",
    "COHORT_MONTHS",
    "DAY",
    "DEFAULT_DAYS",
    "KPIS",
    "ONBOARDING_DAYS",
    "WEEKDAYS",
    "Bounds",
    "Filters",
    "at_risk_members",
    "bounds",
    "by_grain",
    "churn_status_now",
    "churned",
    "class_period",
    "cohort_window",
    "cohorts",
    "daily_visits",
    "home_members",
    "instructors",
    "location_daily",
    "location_summary",
    "mart_board",
    "mart_boards",
    "mart_winners",
    "member_movement",
    "member_profile",
    "member_status_history",
    "member_visits",
    "membership_mix",
    "onboarding",
    "overview",
    "peak_hours",
    "status_history",
    "utilisation_grid",
    "visits_per_member",
    "with_utilisation",
]
