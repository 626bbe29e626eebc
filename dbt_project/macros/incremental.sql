{#
  Which dt partitions an incremental run of a dt-partitioned model rebuilds: every day whose
  source partition holds other rows than the model (however old the day, and whatever the
  rows' ingestion time: a backfill landed with `--date D` is stamped with an `ingested_at`
  older than what the model holds), the last `lookback_days` days, and the days listed in
  `extra_days` (`peak run` passes the partitions its transform wrote). Evaluated once, before
  the model's SQL runs, and inlined as literals so both DuckDB and Athena prune partitions.
  Returns a list of 'YYYY-MM-DD' strings (empty when nothing changed).

  A day differs when its rows per ingestion time differ in number: new check-ins add rows, and
  a check-in superseded by an earlier landing moves a row from one ingestion time to another.
  Both sides group two narrow columns (the partition and one timestamp, nearly constant per
  file), so the comparison reads little: no row's id, and no join.
#}
{% macro days_to_rebuild(source_relation, lookback_days, extra_days=[]) %}
  {% if not execute %}{{ return([]) }}{% endif %}
  {% set max_dt = run_query("select cast(max(dt) as varchar) from " ~ this).rows[0][0] %}
  {% set query %}
    select cast(dt as varchar) from (
        select dt, ingested_at, count(*) as n
        from {{ source_relation }}
        group by dt, ingested_at
        union all
        select dt, ingested_at, -count(*) as n
        from {{ this }}
        group by dt, ingested_at
    ) as both_sides
    group by dt, ingested_at
    having sum(n) <> 0
    {% if max_dt is not none %}
      union
      select cast(dt as varchar) from {{ source_relation }}
      where dt >= {{ dbt.dateadd('day', -1 * lookback_days, "cast('" ~ max_dt ~ "' as date)") }}
    {% endif %}
  {% endset %}
  {% set rows = run_query(query) %}
  {% set days = (rows.columns[0].values() | list) + (extra_days | list) %}
  {{ return(days | unique | sort | list) }}
{% endmacro %}

{# A `dt in (...)` filter over literal dates; `false` when the list is empty. #}
{% macro dt_in(column, days) -%}
  {%- if days | length == 0 -%} 1 = 0
  {%- else -%} {{ column }} in ({% for d in days %}date '{{ d }}'{{ ", " if not loop.last }}{% endfor %})
  {%- endif -%}
{%- endmacro %}

{#
  DuckDB's equivalent of Athena's insert_overwrite: replace whole partitions. The rows of every
  partition value present in the new batch are deleted, then the batch is inserted (dbt-duckdb's
  delete+insert joins on a non-unique key, which multiplies rows at scale). Used as
  incremental_strategy='replace_partitions' with partitioned_by=[column].
#}
{% macro get_incremental_replace_partitions_sql(arg_dict) %}
  {%- set target = arg_dict['target_relation'] -%}
  {%- set source = arg_dict['temp_relation'] -%}
  {%- set column = config.get('partitioned_by')[0] -%}
  {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
  delete from {{ target }} where {{ column }} in (select distinct {{ column }} from {{ source }});
  insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ source }}
{% endmacro %}

{#
  The periods (days, weeks, months) an incremental aggregate of check-ins must rebuild: those
  whose check-ins in `relation` (fct_attendance) differ from what the current model holds, by
  number or by newest `ingested_at`. The model keeps, per row, `visits` (its check-ins) and
  `ingested_at` (their newest); the fact is grouped by `column`, then by `rollup` (a SQL
  expression over `period`, e.g. its month) when the model's period is coarser; `this_column`
  is the model's period column. `where` restricts the check-ins the model counts.

  Compared with the model's own content rather than a watermark: a backfill's rows carry an
  older `ingested_at` than the model's newest, and a rebuild that never ran (a build that
  selected only the fact) is still found on the next run. Returns 'YYYY-MM-DD' strings, sorted.
#}
{% macro changed_periods(relation, column, this_column=none, rollup=none, where='1 = 1') %}
  {% if not execute %}{{ return([]) }}{% endif %}
  {% set period = rollup if rollup is not none else 'period' %}
  {% set query %}
    with incoming as (
        select {{ column }} as period, count(*) as visits, max(ingested_at) as newest
        from {{ relation }}
        where {{ where }}
        group by {{ column }}
    ),

    both_sides as (
        select
            {{ period }} as period,
            cast(sum(visits) as bigint) as visits,
            max(newest) as newest
        from incoming
        group by {{ period }}
        union all
        select
            {{ this_column or column }} as period,
            cast(sum(visits) as bigint) as visits,
            max(ingested_at) as newest
        from {{ this }}
        group by {{ this_column or column }}
    )

    select distinct cast(period as varchar)
    from both_sides
    group by period, visits, newest
    having count(*) <> 2
  {% endset %}
  {{ return(run_query(query).columns[0].values() | list | sort | list) }}
{% endmacro %}

{# The first of `changed_periods` (where a rebuild of running totals must start); none when
   nothing changed. #}
{% macro first_changed(relation, column, this_column=none) %}
  {% if not execute %}{{ return(none) }}{% endif %}
  {% set periods = changed_periods(relation, column, this_column) %}
  {{ return(periods[0] if periods else none) }}
{% endmacro %}

{# `column >= value` on a literal date; `1 = 0` when there is no value. #}
{% macro on_or_after(column, value) -%}
  {%- if value is none -%} 1 = 0
  {%- else -%} {{ column }} >= cast('{{ value }}' as date)
  {%- endif -%}
{%- endmacro %}

{#
  A bound on fct_attendance's partition column `dt` (a check-in's UTC day) for the check-ins of
  some local periods: a local date lies within a day of its UTC date, so a period's check-ins
  are in its own UTC days and the day either side. Athena reads only the partitions a filter on
  `dt` selects: without this bound, an incremental model filtering on local_date or week_start
  alone reads the whole fact every day. `starts` are 'YYYY-MM-DD' period starts of `period`
  ('day' or 'month'); `1 = 0` when there is none.
#}
{% macro dt_around(starts, period='day', column='dt') -%}
  {%- set one_day = modules.datetime.timedelta(days=1) -%}
  {%- if starts | length == 0 -%} 1 = 0
  {%- else -%}
    ({% for start in starts %}
      {%- set first = modules.datetime.date.fromisoformat(start) -%}
      {%- if period == 'month' -%}
        {%- set last = (first.replace(day=28) + modules.datetime.timedelta(days=4)).replace(day=1) - one_day -%}
      {%- else -%}
        {%- set last = first -%}
      {%- endif -%}
      {{ column }} between date '{{ first - one_day }}' and date '{{ last + one_day }}'{{ " or " if not loop.last }}
    {%- endfor %})
  {%- endif -%}
{%- endmacro %}

{# The same bound for every check-in from a local date on (`1 = 0` when there is none). #}
{% macro dt_from(start, column='dt') -%}
  {%- if start is none -%} 1 = 0
  {%- else -%} {{ column }} >= date '{{ modules.datetime.date.fromisoformat(start) - modules.datetime.timedelta(days=1) }}'
  {%- endif -%}
{%- endmacro %}

{#
  The window in an incremental model: drop its partitions outside the periods its upstream
  (`relation`, the rows `where` selects) still holds, from the first to the last. The
  warehouse's window moves (stg_attendance, in_warehouse_window): the processed zone lets its
  oldest days go, and a re-build of an earlier day ends earlier. An incremental run finds the
  periods that lost check-ins, but one left with none writes no rows, and replace_partitions or
  insert_overwrite replace only the partitions they write, so the stale one would stay. Run as
  the post-hook of every dt-partitioned incremental model (a full refresh has nothing to drop).
  The window loses days only at its ends, so "outside the first and last period left" is
  exactly what went; an empty upstream drops every partition.
#}
{% macro drop_partitions_outside(column, relation, upstream_column, where='1 = 1') %}
  {{ return(adapter.dispatch('drop_partitions_outside', 'peak_fitness')(column, relation, upstream_column, where)) }}
{% endmacro %}

{% macro default__drop_partitions_outside(column, relation, upstream_column, where) %}
  delete from {{ this }}
  where not coalesce({{ column }} between
      (select min({{ upstream_column }}) from {{ relation }} where {{ where }})
      and (select max({{ upstream_column }}) from {{ relation }} where {{ where }}), false)
{% endmacro %}

{# Athena: Hive partitions are removed from the Glue catalog and S3 (dbt-athena's own helper). #}
{% macro athena__drop_partitions_outside(column, relation, upstream_column, where) %}
  {% if execute and is_incremental() %}
    {% set bounds = run_query(
        "select cast(min(" ~ upstream_column ~ ") as varchar), cast(max(" ~ upstream_column
        ~ ") as varchar) from " ~ relation ~ " where " ~ where
    ).rows[0] %}
    {% if bounds[0] is none %}
      {% do adapter.clean_up_partitions(this, column ~ " >= '0001-01-01'") %}
    {% else %}
      {% do adapter.clean_up_partitions(
          this, column ~ " < '" ~ bounds[0] ~ "' or " ~ column ~ " > '" ~ bounds[1] ~ "'"
      ) %}
    {% endif %}
  {% endif %}
  select 1
{% endmacro %}
