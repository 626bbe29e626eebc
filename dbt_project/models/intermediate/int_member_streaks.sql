{{ config(materialized='table') }}  -- read by several models and tests: computed once
-- Per member: the current and the longest weekly streak as of the as-of date. Only weeks up to
-- the as-of date's count, and that week only if the member visited on or before the as-of date
-- (a re-run of a past day must not see later visits).
with as_of as (
    select
        {{ as_of_date() }} as as_of_date,
        cast({{ dbt.date_trunc('week', as_of_date()) }} as date) as week_start,
        {{ int_div(dbt.datediff("cast('2000-01-03' as date)", dbt.date_trunc('week', as_of_date()), 'day'), 7) }}
            as week_number
),

-- Members with a visit in the as-of date's week on or before the as-of date.
as_of_week_visitors as (
    select distinct f.user_id
    from {{ ref('fct_attendance') }} as f
    cross join as_of as a
    where
        f.week_start = a.week_start
        and f.local_date <= a.as_of_date
),

weeks as (
    -- A week's streak_weeks depends only on that week and the ones before it.
    select
        w.user_id,
        w.week_number,
        w.streak_start_week,
        w.streak_weeks
    from {{ ref('int_member_weeks') }} as w
    cross join as_of as a
    left join as_of_week_visitors as v on w.user_id = v.user_id
    where
        w.week_number < a.week_number
        or (w.week_number = a.week_number and v.user_id is not null)
),

islands as (
    select
        user_id,
        streak_start_week,
        max(week_number) as last_week_number,
        max(streak_weeks) as weeks
    from weeks
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
