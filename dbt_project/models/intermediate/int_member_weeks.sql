-- One row per member and ISO week with at least one visit, with the member's weekly streak as
-- of that week: consecutive weeks found as gaps and islands over
-- the week number.
with weekly as (
    select
        user_id,
        week_start,
        count(*) as visits,
        min(checked_in_at) as first_check_in_at
    from {{ ref('fct_attendance') }}
    group by user_id, week_start
),

numbered as (
    select
        *,
        {{ int_div(dbt.datediff("cast('2000-01-03' as date)", 'week_start', 'day'), 7) }} as week_number
    from weekly
),

islands as (
    select
        *,
        week_number - row_number() over (partition by user_id order by week_number) as island
    from numbered
)

select
    user_id,
    week_start,
    week_number,
    visits,
    first_check_in_at,
    island,
    row_number() over (partition by user_id, island order by week_number) as streak_weeks
from islands
