-- Each current member's latest record: from the newest export that lists them, the newest
-- updated_at. Every members export is a full snapshot of the booking system's member table, but
-- for the partial files the contract names (the day's sign-ups, delivered beside the full
-- export): a member missing from the newest full export has left and is not a current member
-- (no e-mail, no HubSpot upsert, no list); a partial export after it only adds members.
-- A build as of a past day reads the exports up to that day (exported_by_as_of).
with members as (
    select * from {{ ref('stg_members') }}
    where {{ exported_by_as_of('export_date', ref('stg_members')) }}
),

newest_full_export as (
    select max(export_date) as export_date
    from members
    where not {{ is_partial_export('source_file', 'members') }}
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
        ranked.user_id,
        ranked.email,
        ranked.home_location,
        ranked.join_date,
        ranked.plan,
        ranked.status,
        ranked.marketing_opt_in,
        ranked.updated_at,
        ranked.export_date as last_export_date
    from ranked
    cross join newest_full_export
    where
        ranked.recency = 1
        -- listed in the newest full export, or in a partial one since
        and ranked.export_date >= coalesce(newest_full_export.export_date, ranked.export_date)
)

select * from final
