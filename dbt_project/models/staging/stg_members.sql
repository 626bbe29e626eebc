-- Members as exported, one row per member per export date (dt). Renames and casts only.
with source as (
    select * from {{ source('processed', 'members') }}
),

renamed as (
    select
        cast(user_id as varchar) as user_id,
        cast(email as varchar) as email,
        cast(location as varchar) as home_location,
        cast(join_date as date) as join_date,
        cast(plan as varchar) as plan,
        cast(status as varchar) as status,
        cast(marketing_opt_in as boolean) as marketing_opt_in,
        cast(updated_at as timestamp) as updated_at,
        cast(_source_file as varchar) as source_file,
        cast(_ingested_at as timestamp) as ingested_at,
        cast(dt as date) as export_date
    from source
)

select * from renamed
