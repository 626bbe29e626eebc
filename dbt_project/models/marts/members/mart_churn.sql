-- One row per member: churn status, reason, and the date the status began.
-- Churned: the rule's own date (cancellation, or the day inactivity crossed the threshold);
-- otherwise the as-of date the pipeline first saw the current status (snap_churn_status), among
-- the runs as of that day or before: a re-build of an earlier day after a later one never dates
-- a status after its own as-of date (churn_date <= evaluated_on, whatever the run order).
with churn_statuses as (
    select * from {{ ref('int_churn_status') }}
),

churn_status_history as (
    select * from {{ ref('snap_churn_status') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

-- Each member's newest version taken as of the as-of date or before.
versions as (
    select
        user_id,
        churn_status,
        cast(dbt_valid_from as date) as status_since,
        row_number() over (partition by user_id order by dbt_valid_from desc) as recency
    from churn_status_history
    where cast(dbt_valid_from as date) <= {{ as_of_date() }}
),

current_status as (
    select
        user_id,
        churn_status,
        status_since
    from versions
    where recency = 1
),

dated as (
    select
        churn_statuses.*,
        -- A date on both engines (DuckDB's dateadd gives the rule's date as a timestamp).
        cast(
            coalesce(churn_statuses.rule_date, current_status.status_since, churn_statuses.evaluated_on) as date
        ) as churn_date
    from churn_statuses
    left join current_status
        on
            churn_statuses.user_id = current_status.user_id
            and churn_statuses.churn_status = current_status.churn_status
),

final as (
    select
        dated.user_id,
        users.email,
        users.home_location,
        dated.churn_status,
        dated.churn_reason,
        dated.churn_date,
        dated.membership_status,
        dated.last_visit_date,
        dated.days_inactive,
        -- The contract's types on both engines: DuckDB sums integers to a hugeint.
        cast(dated.recent_visits as bigint) as recent_visits,
        cast(dated.baseline_visits as bigint) as baseline_visits,
        cast(dated.recent_weekly_rate as double) as recent_weekly_rate,
        cast(dated.baseline_weekly_rate as double) as baseline_weekly_rate,
        dated.evaluated_on
    from dated
    inner join users on dated.user_id = users.user_id
)

select * from final
