{#
  One row per check-in. Incremental by day: a run rebuilds only the dt partitions that
  received rows since the last run (however late) plus the last `attendance_lookback_days`
  days, replacing those partitions whole. Athena: a Hive table partitioned by dt written with
  insert_overwrite (dbt-athena batches inserts when more than 100 partitions change, Athena's
  limit per query). DuckDB: replace_partitions (macros/incremental.sql), the same effect.
  Check-ins of members or classes we do not know are kept, flagged and counted by a warning.
#}
{{
  config(
    materialized='incremental',
    incremental_strategy=('insert_overwrite' if target.type == 'athena' else 'replace_partitions'),
    partitioned_by=['dt'],
    partitions_limit=100,
    on_schema_change='fail',
    post_hook="{{ drop_partitions_outside('dt', ref('stg_attendance'), 'dt') }}",
  )
}}

{% if is_incremental() %}
  {% set days = days_to_rebuild(
      ref('stg_attendance'), var('attendance_lookback_days'), var('attendance_days')
  ) %}
{% endif %}

with attendance as (
    select * from {{ ref('stg_attendance') }}
    {% if is_incremental() %}
        where {{ dt_in('dt', days) }}
    {% endif %}
),

classes as (
    select * from {{ ref('int_classes_latest') }}
),

members as (
    select * from {{ ref('int_members_latest') }}
),

-- Each check-in with its class and member (null when unknown), and the gyms' local time.
enriched as (
    select
        attendance.attendance_id,
        attendance.user_id,
        attendance.class_id,
        attendance.checked_in_at,
        classes.location,
        classes.class_name,
        classes.instructor,
        members.home_location,
        attendance.source_file,
        attendance.ingested_at,
        attendance.dt,
        classes.class_id is not null as is_known_class,
        members.user_id is not null as is_known_member,
        {{ to_local_time('attendance.checked_in_at') }} as checked_in_local
    from attendance
    left join classes on attendance.class_id = classes.class_id
    left join members on attendance.user_id = members.user_id
),

calendar as (
    select
        *,
        cast(checked_in_local as date) as local_date,
        cast({{ dbt.date_trunc('week', 'checked_in_local') }} as date) as week_start,
        {{ iso_weekday('checked_in_local') }} as weekday,
        extract(hour from checked_in_local) as hour
    from enriched
),

final as (
    select
        attendance_id,
        user_id,
        class_id,
        checked_in_at,
        checked_in_local,
        local_date,
        week_start,
        weekday,
        hour,
        location,
        class_name,
        instructor,
        home_location,
        is_known_class,
        is_known_member,
        source_file,
        ingested_at,
        -- The partition column is last (Athena's Hive tables require it).
        dt
    from calendar
)

select * from final
