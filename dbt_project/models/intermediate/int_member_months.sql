{#
  One row per member and calendar month (local) with at least one visit. Incremental by month:
  a run rebuilds the months from the first one holding check-ins new since the last run.
#}
{{
  config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'athena' else 'replace_partitions'),
    partitioned_by=['activity_month'],
    on_schema_change='fail',
  )
}}

{% if is_incremental() %}
    {% set first_day = first_changed(ref('fct_attendance'), 'local_date') %}
    {% set first_month = none if first_day is none else first_day[:8] ~ '01' %}
{% endif %}

select
    user_id,
    count(*) as visits,
    max(ingested_at) as ingested_at,
    -- The partition column is last (Athena's Hive tables require it).
    cast({{ dbt.date_trunc('month', 'local_date') }} as date) as activity_month
from {{ ref('fct_attendance') }}
where {{ on_or_after('local_date', first_month) if is_incremental() else '1 = 1' }}
group by user_id, cast({{ dbt.date_trunc('month', 'local_date') }} as date)
