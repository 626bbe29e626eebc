-- Per ISO week and board (overall, and each gym by where the check-ins happened), every member
-- who visited, ranked by visits the way sports tables rank: members with as many visits share a
-- rank, the next rank counts them all (1, 1, 3).
-- A public surface: only known members (in dim_users; a check-in of an unknown user_id is
-- counted in the operations views, never shown here) under their masked handle, and no home
-- gym (personal data, macros/privacy.sql): a gym board is the gym where the check-ins happened.
-- Built as of a day D, a board counts the check-ins up to D only (D's week is partial).
with attendance as (
    select * from {{ ref('fct_attendance') }}
),

member_weeks as (
    select * from {{ ref('int_member_weeks') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

as_of as (
    select
        {{ as_of_date() }} as as_of_date,
        cast({{ dbt.date_trunc('week', as_of_date()) }} as date) as current_week
),

-- The check-ins of the weeks kept, up to the as-of day; the members' streaks of those weeks.
visits as (
    select
        attendance.week_start,
        attendance.user_id,
        attendance.location,
        attendance.checked_in_at
    from attendance
    cross join as_of
    where
        attendance.week_start > {{ dbt.dateadd('day', -7 * var('leaderboard_weeks'), 'as_of.current_week') }}
        and attendance.week_start <= as_of.current_week
        and attendance.local_date <= as_of.as_of_date
),

weekly_totals as (
    select
        member_weeks.user_id,
        member_weeks.week_start,
        member_weeks.streak_weeks
    from member_weeks
    cross join as_of
    where
        member_weeks.week_start > {{ dbt.dateadd('day', -7 * var('leaderboard_weeks'), 'as_of.current_week') }}
        and member_weeks.week_start <= as_of.current_week
),

boards as (
    -- overall: every check-in (int_member_weeks' totals would count the whole of D's week)
    select
        week_start,
        'overall' as board,
        user_id,
        count(*) as visits,
        min(checked_in_at) as first_check_in_at
    from visits
    group by week_start, user_id
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
),

ranked as (
    select
        boards.week_start,
        boards.board,
        boards.user_id,
        boards.visits,
        weekly_totals.streak_weeks,
        boards.first_check_in_at,
        {{ iso_week_label('boards.week_start') }} as iso_week,
        users.handle,
        rank() over (partition by boards.week_start, boards.board order by boards.visits desc) as rank
    from boards
    inner join weekly_totals
        on boards.user_id = weekly_totals.user_id and boards.week_start = weekly_totals.week_start
    inner join users on boards.user_id = users.user_id
),

final as (
    select
        week_start,
        iso_week,
        board,
        user_id,
        handle,
        visits,
        streak_weeks,
        first_check_in_at,
        rank
    from ranked
)

select * from final
