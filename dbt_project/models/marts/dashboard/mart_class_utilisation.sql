-- Per class in the timetable: sessions held, check-ins and utilisation (see docs: utilisation).
with class_sessions as (
    select * from {{ ref('mart_class_sessions') }}
),

classes as (
    select * from {{ ref('dim_classes') }}
),

per_class as (
    select
        class_id,
        count(*) as sessions_held,
        sum(attendees) as check_ins,
        max(attendees) as max_attendees,
        min(session_date) as first_session_date,
        max(session_date) as last_session_date
    from class_sessions
    group by class_id
),

measured as (
    select
        classes.*,
        per_class.max_attendees,
        per_class.first_session_date,
        per_class.last_session_date,
        coalesce(per_class.sessions_held, 0) as sessions_held,
        coalesce(per_class.check_ins, 0) as check_ins,
        case
            when per_class.sessions_held > 0 then {{ ratio('per_class.check_ins', 'per_class.sessions_held') }}
        end as avg_attendees,
        case
            when per_class.sessions_held > 0
                then {{ ratio('per_class.check_ins', 'per_class.sessions_held * classes.capacity') }}
        end as utilisation
    from classes
    left join per_class on classes.class_id = per_class.class_id
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
        sessions_held,
        check_ins,
        max_attendees,
        first_session_date,
        last_session_date,
        avg_attendees,
        utilisation
    from measured
)

select * from final
