-- Cohort retention by join month: of the members who joined in a month, the share who visited
-- in each month since (month 0 = the join month).
with cohorts as (
    select
        user_id,
        cast({{ dbt.date_trunc('month', 'join_date') }} as date) as cohort_month
    from {{ ref('dim_users') }}
),

sizes as (
    select
        cohort_month,
        count(*) as cohort_size
    from cohorts
    group by cohort_month
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
        {{ dbt.datediff('c.cohort_month', 'a.activity_month', 'month') }}
            as months_since_join
    from cohorts as c
    inner join activity as a on c.user_id = a.user_id
    where a.activity_month >= c.cohort_month
),

retained as (
    select
        cohort_month,
        months_since_join,
        count(*) as active_members
    from months
    group by cohort_month, months_since_join
)

select
    r.cohort_month,
    r.months_since_join,
    s.cohort_size,
    r.active_members,
    r.active_members * 1.0 / s.cohort_size as retention_rate
from retained as r
inner join sizes as s on r.cohort_month = s.cohort_month
