-- The class timetable as exported, one row per class per export date (dt). Renames and casts only.
with source as (
    select * from {{ source('processed', 'classes') }}
),

renamed as (
    select
        cast(class_id as varchar) as class_id,
        cast(class_name as varchar) as class_name,
        cast(instructor as varchar) as instructor,
        cast(location as varchar) as location,
        cast(weekday as varchar) as weekday,
        cast(start_time as varchar) as start_time,
        cast(duration_minutes as integer) as duration_minutes,
        cast(capacity as integer) as capacity,
        cast(_ingested_at as timestamp) as ingested_at,
        cast(dt as date) as export_date
    from source
)

select * from renamed
