-- Check-ins, one row per attendance_id. Renames and casts, and the window the warehouse holds
-- as of the as-of date (in_warehouse_window): the days the processed zone's retention keeps,
-- pruned yet or not, up to the end of the as-of date.
with source as (
    select * from {{ source('processed', 'attendance') }}
    where {{ in_warehouse_window('dt', 'checked_in_at') }}
),

renamed as (
    select
        cast(attendance_id as varchar) as attendance_id,
        cast(user_id as varchar) as user_id,
        cast(class_id as varchar) as class_id,
        cast(checked_in_at as timestamp) as checked_in_at,
        cast(_source_file as varchar) as source_file,
        cast(_ingested_at as timestamp) as ingested_at,
        cast(dt as date) as dt
    from source
)

select * from renamed
