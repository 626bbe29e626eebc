-- Per gym and local day: visits, distinct visitors, classes held and new members (by home gym).
with visits as (
    select * from {{ ref('int_location_daily_visits') }}
),

joins as (
    select
        home_location as location,
        join_date as activity_date,
        count(*) as new_members
    from {{ ref('dim_users') }}
    group by home_location, join_date
)

select
    coalesce(v.location, j.location) as location,
    coalesce(v.activity_date, j.activity_date) as activity_date,
    coalesce(v.visits, 0) as visits,
    coalesce(v.unique_visitors, 0) as unique_visitors,
    coalesce(v.classes_held, 0) as classes_held,
    coalesce(j.new_members, 0) as new_members
from visits as v
full outer join joins as j
    on v.location = j.location and v.activity_date = j.activity_date
