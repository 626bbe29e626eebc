{{ config(materialized='table') }}  -- read by several models and tests: computed once
-- Per member: the current and the longest weekly streak as of the as-of date. Only weeks up to
-- the as-of date's count, and that week only if the member visited on or before the as-of date
-- (a re-run of a past day must not see later visits).
with attendance as (
    select * from {{ ref('fct_attendance') }}
),

member_weeks as (
    select * from {{ ref('int_member_weeks') }}
),

as_of as (
    select
        {{ as_of_date() }} as as_of_date,
        cast({{ dbt.date_trunc('week', as_of_date()) }} as date) as week_start,
        {{ int_div(dbt.datediff("cast('2000-01-03' as date)", dbt.date_trunc('week', as_of_date()), 'day'), 7) }}
            as week_number
),

-- Members with a visit in the as-of date's week on or before the as-of date.
as_of_week_visitors as (
    select distinct attendance.user_id
    from attendance
    cross join as_of
    where
        attendance.week_start = as_of.week_start
        and attendance.local_date <= as_of.as_of_date
),

weeks as (
    -- A week's streak_weeks depends only on that week and the ones before it.
    select
        member_weeks.user_id,
        member_weeks.week_number,
        member_weeks.streak_start_week,
        member_weeks.streak_weeks
    from member_weeks
    cross join as_of
    left join as_of_week_visitors on member_weeks.user_id = as_of_week_visitors.user_id
    where
        member_weeks.week_number < as_of.week_number
        or (member_weeks.week_number = as_of.week_number and as_of_week_visitors.user_id is not null)
),

islands as (
    select
        user_id,
        streak_start_week,
        max(week_number) as last_week_number,
        max(streak_weeks) as weeks
    from weeks
    group by user_id, streak_start_week
),

final as (
    select
        islands.user_id,
        max(islands.weeks) as longest_streak_weeks,
        -- A streak is current while its last week is this week or last week (this week may not
        -- have had its visit yet).
        coalesce(max(case when islands.last_week_number >= as_of.week_number - 1 then islands.weeks end), 0)
            as current_streak_weeks
    from islands
    cross join as_of
    group by islands.user_id
)

select * from final
