-- The CRM's view: every current member, keyed by email, with their churn status and marketing
-- consent. Which statuses HubSpot gets (its audience) is the HubSpot sink's configuration; a
-- marketing list may hold only contacts with marketing_opt_in. An email shared by several
-- members goes to the most recently updated one (dim_users).
with member_churn as (
    select * from {{ ref('mart_churn') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

member_activity as (
    select * from {{ ref('mart_member_activity') }}
),

final as (
    select
        member_churn.user_id,
        users.email,
        users.home_location,
        users.plan,
        users.join_date,
        member_churn.churn_status,
        member_churn.churn_reason,
        member_churn.churn_date,
        member_activity.last_visit_date,
        cast(member_activity.visits_30d as bigint) as visits_30d,  -- DuckDB's sum is a hugeint
        users.marketing_opt_in
    from member_churn
    inner join users on member_churn.user_id = users.user_id
    inner join member_activity on member_churn.user_id = member_activity.user_id
    where users.owns_email
)

select * from final
