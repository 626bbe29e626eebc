{#
  Full and partial exports. A snapshot dataset's every export is the whole table, except the
  partial files its contract names (contracts/<dataset>.yml, `snapshot.partial_files`: shell
  globs of file names, such as the members' daily sign-ups). `peak dbt-sources` carries them into
  the source's meta; this reads them back, so the rule is written once, in the contract.
  (dbt's unit tests compile without the sources in `graph`: the models using this are tested
  end to end, tests/test_consent.py.)
#}

{# True for a row that came from one of a processed source table's partial export files. #}
{% macro is_partial_export(source_file, table) -%}
  {%- set found = namespace(patterns=none) -%}
  {%- if execute -%}
    {%- for node in graph.sources.values() -%}
      {%- if node.source_name == 'processed' and node.name == table -%}
        {%- set found.patterns = node.meta.get('partial_files', []) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- if found.patterns is none -%}
      {{ exceptions.raise_compiler_error("is_partial_export: no source processed." ~ table) }}
    {%- endif -%}
  {%- endif -%}
  {%- if found.patterns -%}
    (
    {%- for pattern in found.patterns %}
      {%- set like = pattern | lower | replace('\\', '\\\\') | replace('%', '\\%') | replace('_', '\\_')
          | replace('*', '%') | replace('?', '_') %}
      lower({{ source_file }}) like '{{ like }}' escape '\'{{ ' or' if not loop.last }}
    {%- endfor %}
    )
  {%- else -%}
    false
  {%- endif -%}
{%- endmacro %}
