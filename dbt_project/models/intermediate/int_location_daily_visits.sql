{#
  Per gym and local day: check-ins, distinct visitors and classes held. Incremental by day: a
  run rebuilds the days from the first one holding check-ins new since the last run (the
  heavy part of mart_location_daily, which adds new members per day on top).
#}
{{
  config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'athena' else 'replace_partitions'),
    partitioned_by=['activity_date'],
    on_schema_change='fail',
  )
}}

{% if is_incremental() %}
  {% set first_day = first_changed(ref('fct_attendance'), 'local_date') %}
{% endif %}

select
    location,
    count(*) as visits,
    count(distinct user_id) as unique_visitors,
    count(distinct class_id) as classes_held,
    max(ingested_at) as ingested_at,
    -- The partition column is last (Athena's Hive tables require it).
    local_date as activity_date
from {{ ref('fct_attendance') }}
where
    location is not null
    and {{ on_or_after('local_date', first_day) if is_incremental() else '1 = 1' }}
group by location, local_date
