-- Members who should get a retention email now: opted in to marketing and at risk or churned.
-- `segment` is what campaigns (activation/campaigns.yml) select on; the other columns are the
-- templates' data. Cadence and suppression are the email sink's job (its send ledger).
select
    c.user_id,
    u.email,
    c.churn_status as segment,
    c.churn_reason,
    c.churn_date,
    u.home_location,
    u.plan,
    u.join_date,
    a.last_visit_date,
    a.days_since_last_visit,
    a.visits_30d,
    a.visits_90d,
    a.longest_streak_weeks,
    f.favourite_class,
    f.favourite_instructor
from {{ ref('mart_churn') }} as c
inner join {{ ref('dim_users') }} as u on c.user_id = u.user_id
inner join {{ ref('mart_member_activity') }} as a on c.user_id = a.user_id
left join {{ ref('int_member_favourites') }} as f on c.user_id = f.user_id
where
    u.marketing_opt_in
    and u.owns_email
    and c.churn_status in ('at_risk', 'churned')
