-- One row per member: their latest record and their first and last visit.
with visits as (
    select
        user_id,
        min(local_date) as first_visit_date,
        max(local_date) as last_visit_date,
        count(*) as total_visits
    from {{ ref('fct_attendance') }}
    group by user_id
)

select
    m.user_id,
    m.email,
    {{ mask_email('m.email') }} as email_masked,
    {{ member_handle('m.email', 'm.user_id') }} as handle,
    m.home_location,
    m.join_date,
    m.plan,
    m.status,
    m.marketing_opt_in,
    m.updated_at,
    -- Several members can share an email; the CRM and email marts keep one per address.
    row_number() over (partition by m.email order by m.updated_at desc, m.user_id asc) = 1
        as owns_email,
    v.first_visit_date,
    v.last_visit_date,
    coalesce(v.total_visits, 0) as total_visits
from {{ ref('int_members_latest') }} as m
left join visits as v on m.user_id = v.user_id
