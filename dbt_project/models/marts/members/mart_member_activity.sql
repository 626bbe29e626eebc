-- One row per member: visits in the last 7, 30 and 90 days, weekly streaks and recency, all as
-- of the as-of date (check-ins after it are not counted: a re-run of a past day sees that day).
with attendance as (
    select * from {{ ref('fct_attendance') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

member_streaks as (
    select * from {{ ref('int_member_streaks') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

visits as (
    select
        attendance.user_id,
        {%- for days in [7, 30, 90] %}
            sum(
                case when attendance.local_date > {{ dbt.dateadd('day', -days, 'as_of.as_of_date') }} then 1 else 0 end
            ) as visits_{{ days }}d,
        {%- endfor %}
        min(attendance.local_date) as first_visit_date,
        max(attendance.local_date) as last_visit_date,
        count(*) as total_visits
    from attendance
    cross join as_of
    where attendance.local_date <= as_of.as_of_date
    group by attendance.user_id
),

final as (
    select
        users.user_id,
        users.home_location,
        users.status,
        users.join_date,
        coalesce(visits.visits_7d, 0) as visits_7d,
        coalesce(visits.visits_30d, 0) as visits_30d,
        coalesce(visits.visits_90d, 0) as visits_90d,
        coalesce(member_streaks.current_streak_weeks, 0) as current_streak_weeks,
        coalesce(member_streaks.longest_streak_weeks, 0) as longest_streak_weeks,
        visits.first_visit_date,
        visits.last_visit_date,
        {{ dbt.datediff('visits.last_visit_date', 'as_of.as_of_date', 'day') }}
            as days_since_last_visit,
        coalesce(visits.total_visits, 0) as total_visits,
        as_of.as_of_date
    from users
    cross join as_of
    left join visits on users.user_id = visits.user_id
    left join member_streaks on users.user_id = member_streaks.user_id
)

select * from final
