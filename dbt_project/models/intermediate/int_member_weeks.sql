{#
  One row per member and ISO week with at least one visit, with the member's weekly streak as
  of that week (consecutive weeks, found as gaps and islands over the week number).

  Incremental by week: a run rebuilds the weeks from the first one whose check-ins in
  fct_attendance differ from what the model holds (however old: a backfill included; later
  weeks' streaks depend on it), carrying each member's streak from the week before.
  `streak_start_week` identifies a run of weeks across rebuilds.
#}
{{
  config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'athena' else 'replace_partitions'),
    partitioned_by=['week_start'],
    on_schema_change='fail',
    post_hook="{{ drop_partitions_outside('week_start', ref('fct_attendance'), 'week_start') }}",
  )
}}

{% if is_incremental() %}
  {% set first_week = first_changed(ref('fct_attendance'), 'week_start') %}
{% endif %}

with attendance as (
    select * from {{ ref('fct_attendance') }}
    {% if is_incremental() %}
        where {{ on_or_after('week_start', first_week) }} and {{ dt_from(first_week) }}
    {% endif %}
),

weekly as (
    select
        user_id,
        week_start,
        count(*) as visits,
        min(checked_in_at) as first_check_in_at,
        max(ingested_at) as ingested_at
    from attendance
    group by user_id, week_start
),

numbered as (
    select
        *,
        {{ int_div(dbt.datediff("cast('2000-01-03' as date)", 'week_start', 'day'), 7) }} as week_number
    from weekly
),

islands as (
    select
        *,
        week_number - row_number() over (partition by user_id order by week_number) as island
    from numbered
),

runs as (
    select
        *,
        row_number() over (partition by user_id, island order by week_number) as run_position,
        min(week_number) over (partition by user_id, island) as island_start
    from islands
),

carried as (
    {% if is_incremental() and first_week is not none %}
        -- Each member's streak in the week before the rebuilt range.
        select
            user_id,
            week_number,
            streak_weeks
        from {{ this }}
        where week_start = {{ dbt.dateadd('day', -7, "cast('" ~ first_week ~ "' as date)") }}
    {% else %}
        select
            cast(null as varchar) as user_id,
            cast(null as bigint) as week_number,
            cast(null as bigint) as streak_weeks
        where 1 = 0
    {% endif %}
),

streaks as (
    select
        runs.*,
        runs.run_position
        + case when runs.island_start = carried.week_number + 1 then carried.streak_weeks else 0 end as streak_weeks
    from runs
    left join carried on runs.user_id = carried.user_id
),

started as (
    select
        *,
        week_number - streak_weeks + 1 as streak_start_week
    from streaks
),

final as (
    select
        user_id,
        week_number,
        visits,
        first_check_in_at,
        streak_weeks,
        streak_start_week,
        ingested_at,
        -- The partition column is last (Athena's Hive tables require it).
        week_start
    from started
)

select * from final
