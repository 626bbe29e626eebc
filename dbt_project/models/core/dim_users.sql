-- One row per member: their latest record and their first and last visit.
with members as (
    select * from {{ ref('int_members_latest') }}
),

attendance as (
    select * from {{ ref('fct_attendance') }}
),

visits as (
    select
        user_id,
        min(local_date) as first_visit_date,
        max(local_date) as last_visit_date,
        count(*) as total_visits
    from attendance
    group by user_id
),

users as (
    select
        *,
        {{ mask_email('email') }} as email_masked,
        {{ member_handle('email', 'user_id') }} as handle,
        -- Several members can share an email; the CRM and email marts keep one per address.
        row_number() over (partition by email order by updated_at desc, user_id asc) = 1
            as owns_email
    from members
),

final as (
    select
        users.user_id,
        users.email,
        users.email_masked,
        users.handle,
        users.home_location,
        users.join_date,
        users.plan,
        users.status,
        users.marketing_opt_in,
        users.updated_at,
        users.owns_email,
        visits.first_visit_date,
        visits.last_visit_date,
        coalesce(visits.total_visits, 0) as total_visits
    from users
    left join visits on users.user_id = visits.user_id
)

select * from final
