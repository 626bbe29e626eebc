-- Per ISO week and board (overall, and each gym by where the check-ins happened), every member
-- who visited, ranked: visits, then weekly streak, then the
-- earliest first check-in of the week, then user_id so ranks are unique.
with as_of as (
    select cast({{ dbt.date_trunc('week', as_of_date()) }} as date) as current_week
),

visits as (
    select
        f.week_start,
        f.user_id,
        f.location,
        f.checked_in_at
    from {{ ref('fct_attendance') }} as f
    cross join as_of as a
    where
        f.week_start > {{ dbt.dateadd('day', -7 * var('leaderboard_weeks'), 'a.current_week') }}
        and f.week_start <= a.current_week
),

member_weeks as (
    select
        w.user_id,
        w.week_start,
        w.visits,
        w.first_check_in_at,
        w.streak_weeks
    from {{ ref('int_member_weeks') }} as w
    cross join as_of as a
    where
        w.week_start > {{ dbt.dateadd('day', -7 * var('leaderboard_weeks'), 'a.current_week') }}
        and w.week_start <= a.current_week
),

boards as (
    -- overall: the weekly totals int_member_weeks already holds
    select
        week_start,
        'overall' as board,
        user_id,
        visits,
        first_check_in_at
    from member_weeks
    union all
    select
        week_start,
        location as board,
        user_id,
        count(*) as visits,
        min(checked_in_at) as first_check_in_at
    from visits
    where location is not null
    group by week_start, location, user_id
)

select
    b.week_start,
    {{ iso_week_label('b.week_start') }} as iso_week,
    b.board,
    b.user_id,
    coalesce(u.handle, 'Member ***' || substr(b.user_id, greatest(length(b.user_id) - 3, 1))) as handle,
    u.home_location,
    b.visits,
    w.streak_weeks,
    b.first_check_in_at,
    row_number() over (
        partition by b.week_start, b.board
        order by b.visits desc, w.streak_weeks desc, b.first_check_in_at asc, b.user_id asc
    ) as rank
from boards as b
inner join member_weeks as w
    on b.user_id = w.user_id and b.week_start = w.week_start
left join {{ ref('dim_users') }} as u on b.user_id = u.user_id
