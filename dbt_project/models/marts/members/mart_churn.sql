-- One row per member: churn status, reason, and the date the status began.
-- Churned: the rule's own date (cancellation, or the day inactivity crossed the threshold);
-- otherwise the as-of date the pipeline first saw the current status (snap_churn_status).
with current_status as (
    select
        user_id,
        cast(dbt_valid_from as date) as status_since
    from {{ ref('snap_churn_status') }}
    where dbt_valid_to is null
)

select
    c.user_id,
    u.email,
    u.home_location,
    c.churn_status,
    c.churn_reason,
    coalesce(c.rule_date, s.status_since, c.evaluated_on) as churn_date,
    c.membership_status,
    c.last_visit_date,
    c.days_inactive,
    c.recent_visits,
    c.baseline_visits,
    c.recent_weekly_rate,
    c.baseline_weekly_rate,
    c.evaluated_on
from {{ ref('int_churn_status') }} as c
inner join {{ ref('dim_users') }} as u on c.user_id = u.user_id
left join current_status as s on c.user_id = s.user_id
