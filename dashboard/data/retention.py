"""The retention page: join-month cohorts, members who churned in the period and why,
churn status today and at each daily run (the snapshot), and the at-risk members with the
steepest drop in visits (masked email, never the address)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboard.data.filters import Filters
from dashboard.data.query import _in, _iso, _run
from peak.model.warehouse import Warehouse

#: Rows of the at-risk list on the retention page.
AT_RISK_ROWS = 50


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
with risky as (
    select
        c.user_id,
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
),

usual as (
    select
        a.user_id,
        a.class_name,
        a.location,
        row_number() over (
            partition by a.user_id order by count(*) desc, a.class_name, a.location
        ) as pick
    from fct_attendance as a
    inner join risky as r on a.user_id = r.user_id
    where a.location is not null and a.class_name is not null
    group by a.user_id, a.class_name, a.location
)

select
    risky.user_id,
    risky.handle,
    risky.email_masked,
    risky.home_location,
    risky.churn_reason,
    risky.at_risk_since,
    risky.last_visit_date,
    risky.days_inactive,
    risky.recent_weekly_rate,
    risky.baseline_weekly_rate,
    usual.class_name as usual_class,
    usual.location as usual_gym
from risky
left join usual on risky.user_id = usual.user_id and usual.pick = 1
order by risky.baseline_weekly_rate - risky.recent_weekly_rate desc, risky.handle
"""


def at_risk_members(warehouse: Warehouse, filters: Filters) -> pd.DataFrame:
    """The at-risk members with the steepest drop in visits: the booking system's member id,
    the masked handle and email (never the address), since when, the last visit, and their
    usual class and gym (the class and gym of most of their check-ins)."""
    where, locs = _in("c.home_location", filters.locations)
    return _run(warehouse, AT_RISK_SQL.format(locations=where), locs)


MOVEMENT_SQL = """
select
    u.join_date,
    case when c.churn_status = 'churned' then cast(c.churn_date as date) end as lost_on
from dim_users as u
left join mart_churn as c on u.user_id = c.user_id
where u.join_date <= cast(? as date) and {locations}
"""


def member_movement(warehouse: Warehouse, filters: Filters, freq: str) -> pd.DataFrame:
    """Member movement per bucket (``W-SUN`` weeks or ``M`` months) of the period, for the
    chosen home gyms: ``start`` (members on the bucket's first day: joined before it and not
    lost before it), ``joined`` and ``lost`` (churned: cancelled, or inactive past the
    threshold, dated by ``mart_churn.churn_date``) within it, ``end``, ``net`` and
    ``attrition`` (lost over start). The first and last bucket are cut to the period."""
    where, locs = _in("u.home_location", filters.locations)
    frame = _run(warehouse, MOVEMENT_SQL.format(locations=where), [_iso(filters.end), *locs])
    joined = pd.to_datetime(frame["join_date"])
    lost = pd.to_datetime(frame["lost_on"])
    days = pd.Series(pd.date_range(filters.start, filters.end, freq="D"))
    rows = []
    for key, members in days.groupby(days.dt.to_period(freq)):
        bucket = pd.Period(str(key), freq=freq)
        first, last = members.iloc[0], members.iloc[-1]
        start = int(((joined < first) & ~(lost < first)).sum())
        came = int(joined.between(first, last).sum())
        went = int(lost.between(first, last).sum())
        rows.append(
            {
                "bucket": bucket.start_time,
                "first_day": first,
                "last_day": last,
                "start": start,
                "joined": came,
                "lost": went,
                "end": int(((joined <= last) & ~(lost <= last)).sum()),
                "net": came - went,
                "attrition": went / start if start else None,
                "partial": len(members)
                < (bucket.end_time.normalize() - bucket.start_time).days + 1,
            }
        )
    return pd.DataFrame(rows)


ONBOARDING_SQL = """
select u.user_id, u.join_date, a.local_date
from dim_users as u
left join fct_attendance as a
    on
        u.user_id = a.user_id
        and a.location is not null
        and a.local_date >= u.join_date
        and a.local_date <= cast(? as date)
where u.join_date between cast(? as date) and cast(? as date) and {locations}
"""

#: A new member's first days, over which onboarding is judged.
ONBOARDING_DAYS = 30


def onboarding(warehouse: Warehouse, filters: Filters, data_end: dt.date) -> pd.DataFrame:
    """The members of the chosen home gyms whose first ``ONBOARDING_DAYS`` days ended in the
    period (and by ``data_end``): ``user_id, join_date``, ``visits_30d``
    (check-ins in those days), ``first_visit`` and ``second_visit`` (the first two days they
    came, NaT for none)."""
    first_join = filters.start - dt.timedelta(days=ONBOARDING_DAYS - 1)
    last_join = min(filters.end, data_end) - dt.timedelta(days=ONBOARDING_DAYS - 1)
    if last_join < first_join:
        return pd.DataFrame(
            columns=["user_id", "join_date", "visits_30d", "first_visit", "second_visit"]
        )
    where, locs = _in("u.home_location", filters.locations)
    frame = _run(
        warehouse,
        ONBOARDING_SQL.format(locations=where),
        [_iso(data_end), _iso(first_join), _iso(last_join), *locs],
    )
    window = frame["local_date"] < frame["join_date"] + pd.Timedelta(days=ONBOARDING_DAYS)
    visits = (  # the days they came (two classes on one day are one return)
        frame[frame["local_date"].notna()]
        .drop_duplicates(["user_id", "local_date"])
        .sort_values(["user_id", "local_date"])
    )
    nth = visits.groupby("user_id").cumcount()
    first = visits[nth == 0].set_index("user_id")["local_date"]
    second = visits[nth == 1].set_index("user_id")["local_date"]
    out = frame.drop_duplicates("user_id")[["user_id", "join_date"]].set_index("user_id")
    out["visits_30d"] = frame[window].groupby("user_id").size().reindex(out.index, fill_value=0)
    out["first_visit"] = first.reindex(out.index)
    out["second_visit"] = second.reindex(out.index)
    return out.reset_index()
