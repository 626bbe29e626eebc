{{ config(materialized='table') }}  -- read by several models and tests: computed once
-- Per member: the current and the longest weekly streak.
with as_of as (
    select
        {{ int_div(dbt.datediff("cast('2000-01-03' as date)", dbt.date_trunc('week', as_of_date()), 'day'), 7) }}
            as week_number
),

islands as (
    select
        user_id,
        streak_start_week,
        max(week_number) as last_week_number,
        max(streak_weeks) as weeks
    from {{ ref('int_member_weeks') }}
    group by user_id, streak_start_week
)

select
    i.user_id,
    max(i.weeks) as longest_streak_weeks,
    -- A streak is current while its last week is this week or last week (this week may not
    -- have had its visit yet).
    coalesce(max(case when i.last_week_number >= a.week_number - 1 then i.weeks end), 0)
        as current_streak_weeks
from islands as i
cross join as_of as a
group by i.user_id
