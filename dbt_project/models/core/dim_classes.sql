-- One row per class in the timetable (its latest entry).
with classes as (
    select * from {{ ref('int_classes_latest') }}
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
        capacity
    from classes
)

select * from final
