{{ config(materialized='table') }}  -- read by several models and tests: computed once
-- Each member's churn status as of the as-of date, with the reason. The rule and its
-- thresholds (dbt vars, set once in dbt_project.yml) are described in _intermediate__docs.md.
{% set recent_days = var('at_risk_recent_weeks') * 7 %}
{% set baseline_days = var('at_risk_baseline_weeks') * 7 %}

with attendance as (
    select * from {{ ref('fct_attendance') }}
),

-- Every export's record of every member (the processed zone keeps them all).
members as (
    select * from {{ ref('stg_members') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

-- Only check-ins up to the as-of date count: a re-run of a past day must not see later visits.
visits as (
    select
        attendance.user_id,
        max(attendance.local_date) as last_visit_date,
        sum(
            case
                when attendance.local_date > {{ dbt.dateadd('day', -recent_days, 'as_of.as_of_date') }}
                    then 1
                else 0
            end
        ) as recent_visits,
        sum(
            case
                when
                    attendance.local_date
                    > {{ dbt.dateadd('day', -(recent_days + baseline_days), 'as_of.as_of_date') }}
                    and attendance.local_date <= {{ dbt.dateadd('day', -recent_days, 'as_of.as_of_date') }}
                    then 1
                else 0
            end
        ) as baseline_visits
    from attendance
    cross join as_of
    where attendance.local_date <= as_of.as_of_date
    group by attendance.user_id
),

member_updates as (
    select
        user_id,
        status,
        updated_at,
        export_date,
        min(updated_at) over (partition by user_id) as first_updated_at
    from members
),

-- The member's records as of the as-of date: every export's row changed on or before it, in
-- export order. A member whose records all changed after it keeps their first one (their
-- earliest known state). The processed zone keeps every export, so this history does not
-- depend on when the pipeline ran.
member_records as (
    select
        member_updates.user_id,
        member_updates.status,
        member_updates.updated_at,
        row_number() over (
            partition by member_updates.user_id
            order by member_updates.export_date, member_updates.updated_at
        ) as seq
    from member_updates
    cross join as_of
    where
        cast(member_updates.updated_at as date) <= as_of.as_of_date
        or member_updates.updated_at = member_updates.first_updated_at
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
        member_records.user_id,
        max(case when member_records.seq = member_runs.last_seq then member_records.status end)
            as membership_status,
        min(
            case
                when
                    member_records.status = 'cancelled'
                    and member_records.seq > coalesce(member_runs.last_not_cancelled_seq, 0)
                    then member_records.updated_at
            end
        ) as cancelled_at
    from member_records
    inner join member_runs on member_records.user_id = member_runs.user_id
    group by member_records.user_id
),

member_metrics as (
    select
        users.user_id,
        member_status.membership_status,
        member_status.cancelled_at,
        users.join_date,
        visits.last_visit_date,
        as_of.as_of_date,
        coalesce(visits.recent_visits, 0) as recent_visits,
        coalesce(visits.baseline_visits, 0) as baseline_visits,
        {{ ratio('coalesce(visits.recent_visits, 0)', var('at_risk_recent_weeks')) }} as recent_weekly_rate,
        {{ ratio('coalesce(visits.baseline_visits, 0)', var('at_risk_baseline_weeks')) }} as baseline_weekly_rate,
        {{ dbt.datediff('coalesce(visits.last_visit_date, users.join_date)', 'as_of.as_of_date', 'day') }}
            as days_inactive
    from users
    cross join as_of
    left join member_status on users.user_id = member_status.user_id
    left join visits on users.user_id = visits.user_id
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
    from member_metrics
),

statuses as (
    select
        *,
        case
            when churn_reason in ('cancelled', 'inactive') then 'churned'
            when churn_reason = 'visit_rate_drop' then 'at_risk'
            else 'active'
        end as churn_status,
        case
            when churn_reason = 'cancelled' then cast(cancelled_at as date)
            when churn_reason = 'inactive'
                then {{ dbt.dateadd('day', var('churn_inactive_days'), 'coalesce(last_visit_date, join_date)') }}
        end as rule_date
    from classified
),

final as (
    select
        user_id,
        churn_status,
        churn_reason,
        membership_status,
        rule_date,
        last_visit_date,
        days_inactive,
        recent_visits,
        baseline_visits,
        recent_weekly_rate,
        baseline_weekly_rate,
        as_of_date as evaluated_on,
        cast(as_of_date as timestamp) as evaluated_at
    from statuses
)

select * from final
