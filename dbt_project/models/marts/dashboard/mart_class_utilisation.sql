-- Per class in the timetable: sessions held, check-ins and utilisation (see docs: utilisation).
with sessions as (
    select
        class_id,
        session_date as local_date,
        attendees
    from {{ ref('mart_class_sessions') }}
),

per_class as (
    select
        class_id,
        count(*) as sessions_held,
        sum(attendees) as check_ins,
        max(attendees) as max_attendees,
        min(local_date) as first_session_date,
        max(local_date) as last_session_date
    from sessions
    group by class_id
)

select
    c.class_id,
    c.class_name,
    c.instructor,
    c.location,
    c.weekday,
    c.start_time,
    c.start_hour,
    c.duration_minutes,
    c.capacity,
    coalesce(p.sessions_held, 0) as sessions_held,
    coalesce(p.check_ins, 0) as check_ins,
    p.max_attendees,
    p.first_session_date,
    p.last_session_date,
    case
        when p.sessions_held > 0 then p.check_ins * 1.0 / p.sessions_held
    end as avg_attendees,
    case
        when p.sessions_held > 0 then p.check_ins * 1.0 / (p.sessions_held * c.capacity)
    end as utilisation
from {{ ref('dim_classes') }} as c
left join per_class as p on c.class_id = p.class_id
