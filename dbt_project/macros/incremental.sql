{#
  Which dt partitions an incremental run of a dt-partitioned model rebuilds: every day whose
  source partition received rows after the newest `ingested_at` already in the model (late
  check-ins included, however old), the last `lookback_days` days, and the days listed in
  `extra_days` (`peak run` passes the partitions its transform wrote, which also covers
  backfills landed with an older ingestion time). Evaluated once, before
  the model's SQL runs, and inlined as literals so both DuckDB and Athena prune partitions.
  Returns a list of 'YYYY-MM-DD' strings (empty when nothing changed).
#}
{% macro days_to_rebuild(source_relation, lookback_days, extra_days=[]) %}
  {% if not execute %}{{ return([]) }}{% endif %}
  {% set mark = run_query("select cast(max(ingested_at) as varchar), cast(max(dt) as varchar) from " ~ this) %}
  {% set max_ingested, max_dt = mark.rows[0][0], mark.rows[0][1] %}
  {% if max_ingested is none %}
    {% set query %}select distinct cast(dt as varchar) from {{ source_relation }} order by 1{% endset %}
  {% else %}
    {# Two filters on literals, so each prunes: row-group statistics, then partitions. #}
    {% set query %}
      select cast(dt as varchar) from {{ source_relation }}
      where ingested_at > cast('{{ max_ingested }}' as timestamp)
      union
      select cast(dt as varchar) from {{ source_relation }}
      where dt >= {{ dbt.dateadd('day', -1 * lookback_days, "cast('" ~ max_dt ~ "' as date)") }}
      order by 1
    {% endset %}
  {% endif %}
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
  The earliest value of `column` among the rows of `relation` that are newer (by ingested_at)
  than everything in the current model (everything, when the model is empty): where an
  incremental rebuild must start. None when nothing is new.
#}
{% macro first_changed(relation, column) %}
  {% if not execute %}{{ return(none) }}{% endif %}
  {% set query %}
    select cast(min({{ column }}) as varchar)
    from {{ relation }}
    where ingested_at > coalesce(
      (select max(ingested_at) from {{ this }}), cast('1900-01-01' as timestamp)
    )
  {% endset %}
  {{ return(run_query(query).rows[0][0]) }}
{% endmacro %}

{# `column >= value` on a literal date; `1 = 0` when there is no value. #}
{% macro on_or_after(column, value) -%}
  {%- if value is none -%} 1 = 0
  {%- else -%} {{ column }} >= cast('{{ value }}' as date)
  {%- endif -%}
{%- endmacro %}
