{#
  Per gym and local day: check-ins, distinct visitors and classes held. Incremental by day: a
  run rebuilds the days whose check-ins in fct_attendance differ from what the model holds
  (however old the day: a backfill included), and only those (the heavy part of
  mart_location_daily, which adds new members per day on top).
#}
{{
  config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'athena' else 'replace_partitions'),
    partitioned_by=['activity_date'],
    on_schema_change='fail',
    post_hook="{{ drop_partitions_outside(
        'activity_date', ref('fct_attendance'), 'local_date', where='location is not null'
    ) }}",
  )
}}

{% if is_incremental() %}
  {% set days = changed_periods(
      ref('fct_attendance'), 'local_date', 'activity_date', where='location is not null'
  ) %}
{% endif %}

with attendance as (
    select * from {{ ref('fct_attendance') }}
    where
        location is not null
        and {{ dt_in('local_date', days) if is_incremental() else '1 = 1' }}
        and {{ dt_around(days) if is_incremental() else '1 = 1' }}
),

daily as (
    select
        location,
        local_date as activity_date,
        count(*) as visits,
        count(distinct user_id) as unique_visitors,
        count(distinct class_id) as classes_held,
        max(ingested_at) as ingested_at
    from attendance
    group by location, local_date
),

final as (
    select
        location,
        visits,
        unique_visitors,
        classes_held,
        ingested_at,
        -- The partition column is last (Athena's Hive tables require it).
        activity_date
    from daily
)

select * from final
