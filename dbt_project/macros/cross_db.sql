{#
  What DuckDB (local) and Trino (Athena) spell differently, dispatched per adapter. Models call
  these and dbt's own cross-database macros (dbt.date_trunc, dbt.datediff, dbt.dateadd) only.
#}

{# ISO day of the week: 1 = Monday ... 7 = Sunday. #}
{% macro iso_weekday(expr) %}{{ return(adapter.dispatch('iso_weekday', 'peak_fitness')(expr)) }}{% endmacro %}
{% macro default__iso_weekday(expr) %}isodow({{ expr }}){% endmacro %}
{% macro athena__iso_weekday(expr) %}day_of_week({{ expr }}){% endmacro %}

{# The ISO week's label, e.g. 2026-W48 (ISO year, not calendar year). #}
{% macro iso_week_label(expr) %}{{ return(adapter.dispatch('iso_week_label', 'peak_fitness')(expr)) }}{% endmacro %}
{% macro default__iso_week_label(expr) -%}
  cast(isoyear({{ expr }}) as varchar) || '-W' || lpad(cast(week({{ expr }}) as varchar), 2, '0')
{%- endmacro %}
{% macro athena__iso_week_label(expr) -%}
  cast(year_of_week({{ expr }}) as varchar) || '-W' || lpad(cast(week_of_year({{ expr }}) as varchar), 2, '0')
{%- endmacro %}

{# Integer division that truncates on both engines (DuckDB's `/` returns a double). #}
{% macro int_div(a, b) %}cast(floor(({{ a }}) * 1.0 / ({{ b }})) as bigint){% endmacro %}

{# A UTC timestamp as the gyms' local wall-clock time (the same expression on both engines). #}
{% macro to_local_time(expr) -%}
  cast((({{ expr }}) at time zone 'UTC') at time zone '{{ var("gym_timezone") }}' as timestamp)
{%- endmacro %}

{# The day "now" is measured from: var as_of_date, else today. #}
{% macro as_of_date() -%}
  {%- if var('as_of_date') -%} cast('{{ var("as_of_date") }}' as date)
  {%- else -%} current_date
  {%- endif -%}
{%- endmacro %}
