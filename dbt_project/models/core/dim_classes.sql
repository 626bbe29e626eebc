-- One row per class in the timetable (its latest entry).
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
from {{ ref('int_classes_latest') }}
