-- One row per class session held: a class on a local day with at least one check-in. The grain
-- utilisation is computed from (see docs: utilisation), here for all time
-- (mart_class_utilisation) and by the dashboard for any period and gyms.
with attendance as (
    select * from {{ ref('fct_attendance') }}
),

classes as (
    select * from {{ ref('dim_classes') }}
),

final as (
    select
        attendance.class_id,
        attendance.local_date as session_date,
        classes.location,
        classes.capacity,
        count(*) as attendees
    from attendance
    inner join classes on attendance.class_id = classes.class_id
    group by attendance.class_id, attendance.local_date, classes.location, classes.capacity
)

select * from final
