{{ config(materialized='table') }}  -- read by several models and tests: computed once
-- Each member's most attended class and instructor over the last 90 days (ties: alphabetical),
-- for the members a retention email may go to (not active): the email templates' data.
with attendance as (
    select * from {{ ref('fct_attendance') }}
),

churn_statuses as (
    select * from {{ ref('int_churn_status') }}
),

as_of as (
    select {{ as_of_date() }} as as_of_date
),

recent as (
    select
        attendance.user_id,
        attendance.class_name,
        attendance.instructor
    from attendance
    cross join as_of
    where
        attendance.local_date > {{ dbt.dateadd('day', -90, 'as_of.as_of_date') }}
        and attendance.local_date <= as_of.as_of_date
        and attendance.is_known_class
        and attendance.user_id in (
            select churn_statuses.user_id from churn_statuses
            where churn_statuses.churn_status != 'active'
        )
),

{% for field in ['class_name', 'instructor'] %}
    {{ field }}_ranked as (
        select
            user_id,
            {{ field }},
            row_number() over (partition by user_id order by count(*) desc, {{ field }}) as preference
        from recent
        group by user_id, {{ field }}
    ),
{% endfor %}

final as (
    select
        class_name_ranked.user_id,
        class_name_ranked.class_name as favourite_class,
        instructor_ranked.instructor as favourite_instructor
    from class_name_ranked
    inner join instructor_ranked
        on class_name_ranked.user_id = instructor_ranked.user_id and instructor_ranked.preference = 1
    where class_name_ranked.preference = 1
)

select * from final
