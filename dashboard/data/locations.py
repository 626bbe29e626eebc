"""The locations page: mart_location_daily over the period and the previous one, members
per home gym and status, and the per-gym summary built from both."""

from __future__ import annotations

import pandas as pd

from dashboard.data.filters import Filters
from dashboard.data.query import _in, _iso, _run
from peak.model.warehouse import Warehouse

LOCATION_DAILY_SQL = """
select location, activity_date, visits, unique_visitors, classes_held, new_members
from mart_location_daily
where
    activity_date between cast(? as date) and cast(? as date)
    and location is not null
    and {locations}
order by location, activity_date
"""


def location_daily(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """mart_location_daily over the period and the previous one, with ``period``."""
    prev = filters.previous()
    where, locs = _in("location", filters.locations)
    frame = _run(
        warehouse,
        LOCATION_DAILY_SQL.format(locations=where),
        [_iso(prev.start), _iso(filters.end), *locs],
    )
    frame["period"] = "previous"
    frame.loc[frame["activity_date"] >= pd.Timestamp(filters.start), "period"] = "current"
    return frame


HOME_MEMBERS_SQL = """
select home_location as location, status, count(*) as members
from dim_users
where join_date <= cast(? as date) and {locations}
group by home_location, status
order by home_location, status
"""


def home_members(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Members per home gym and membership status who had joined by the period's end."""
    where, locs = _in("home_location", filters.locations)
    return _run(warehouse, HOME_MEMBERS_SQL.format(locations=where), [_iso(filters.end), *locs])


def location_summary(daily: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Per gym: the period's visits (and their change), average daily visitors, classes held,
    new members, and members by status. ``daily`` is :func:`location_daily`'s frame."""
    current = daily[daily["period"] == "current"]
    previous = daily[daily["period"] == "previous"]
    out = current.groupby("location").agg(
        visits=("visits", "sum"),
        avg_daily_visitors=("unique_visitors", "mean"),
        classes_held=("classes_held", "sum"),
        new_members=("new_members", "sum"),
    )
    before = previous.groupby("location")["visits"].sum()
    out["visits_previous"] = before.reindex(out.index)
    out["visits_change"] = (out["visits"] - out["visits_previous"]) / out["visits_previous"]
    by_status = members.pivot_table(
        index="location", columns="status", values="members", aggfunc="sum", fill_value=0
    )
    for status in ("active", "frozen", "cancelled"):
        out[f"members_{status}"] = by_status.get(status, pd.Series(dtype="int64")).reindex(
            out.index, fill_value=0
        )
    return out.reset_index()
