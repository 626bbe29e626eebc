-- Check-ins, one row per attendance_id. Renames and casts, and the processed zone's retention:
-- only the days it keeps as of the as-of date (retention_start), pruned yet or not.
with source as (
    select * from {{ source('processed', 'attendance') }}
    where cast(dt as date) >= {{ retention_start() }}
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
