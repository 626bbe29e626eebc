"""The classes page: every class's sessions, check-ins and utilisation in the period, the
weekday-by-hour utilisation grid, and the instructors with their sessions' utilisation."""

from __future__ import annotations

import pandas as pd

from dashboard.data.filters import Filters
from dashboard.data.query import _in, _iso, _run
from peak.model.warehouse import Warehouse

#: dim_classes.weekday's values, Monday first (the heatmap's rows).
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


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
