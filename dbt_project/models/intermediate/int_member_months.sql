{#
  One row per member and calendar month (local) with at least one visit. Incremental by month:
  a run rebuilds the months whose check-ins in fct_attendance differ from what the model holds
  (however old the month: a backfill included), and only those.
#}
{{
  config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'athena' else 'replace_partitions'),
    partitioned_by=['activity_month'],
    on_schema_change='fail',
    post_hook="{{ drop_partitions_outside(
        'activity_month', ref('fct_attendance'), 'cast(' ~ dbt.date_trunc('month', 'local_date') ~ ' as date)'
    ) }}",
  )
}}

{% set month = 'cast(' ~ dbt.date_trunc('month', 'local_date') ~ ' as date)' %}
{% if is_incremental() %}
    {% set months = changed_periods(
        ref('fct_attendance'), 'local_date', 'activity_month',
        rollup='cast(' ~ dbt.date_trunc('month', 'period') ~ ' as date)'
    ) %}
{% endif %}

with attendance as (
    select * from {{ ref('fct_attendance') }}
    {% if is_incremental() %}
        where
            {{ on_or_after('local_date', months[0] if months else none) }}
            and {{ dt_in(month, months) }}
            and {{ dt_around(months, 'month') }}
    {% endif %}
),

monthly as (
    select
        user_id,
        {{ month }} as activity_month,
        count(*) as visits,
        max(ingested_at) as ingested_at
    from attendance
    group by user_id, {{ month }}
),

final as (
    select
        user_id,
        visits,
        ingested_at,
        -- The partition column is last (Athena's Hive tables require it).
        activity_month
    from monthly
)

select * from final
