-- Per gym and local day: visits, distinct visitors, classes held and new members (by home gym).
with location_daily_visits as (
    select * from {{ ref('int_location_daily_visits') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

-- Members who joined by the as-of date (a build of a past day shows no later day).
joins as (
    select
        home_location as location,
        join_date as activity_date,
        count(*) as new_members
    from users
    where join_date <= {{ as_of_date() }}
    group by home_location, join_date
),

final as (
    select
        coalesce(location_daily_visits.location, joins.location) as location,
        coalesce(location_daily_visits.activity_date, joins.activity_date) as activity_date,
        coalesce(location_daily_visits.visits, 0) as visits,
        coalesce(location_daily_visits.unique_visitors, 0) as unique_visitors,
        coalesce(location_daily_visits.classes_held, 0) as classes_held,
        coalesce(joins.new_members, 0) as new_members
    from location_daily_visits
    full outer join joins
        on
            location_daily_visits.location = joins.location
            and location_daily_visits.activity_date = joins.activity_date
)

select * from final
