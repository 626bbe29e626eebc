"""The overview page: active members, visits, churn rate and new joins against the
previous period, and visits and new members per day of both periods."""

from __future__ import annotations

import pandas as pd

from dashboard.data.filters import Filters
from dashboard.data.query import _first_row, _in, _iso, _run
from peak.model.warehouse import Warehouse

TOTALS_SQL = """
select
    cast(coalesce(sum(case when activity_date >= cast(? as date) then visits end), 0) as bigint)
        as visits_now,
    cast(coalesce(sum(case when activity_date < cast(? as date) then visits end), 0) as bigint)
        as visits_before,
    cast(coalesce(sum(case when activity_date >= cast(? as date) then new_members end), 0)
        as bigint) as joins_now,
    cast(coalesce(sum(case when activity_date < cast(? as date) then new_members end), 0)
        as bigint) as joins_before
from mart_location_daily
where activity_date between cast(? as date) and cast(? as date) and {locations}
"""

ACTIVE_SQL = """
select
    count(distinct case when local_date >= cast(? as date) then user_id end) as active_now,
    count(distinct case when local_date < cast(? as date) then user_id end) as active_before
from fct_attendance
where
    local_date between cast(? as date) and cast(? as date)
    and location is not null
    and {locations}
"""

# Churn rate of a period: members who churned in it (mart_churn's churn_date), over the members
# who could have: joined by its end and not already churned at its start.
CHURN_SQL = """
select
    cast(coalesce(sum(case
        when c.churn_status = 'churned'
            and cast(c.churn_date as date) between cast(? as date) and cast(? as date)
            then 1 else 0 end), 0) as bigint) as churned_now,
    cast(coalesce(sum(case
        when c.churn_status = 'churned'
            and cast(c.churn_date as date) between cast(? as date) and cast(? as date)
            then 1 else 0 end), 0) as bigint) as churned_before,
    cast(coalesce(sum(case
        when u.join_date <= cast(? as date)
            and not (c.churn_status = 'churned' and cast(c.churn_date as date) < cast(? as date))
            then 1 else 0 end), 0) as bigint) as members_now,
    cast(coalesce(sum(case
        when u.join_date <= cast(? as date)
            and not (c.churn_status = 'churned' and cast(c.churn_date as date) < cast(? as date))
            then 1 else 0 end), 0) as bigint) as members_before
from mart_churn as c
inner join dim_users as u on c.user_id = u.user_id
where {locations}
"""

#: The overview's figures, in the order the page shows them.
KPIS = ("active_members", "visits", "churn_rate", "new_joins")


def overview(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """One row per figure (``KPIS`` plus ``churned`` and ``members_who_could_churn``), with the
    period's value (``current``) and the previous period's (``previous``)."""
    prev = filters.previous()
    start, end, first = _iso(filters.start), _iso(filters.end), _iso(prev.start)

    where, locs = _in("location", filters.locations)
    totals = _first_row(
        _run(warehouse, TOTALS_SQL.format(locations=where), [start] * 4 + [first, end] + locs)
    )
    active = _first_row(
        _run(warehouse, ACTIVE_SQL.format(locations=where), [start, start, first, end, *locs])
    )
    where, locs = _in("c.home_location", filters.locations)
    churn_params = [start, end, first, _iso(prev.end), end, start, _iso(prev.end), first]
    churn = _first_row(_run(warehouse, CHURN_SQL.format(locations=where), churn_params + locs))

    def rate(churned: int | None, members: int | None) -> float | None:
        return churned / members if members and churned is not None else None

    rows = {
        "active_members": (active.get("active_now"), active.get("active_before")),
        "visits": (totals.get("visits_now"), totals.get("visits_before")),
        "churn_rate": (
            rate(churn.get("churned_now"), churn.get("members_now")),
            rate(churn.get("churned_before"), churn.get("members_before")),
        ),
        "new_joins": (totals.get("joins_now"), totals.get("joins_before")),
        "churned": (churn.get("churned_now"), churn.get("churned_before")),
        "members_who_could_churn": (churn.get("members_now"), churn.get("members_before")),
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["current", "previous"])
    frame.index.name = "metric"
    return frame


DAILY_SQL = """
select
    activity_date,
    cast(sum(visits) as bigint) as visits,
    cast(sum(new_members) as bigint) as new_members
from mart_location_daily
where activity_date between cast(? as date) and cast(? as date) and {locations}
group by activity_date
"""


def daily_visits(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Visits and new members per day of the period and of the previous one, every day present:
    ``activity_date, visits, new_members, period ('current'|'previous'), day (1…days)``."""
    prev = filters.previous()
    where, locs = _in("location", filters.locations)
    frame = _run(
        warehouse, DAILY_SQL.format(locations=where), [_iso(prev.start), _iso(filters.end), *locs]
    )
    days = pd.date_range(prev.start, filters.end, freq="D", name="activity_date")
    frame = (
        frame.set_index("activity_date")
        .reindex(days, fill_value=0)
        .reset_index()
        .astype({"visits": "int64", "new_members": "int64"})
    )
    between = (frame["activity_date"] > pd.Timestamp(prev.end)) & (
        frame["activity_date"] < pd.Timestamp(filters.start)
    )  # the days between the two periods when the previous one is shifted by whole weeks
    frame = frame[~between].reset_index(drop=True)
    current = frame["activity_date"] >= pd.Timestamp(filters.start)
    frame["period"] = current.map({True: "current", False: "previous"})
    origin = current.map({True: pd.Timestamp(filters.start), False: pd.Timestamp(prev.start)})
    frame["day"] = (frame["activity_date"] - origin).dt.days + 1
    return frame


VISITS_PER_MEMBER_SQL = """
select u.user_id, count(a.user_id) as visits
from dim_users as u
left join fct_attendance as a
    on
        u.user_id = a.user_id
        and a.local_date between cast(? as date) and cast(? as date)
        and a.location is not null
where u.join_date <= cast(? as date) and u.status <> 'cancelled' and {locations}
group by u.user_id
"""


def visits_per_member(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Each member of the chosen home gyms (joined by the period's end, not cancelled) and
    their check-ins in the period, anywhere (0 for none)."""
    where, locs = _in("u.home_location", filters.locations)
    start, end = _iso(filters.start), _iso(filters.end)
    return _run(warehouse, VISITS_PER_MEMBER_SQL.format(locations=where), [start, end, end, *locs])
