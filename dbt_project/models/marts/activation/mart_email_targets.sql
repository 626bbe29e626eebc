-- Members who should get a retention email now: opted in to marketing and at risk or churned.
-- `segment` is what campaigns (activation/campaigns.yml) select on; the other columns are the
-- templates' data. Cadence and suppression are the email sink's job (its send ledger).
with member_churn as (
    select * from {{ ref('mart_churn') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

member_activity as (
    select * from {{ ref('mart_member_activity') }}
),

member_favourites as (
    select * from {{ ref('int_member_favourites') }}
),

final as (
    select
        member_churn.user_id,
        users.email,
        member_churn.churn_status as segment,
        member_churn.churn_reason,
        member_churn.churn_date,
        users.home_location,
        users.plan,
        users.join_date,
        member_activity.last_visit_date,
        member_activity.days_since_last_visit,
        -- bigint on both engines (DuckDB's sum is a hugeint)
        cast(member_activity.visits_30d as bigint) as visits_30d,
        cast(member_activity.visits_90d as bigint) as visits_90d,
        member_activity.longest_streak_weeks,
        member_favourites.favourite_class,
        member_favourites.favourite_instructor
    from member_churn
    inner join users on member_churn.user_id = users.user_id
    inner join member_activity on member_churn.user_id = member_activity.user_id
    left join member_favourites on member_churn.user_id = member_favourites.user_id
    where
        users.marketing_opt_in
        and users.owns_email
        and member_churn.churn_status in ('at_risk', 'churned')
)

select * from final
