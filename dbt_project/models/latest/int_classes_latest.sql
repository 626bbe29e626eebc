-- Each class's latest timetable entry (from the newest export that lists it), among the exports
-- up to the as-of date (exported_by_as_of).
with classes as (
    select * from {{ ref('stg_classes') }}
    where {{ exported_by_as_of('export_date', ref('stg_classes')) }}
),

ranked as (
    select
        *,
        cast(substr(start_time, 1, 2) as integer) as start_hour,
        row_number() over (partition by class_id order by export_date desc, ingested_at desc) as recency
    from classes
),

final as (
    select
        class_id,
        class_name,
        instructor,
        location,
        weekday,
        start_time,
        start_hour,
        duration_minutes,
        capacity,
        export_date as last_export_date
    from ranked
    where recency = 1
)

select * from final
