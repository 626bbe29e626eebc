"""The dashboard's queries: plain functions from a warehouse and the filters to pandas frames.

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

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import pyarrow as pa

from peak.model.warehouse import Warehouse

DAY = dt.timedelta(days=1)
#: The default period: the last four weeks of data.
DEFAULT_DAYS = 28
#: dim_classes.weekday's values, Monday first (the heatmap's rows).
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Rows of the at-risk list on the retention page.
AT_RISK_ROWS = 50


@dataclass(frozen=True)
class Filters:
    """The sidebar's filters, shared by every page: a date range (inclusive) and gyms (none
    chosen means every gym)."""

    start: dt.date
    end: dt.date
    locations: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")
        object.__setattr__(self, "locations", tuple(sorted(set(self.locations))))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of equal length just before this one, same gyms."""
        return replace(self, start=self.start - self.days * DAY, end=self.start - DAY)


@dataclass(frozen=True)
class Bounds:
    """What the filters can choose from: the days with check-ins and the gyms."""

    first: dt.date | None
    last: dt.date | None
    locations: tuple[str, ...]

    def default_filters(self) -> Filters:
        last = self.last or dt.date.today()
        first = self.first or last
        return Filters(max(first, last - (DEFAULT_DAYS - 1) * DAY), last)


def _in(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """``column in (?, ?)`` for the chosen values, or a clause that is always true.

    ``column`` is one of this module's constants, never user input."""
    if not values:
        return "1 = 1", []
    return f"{column} in ({', '.join('?' for _ in values)})", list(values)


def _iso(day: dt.date) -> str:
    return day.isoformat()


def _frame(table: pa.Table) -> pd.DataFrame:
    """Dates become pandas datetimes (what Altair and the date columns want)."""
    return table.to_pandas(date_as_object=False)


def _run(warehouse: Warehouse, sql: str, params: Sequence[Any]) -> pd.DataFrame:
    return _frame(warehouse.query(sql, list(params)))


def _first_row(frame: pd.DataFrame) -> dict[str, Any]:
    row = frame.iloc[0].to_dict() if len(frame) else {}
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


# ---------------------------------------------------------------------------------------------
# The filters' choices
# ---------------------------------------------------------------------------------------------

BOUNDS_SQL = """
select
    location,
    cast(min(activity_date) as date) as first_date,
    cast(max(activity_date) as date) as last_date
from mart_location_daily
where visits > 0 and location is not null
group by location
order by location
"""


def bounds(warehouse: Warehouse) -> Bounds:
    frame = warehouse.query(BOUNDS_SQL).to_pylist()
    if not frame:
        return Bounds(None, None, ())
    return Bounds(
        first=min(r["first_date"] for r in frame),
        last=max(r["last_date"] for r in frame),
        locations=tuple(r["location"] for r in frame),
    )


# ---------------------------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------------------------

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
        return churned / members if members else None

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
    current = frame["activity_date"] >= pd.Timestamp(filters.start)
    frame["period"] = current.map({True: "current", False: "previous"})
    origin = current.map({True: pd.Timestamp(filters.start), False: pd.Timestamp(prev.start)})
    frame["day"] = (frame["activity_date"] - origin).dt.days + 1
    return frame


# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Classes and instructors
# ---------------------------------------------------------------------------------------------

# mart_class_utilisation's definition (check-ins over sessions held times capacity) for the
# chosen period and gyms, from the sessions dbt computes (mart_class_sessions).
CLASS_PERIOD_SQL = """
with sessions as (
    select class_id, session_date, attendees
    from mart_class_sessions
    where
        session_date between cast(? as date) and cast(? as date)
        and {att_locations}
),

per_class as (
    select
        class_id,
        count(*) as sessions_held,
        cast(sum(attendees) as bigint) as check_ins,
        max(attendees) as max_attendees
    from sessions
    group by class_id
)

select
    c.class_id,
    c.class_name,
    c.instructor,
    c.location,
    c.weekday,
    c.start_time,
    c.start_hour,
    c.capacity,
    coalesce(p.sessions_held, 0) as sessions_held,
    coalesce(p.check_ins, 0) as check_ins,
    p.max_attendees,
    case
        when p.sessions_held > 0
            then cast(p.check_ins as double) / (p.sessions_held * c.capacity)
    end as utilisation
from dim_classes as c
left join per_class as p on c.class_id = p.class_id
where {class_locations}
order by c.class_id
"""


def class_period(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Every class of the chosen gyms' timetables with its sessions, check-ins and utilisation
    in the period (classes that did not run have ``sessions_held`` 0, ``utilisation`` null)."""
    att, att_locs = _in("location", filters.locations)
    cls, cls_locs = _in("c.location", filters.locations)
    sql = CLASS_PERIOD_SQL.format(att_locations=att, class_locations=cls)
    params = [_iso(filters.start), _iso(filters.end), *att_locs, *cls_locs]
    return _run(warehouse, sql, params)


def utilisation_grid(classes: pd.DataFrame) -> pd.DataFrame:
    """Weekday x start hour: check-ins, sessions, places and utilisation (check-ins over places
    offered in the sessions held), from :func:`class_period`'s frame."""
    held = classes[classes["sessions_held"] > 0].assign(
        places=lambda f: f["sessions_held"] * f["capacity"]
    )
    grid = (
        held.groupby(["weekday", "start_hour"], as_index=False)
        .agg(
            check_ins=("check_ins", "sum"),
            sessions=("sessions_held", "sum"),
            places=("places", "sum"),
            classes=("class_id", "count"),
        )
        .astype({"start_hour": "int64"})
    )
    grid["utilisation"] = grid["check_ins"] / grid["places"]
    grid["weekday"] = pd.Categorical(grid["weekday"], categories=WEEKDAYS, ordered=True)
    return grid.sort_values(["weekday", "start_hour"], ignore_index=True)


INSTRUCTORS_SQL = """
select
    instructor,
    count(*) as check_ins,
    count(distinct user_id) as members,
    count(distinct class_id) as classes
from fct_attendance
where
    is_known_class
    and local_date between cast(? as date) and cast(? as date)
    and {locations}
group by instructor
order by count(*) desc, instructor
"""


def instructors(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Per instructor: check-ins, distinct members and classes taught in the period."""
    where, locs = _in("location", filters.locations)
    return _run(
        warehouse,
        INSTRUCTORS_SQL.format(locations=where),
        [_iso(filters.start), _iso(filters.end), *locs],
    )


def with_utilisation(teachers: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """:func:`instructors`' frame with the utilisation of each one's sessions (check-ins over
    places offered), from :func:`class_period`'s frame."""
    held = classes[classes["sessions_held"] > 0]
    places = (held["sessions_held"] * held["capacity"]).groupby(held["instructor"]).sum()
    check_ins = held.groupby("instructor")["check_ins"].sum()
    return teachers.assign(utilisation=teachers["instructor"].map(check_ins / places))


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------

COHORTS_SQL = """
with chosen as (
    select cohort_month, months_since_join, cohort_size, active_members
    from mart_cohort_retention
    where cohort_month between cast(? as date) and cast(? as date) and {locations}
), sizes as (
    select cohort_month, cast(sum(cohort_size) as bigint) as cohort_size
    from chosen
    where months_since_join = 0
    group by cohort_month
)
select
    c.cohort_month,
    c.months_since_join,
    s.cohort_size,
    cast(sum(c.active_members) as bigint) as active_members,
    cast(sum(c.active_members) as double) / s.cohort_size as retention_rate
from chosen as c
inner join sizes as s on c.cohort_month = s.cohort_month
group by c.cohort_month, c.months_since_join, s.cohort_size
order by c.cohort_month, c.months_since_join
"""

#: Cohorts shown: at least this many join months, ending with the period's last.
COHORT_MONTHS = 12


def cohort_window(filters: Filters) -> tuple[dt.date, dt.date]:
    """The join months shown: those of the period, and at least the ``COHORT_MONTHS`` months to
    its end (a four-week period would show one cohort otherwise)."""
    last = filters.end.replace(day=1)
    index = last.year * 12 + last.month - 1 - (COHORT_MONTHS - 1)
    floor = dt.date(index // 12, index % 12 + 1, 1)
    return min(filters.start.replace(day=1), floor), last


def cohorts(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """mart_cohort_retention for the join months of :func:`cohort_window` and the chosen gyms
    (members by home gym): cohorts of several gyms add up (sizes from the month-0 rows)."""
    first, last = cohort_window(filters)
    where, locs = _in("home_location", filters.locations)
    return _run(warehouse, COHORTS_SQL.format(locations=where), [_iso(first), _iso(last), *locs])


CHURNED_SQL = """
select
    cast(churn_date as date) as churn_day,
    churn_reason,
    count(*) as members
from mart_churn
where
    churn_status = 'churned'
    and cast(churn_date as date) between cast(? as date) and cast(? as date)
    and {locations}
group by cast(churn_date as date), churn_reason
order by cast(churn_date as date), churn_reason
"""


def churned(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Members who churned per day of the period and reason (home gyms chosen)."""
    where, locs = _in("home_location", filters.locations)
    return _run(
        warehouse,
        CHURNED_SQL.format(locations=where),
        [_iso(filters.start), _iso(filters.end), *locs],
    )


STATUS_NOW_SQL = """
select churn_status, coalesce(churn_reason, 'none') as churn_reason, count(*) as members
from mart_churn
where {locations}
group by churn_status, coalesce(churn_reason, 'none')
order by churn_status, churn_reason
"""


def churn_status_now(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Today's churn status of the chosen gyms' members (mart_churn), by reason."""
    where, locs = _in("home_location", filters.locations)
    return _run(warehouse, STATUS_NOW_SQL.format(locations=where), locs)


# Every as-of day the pipeline saw a status change inside the period; at each, the status of
# every member then (the snapshot's version valid that day).
STATUS_HISTORY_SQL = """
with days as (
    select distinct cast(dbt_valid_from as date) as as_of
    from snap_churn_status
    where cast(dbt_valid_from as date) between cast(? as date) and cast(? as date)
)

select d.as_of, s.churn_status, count(*) as members
from days as d
inner join snap_churn_status as s
    on cast(s.dbt_valid_from as date) <= d.as_of
    and (s.dbt_valid_to is null or cast(s.dbt_valid_to as date) > d.as_of)
inner join dim_users as u on s.user_id = u.user_id
where {locations}
group by d.as_of, s.churn_status
order by d.as_of, s.churn_status
"""


def status_history(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """Members at risk, churned and active at each daily run in the period (snap_churn_status)."""
    where, locs = _in("u.home_location", filters.locations)
    return _run(
        warehouse,
        STATUS_HISTORY_SQL.format(locations=where),
        [_iso(filters.start), _iso(filters.end), *locs],
    )


AT_RISK_SQL = f"""
select
    u.handle,
    u.email_masked,
    c.home_location,
    c.churn_reason,
    cast(c.churn_date as date) as at_risk_since,
    c.last_visit_date,
    c.days_inactive,
    c.recent_weekly_rate,
    c.baseline_weekly_rate
from mart_churn as c
inner join dim_users as u on c.user_id = u.user_id
where c.churn_status = 'at_risk' and {{locations}}
order by c.baseline_weekly_rate - c.recent_weekly_rate desc, u.handle
limit {AT_RISK_ROWS}
"""


def at_risk_members(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """The at-risk members with the steepest drop in visits (masked email, never the address)."""
    where, locs = _in("c.home_location", filters.locations)
    return _run(warehouse, AT_RISK_SQL.format(locations=where), locs)


# ---------------------------------------------------------------------------------------------
# The leaderboard from the mart (when Redis is unreachable)
# ---------------------------------------------------------------------------------------------

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
select rank, handle, home_location, visits, streak_weeks
from mart_leaderboard_weekly
where week_start = cast(? as date) and board = ? and rank <= ?
order by rank
"""


def mart_board(warehouse: Warehouse, week_start: dt.date, board: str, top: int) -> pd.DataFrame:
    """The top of one board of the mart, by its own rank."""
    return _run(warehouse, BOARD_SQL, [_iso(week_start), board, int(top)])


WINNERS_SQL = """
select week_start, iso_week, handle, home_location, visits
from mart_leaderboard_weekly
where board = 'overall' and rank = 1
order by week_start desc
"""


def mart_winners(warehouse: Warehouse) -> pd.DataFrame:
    """Each week's first place on the overall board, newest first."""
    return _run(warehouse, WINNERS_SQL, [])
