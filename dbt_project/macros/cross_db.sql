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

{#
  Dividing is where the two engines differ most: DuckDB's `/` always returns a double; Trino's
  divides integers as integers (7 / 2 = 3) and decimals as decimals, keeping the larger scale of
  the two (so `n * 1.0 / d` is rounded to one decimal place). Models never write `/`: a
  fraction is a ratio(), a whole quotient an int_div(). `peak build --target athena
  --compile-only` fails on any other division of exact numbers (docs/athena.md).
#}

{# A fraction, as a double on both engines; null when the denominator is zero (where Trino's
   double division gives Infinity and its integer division an error). #}
{% macro ratio(numerator, denominator) -%}
  cast(({{ numerator }}) as double) / nullif(cast(({{ denominator }}) as double), 0)
{%- endmacro %}

{# The whole quotient of two integers, truncated toward zero on both engines (DuckDB's `//`,
   Trino's `/` on integers); the cast says the integer division is meant. #}
{% macro int_div(a, b) %}{{ return(adapter.dispatch('int_div', 'peak_fitness')(a, b)) }}{% endmacro %}
{% macro default__int_div(a, b) %}cast(({{ a }}) // ({{ b }}) as bigint){% endmacro %}
{% macro athena__int_div(a, b) %}cast(({{ a }}) / ({{ b }}) as bigint){% endmacro %}

{#
  dbt.datediff in days on Athena, replacing dbt-athena's (dbt_project.yml's `dispatch` looks
  here first): dbt-athena divides the dates' distance in milliseconds by 86,400,000, an integer
  division of Trino's; date_diff on the two dates gives the same days directly. Other dateparts
  stay dbt-athena's.
#}
{% macro athena__datediff(first_date, second_date, datepart) -%}
  {%- if datepart == 'day' -%}
    date_diff('day', cast(cast({{ first_date }} as timestamp) as date), cast(cast({{ second_date }} as timestamp) as date))
  {%- else -%}
    {{ dbt.athena__datediff(first_date, second_date, datepart) }}
  {%- endif -%}
{%- endmacro %}

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

{# The first day (a UTC `dt`) the processed zone keeps as of the as-of date, and so the first
   day the warehouse holds: the processed zone's retention, decided once. #}
{% macro retention_start() -%}
  cast({{ dbt.dateadd('day', -1 * var('processed_retention_days'), as_of_date()) }} as date)
{%- endmacro %}

{#
  The check-ins the warehouse holds as of the as-of date, decided once (stg_attendance, and
  fct_attendance's reconciliation with the processed zone): the days the processed zone's
  retention keeps (retention_start), up to the end of the as-of date in the gyms' time zone. A
  build as of a past day sees nothing after it. The bound on `dt` (a UTC day: a local day lies
  within a day of it) lets Athena read only the partitions it needs.
#}
{% macro in_warehouse_window(dt, checked_in_at) -%}
  cast({{ dt }} as date) >= {{ retention_start() }}
  and cast({{ dt }} as date) <= cast({{ dbt.dateadd('day', 1, as_of_date()) }} as date)
  and cast({{ to_local_time(checked_in_at) }} as date) <= {{ as_of_date() }}
{%- endmacro %}

{#
  The exports a build as of the as-of date reads: those dated on or before it, as the lake held
  them that day. A lake whose first export is later (a backfill of a day before the first
  export) reads its first export instead of nothing. `relation` is the staging model.
#}
{% macro exported_by_as_of(export_date, relation) -%}
  {{ export_date }} <= greatest({{ as_of_date() }}, (select min({{ export_date }}) from {{ relation }}))
{%- endmacro %}
