-- One row per member: visits in the last 7, 30 and 90 days, weekly streaks and recency.
with as_of as (
    select {{ as_of_date() }} as as_of_date
),

recent as (
    select
        f.user_id,
        {%- for days in [7, 30, 90] %}
            sum(
                case when f.local_date > {{ dbt.dateadd('day', -days, 'a.as_of_date') }} then 1 else 0 end
            ) as visits_{{ days }}d{%- if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ ref('fct_attendance') }} as f
    cross join as_of as a
    where
        f.local_date > {{ dbt.dateadd('day', -90, 'a.as_of_date') }}
        and f.local_date <= a.as_of_date
    group by f.user_id
)

select
    u.user_id,
    u.home_location,
    u.status,
    u.join_date,
    coalesce(r.visits_7d, 0) as visits_7d,
    coalesce(r.visits_30d, 0) as visits_30d,
    coalesce(r.visits_90d, 0) as visits_90d,
    coalesce(s.current_streak_weeks, 0) as current_streak_weeks,
    coalesce(s.longest_streak_weeks, 0) as longest_streak_weeks,
    u.first_visit_date,
    u.last_visit_date,
    {{ dbt.datediff('u.last_visit_date', 'a.as_of_date', 'day') }}
        as days_since_last_visit,
    u.total_visits,
    a.as_of_date
from {{ ref('dim_users') }} as u
cross join as_of as a
left join recent as r on u.user_id = r.user_id
left join {{ ref('int_member_streaks') }} as s on u.user_id = s.user_id
