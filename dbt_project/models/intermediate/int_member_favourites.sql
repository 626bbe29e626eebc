{{ config(materialized='table') }}  -- read by several models and tests: computed once
-- Each member's most attended class and instructor over the last 90 days (ties: alphabetical),
-- for the members a retention email may go to (not active): the email templates' data.
with as_of as (
    select {{ as_of_date() }} as as_of_date
),

recent as (
    select
        f.user_id,
        f.class_name,
        f.instructor
    from {{ ref('fct_attendance') }} as f
    cross join as_of as a
    where
        f.local_date > {{ dbt.dateadd('day', -90, 'a.as_of_date') }}
        and f.local_date <= a.as_of_date
        and f.is_known_class
        and f.user_id in (
            select c.user_id from {{ ref('int_churn_status') }} as c
            where c.churn_status != 'active'
        )
),

{% for field in ['class_name', 'instructor'] %}
    {{ field }}_ranked as (
        select
            user_id,
            {{ field }},
            row_number() over (partition by user_id order by count(*) desc, {{ field }}) as position
        from recent
        group by user_id, {{ field }}
    ){{ "," if not loop.last }}
{% endfor %}

select
    c.user_id,
    c.class_name as favourite_class,
    i.instructor as favourite_instructor
from class_name_ranked as c
inner join instructor_ranked as i on c.user_id = i.user_id and i.position = 1
where c.position = 1
