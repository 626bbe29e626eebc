-- Cohort retention by join month and home gym: of the members who joined a gym in a month, how
-- many visited in each month since (month 0 = the join month). Every cohort has its month-0 row
-- (zero active members included), so summing cohort_size over the month-0 rows of any set of
-- gyms gives that set's cohort size.
with cohorts as (
    select
        user_id,
        home_location,
        cast({{ dbt.date_trunc('month', 'join_date') }} as date) as cohort_month
    from {{ ref('dim_users') }}
),

sizes as (
    select
        cohort_month,
        home_location,
        count(*) as cohort_size
    from cohorts
    group by cohort_month, home_location
),

activity as (
    select
        user_id,
        activity_month
    from {{ ref('int_member_months') }}
),

months as (
    select
        c.cohort_month,
        c.home_location,
        {{ dbt.datediff('c.cohort_month', 'a.activity_month', 'month') }}
            as months_since_join
    from cohorts as c
    inner join activity as a on c.user_id = a.user_id
    where a.activity_month >= c.cohort_month
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
)

select
    g.cohort_month,
    g.home_location,
    g.months_since_join,
    s.cohort_size,
    coalesce(r.active_members, 0) as active_members,
    coalesce(r.active_members, 0) * 1.0 / s.cohort_size as retention_rate
from grid as g
inner join sizes as s
    on g.cohort_month = s.cohort_month and g.home_location = s.home_location
left join retained as r
    on
        g.cohort_month = r.cohort_month
        and g.home_location = r.home_location
        and g.months_since_join = r.months_since_join
