-- The CRM's view: every churned or at-risk member, keyed by email, with what marketing needs.
-- An email shared by several members goes to the most recently updated one (dim_users).
select
    c.user_id,
    u.email,
    u.home_location,
    u.plan,
    u.join_date,
    c.churn_status,
    c.churn_reason,
    c.churn_date,
    a.last_visit_date,
    a.visits_30d,
    u.marketing_opt_in
from {{ ref('mart_churn') }} as c
inner join {{ ref('dim_users') }} as u on c.user_id = u.user_id
inner join {{ ref('mart_member_activity') }} as a on c.user_id = a.user_id
where
    c.churn_status in ('churned', 'at_risk')
    and u.owns_email
