-- One row per member: visits in the last 7, 30 and 90 days, weekly streaks and recency, all as
-- of the as-of date (check-ins after it are not counted: a re-run of a past day sees that day).
with as_of as (
    select {{ as_of_date() }} as as_of_date
),

visits as (
    select
        f.user_id,
        {%- for days in [7, 30, 90] %}
            sum(
                case when f.local_date > {{ dbt.dateadd('day', -days, 'a.as_of_date') }} then 1 else 0 end
            ) as visits_{{ days }}d,
        {%- endfor %}
        min(f.local_date) as first_visit_date,
        max(f.local_date) as last_visit_date,
        count(*) as total_visits
    from {{ ref('fct_attendance') }} as f
    cross join as_of as a
    where f.local_date <= a.as_of_date
    group by f.user_id
)

select
    u.user_id,
    u.home_location,
    u.status,
    u.join_date,
    coalesce(v.visits_7d, 0) as visits_7d,
    coalesce(v.visits_30d, 0) as visits_30d,
    coalesce(v.visits_90d, 0) as visits_90d,
    coalesce(s.current_streak_weeks, 0) as current_streak_weeks,
    coalesce(s.longest_streak_weeks, 0) as longest_streak_weeks,
    v.first_visit_date,
    v.last_visit_date,
    {{ dbt.datediff('v.last_visit_date', 'a.as_of_date', 'day') }}
        as days_since_last_visit,
    coalesce(v.total_visits, 0) as total_visits,
    a.as_of_date
from {{ ref('dim_users') }} as u
cross join as_of as a
left join visits as v on u.user_id = v.user_id
left join {{ ref('int_member_streaks') }} as s on u.user_id = s.user_id
