-- Cohort retention by join month and home gym: of the members who joined a gym in a month, how
-- many visited in each month since (month 0 = the join month). Every cohort has its month-0 row
-- (zero active members included), so summing cohort_size over the month-0 rows of any set of
-- gyms gives that set's cohort size.
with users as (
    select * from {{ ref('dim_users') }}
),

member_months as (
    select * from {{ ref('int_member_months') }}
),

cohorts as (
    select
        user_id,
        home_location,
        cast({{ dbt.date_trunc('month', 'join_date') }} as date) as cohort_month
    from users
),

sizes as (
    select
        cohort_month,
        home_location,
        count(*) as cohort_size
    from cohorts
    group by cohort_month, home_location
),

months as (
    select
        cohorts.cohort_month,
        cohorts.home_location,
        {{ dbt.datediff('cohorts.cohort_month', 'member_months.activity_month', 'month') }}
            as months_since_join
    from cohorts
    inner join member_months on cohorts.user_id = member_months.user_id
    where member_months.activity_month >= cohorts.cohort_month
),

retained as (
    select
        cohort_month,
        home_location,
        months_since_join,
        count(*) as active_members
    from months
    group by cohort_month, home_location, months_since_join
),

grid as (
    select
        cohort_month,
        home_location,
        0 as months_since_join
    from sizes
    union
    select
        cohort_month,
        home_location,
        months_since_join
    from retained
),

cohort_months as (
    select
        grid.cohort_month,
        grid.home_location,
        grid.months_since_join,
        sizes.cohort_size,
        coalesce(retained.active_members, 0) as active_members
    from grid
    inner join sizes
        on grid.cohort_month = sizes.cohort_month and grid.home_location = sizes.home_location
    left join retained
        on
            grid.cohort_month = retained.cohort_month
            and grid.home_location = retained.home_location
            and grid.months_since_join = retained.months_since_join
),

final as (
    select
        cohort_month,
        home_location,
        months_since_join,
        cohort_size,
        active_members,
        {{ ratio('active_members', 'cohort_size') }} as retention_rate
    from cohort_months
)

select * from final
