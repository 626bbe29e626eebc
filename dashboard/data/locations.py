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


def by_grain(current: pd.DataFrame, freq: str | None, filters: Filters) -> pd.DataFrame:
    """The period's rows of :func:`location_daily` summed per gym and day, week (``W-SUN``) or
    month (``M``): ``location, activity_date`` (the bucket's first day), ``visits``,
    ``unique_visitors`` (daily average), ``new_members``, and ``days`` (the period's days in the
    bucket) beside ``days_in_bucket``: a bucket the period cuts holds fewer."""
    frame = current.copy()
    days = pd.Series(pd.date_range(filters.start, filters.end, freq="D"))
    if freq:
        frame["activity_date"] = frame["activity_date"].dt.to_period(freq).dt.start_time
        buckets = days.dt.to_period(freq)
        covered = buckets.dt.start_time.value_counts()
        length = {
            b.start_time: (b.end_time.normalize() - b.start_time).days + 1 for b in buckets.unique()
        }
    else:
        covered = pd.Series(1, index=days)
        length = {d: 1 for d in days}
    out = frame.groupby(["location", "activity_date"], as_index=False).agg(
        visits=("visits", "sum"),
        unique_visitors=("unique_visitors", "mean"),
        new_members=("new_members", "sum"),
    )
    out["days"] = out["activity_date"].map(covered).fillna(0).astype("int64")
    out["days_in_bucket"] = out["activity_date"].map(length).astype("int64")
    return out


PEAK_HOURS_SQL = """
select location, weekday, hour, count(*) as check_ins
from fct_attendance
where
    local_date between cast(? as date) and cast(? as date)
    and location is not null
    and {locations}
group by location, weekday, hour
"""


def peak_hours(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Check-ins per gym, local weekday (1 = Monday) and hour of the check-in over the period,
    and ``per_day``: their average on one such weekday (the period's count of that weekday)."""
    where, locs = _in("location", filters.locations)
    frame = _run(
        warehouse,
        PEAK_HOURS_SQL.format(locations=where),
        [_iso(filters.start), _iso(filters.end), *locs],
    )
    days = pd.Series(pd.date_range(filters.start, filters.end, freq="D"))
    weekdays = (days.dt.weekday + 1).value_counts()
    frame["per_day"] = frame["check_ins"] / frame["weekday"].map(weekdays)
    return frame


MIX_SQL = """
select home_location as location, plan, status, count(*) as members
from dim_users
where join_date <= cast(? as date) and {locations}
group by home_location, plan, status
"""


def membership_mix(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Members per home gym, plan and membership status (active, frozen, cancelled), of those
    who had joined by the period's end (today's plan and status)."""
    where, locs = _in("home_location", filters.locations)
    return _run(warehouse, MIX_SQL.format(locations=where), [_iso(filters.end), *locs])
