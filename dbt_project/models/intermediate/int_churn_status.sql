{{ config(materialized='table') }}  -- read by several models and tests: computed once
-- Each member's churn status as of the as-of date, with the reason. The rule and its
-- thresholds (dbt vars, set once in dbt_project.yml) are described in _intermediate__docs.md.
{% set recent_days = var('at_risk_recent_weeks') * 7 %}
{% set baseline_days = var('at_risk_baseline_weeks') * 7 %}

with as_of as (
    select {{ as_of_date() }} as as_of_date
),

-- Only check-ins up to the as-of date count: a re-run of a past day must not see later visits.
visits as (
    select
        f.user_id,
        max(f.local_date) as last_visit_date,
        sum(
            case when f.local_date > {{ dbt.dateadd('day', -recent_days, 'a.as_of_date') }} then 1 else 0 end
        ) as recent_visits,
        sum(
            case
                when
                    f.local_date > {{ dbt.dateadd('day', -(recent_days + baseline_days), 'a.as_of_date') }}
                    and f.local_date <= {{ dbt.dateadd('day', -recent_days, 'a.as_of_date') }}
                    then 1
                else 0
            end
        ) as baseline_visits
    from {{ ref('fct_attendance') }} as f
    cross join as_of as a
    where f.local_date <= a.as_of_date
    group by f.user_id
),

-- The member's records as of the as-of date: every export's row changed on or before it, in
-- export order. A member whose records all changed after it keeps their first one (their
-- earliest known state). The processed zone keeps every export, so this history does not
-- depend on when the pipeline ran.
member_records as (
    select
        m.user_id,
        m.status,
        m.updated_at,
        row_number() over (partition by m.user_id order by m.export_date, m.updated_at) as seq
    from (
        select
            user_id,
            status,
            updated_at,
            export_date,
            min(updated_at) over (partition by user_id) as first_updated_at
        from {{ ref('stg_members') }}
    ) as m
    cross join as_of as a
    where cast(m.updated_at as date) <= a.as_of_date or m.updated_at = m.first_updated_at
),

member_runs as (
    select
        user_id,
        max(seq) as last_seq,
        max(case when status <> 'cancelled' then seq end) as last_not_cancelled_seq
    from member_records
    group by user_id
),

-- The membership status as of the as-of date, and for a cancelled member the day the current
-- uninterrupted run of cancelled records began (the first record after the last non-cancelled
-- one): later edits of a cancelled member (email, opt-in) do not move it.
member_status as (
    select
        r.user_id,
        max(case when r.seq = runs.last_seq then r.status end) as membership_status,
        min(
            case when r.status = 'cancelled' and r.seq > coalesce(runs.last_not_cancelled_seq, 0) then r.updated_at end
        ) as cancelled_at
    from member_records as r
    inner join member_runs as runs on r.user_id = runs.user_id
    group by r.user_id
),

members as (
    select
        u.user_id,
        s.membership_status,
        s.cancelled_at,
        u.join_date,
        v.last_visit_date,
        coalesce(v.recent_visits, 0) as recent_visits,
        coalesce(v.baseline_visits, 0) as baseline_visits,
        coalesce(v.recent_visits, 0) * 1.0 / {{ var('at_risk_recent_weeks') }} as recent_weekly_rate,
        coalesce(v.baseline_visits, 0) * 1.0 / {{ var('at_risk_baseline_weeks') }} as baseline_weekly_rate,
        {{ dbt.datediff('coalesce(v.last_visit_date, u.join_date)', 'a.as_of_date', 'day') }}
            as days_inactive,
        a.as_of_date
    from {{ ref('dim_users') }} as u
    cross join as_of as a
    left join member_status as s on u.user_id = s.user_id
    left join visits as v on u.user_id = v.user_id
),

classified as (
    select
        *,
        case
            when membership_status = 'cancelled' then 'cancelled'
            when membership_status = 'frozen' then 'frozen'
            when days_inactive >= {{ var('churn_inactive_days') }} then 'inactive'
            when
                baseline_weekly_rate > 0
                and recent_weekly_rate < {{ var('at_risk_rate_ratio') }} * baseline_weekly_rate
                then 'visit_rate_drop'
        end as churn_reason
    from members
)

select
    user_id,
    case
        when churn_reason in ('cancelled', 'inactive') then 'churned'
        when churn_reason = 'visit_rate_drop' then 'at_risk'
        else 'active'
    end as churn_status,
    churn_reason,
    membership_status,
    case
        when churn_reason = 'cancelled' then cast(cancelled_at as date)
        when churn_reason = 'inactive'
            then {{ dbt.dateadd('day', var('churn_inactive_days'), 'coalesce(last_visit_date, join_date)') }}
    end as rule_date,
    last_visit_date,
    days_inactive,
    recent_visits,
    baseline_visits,
    recent_weekly_rate,
    baseline_weekly_rate,
    as_of_date as evaluated_on,
    cast(as_of_date as timestamp) as evaluated_at
from classified
