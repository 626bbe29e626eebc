-- Each member's latest record: from the newest export that lists them, the newest updated_at.
-- A member missing from later exports keeps their last known record.
with members as (
    select * from {{ ref('stg_members') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by user_id order by export_date desc, updated_at desc
        ) as recency
    from members
),

final as (
    select
        user_id,
        email,
        home_location,
        join_date,
        plan,
        status,
        marketing_opt_in,
        updated_at,
        export_date as last_export_date
    from ranked
    where recency = 1
)

select * from final
