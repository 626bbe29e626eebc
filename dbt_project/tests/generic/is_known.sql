{#
  Rows whose flag column is false: check-ins of members or classes missing from the exports.
  Used with severity warn so the count is reported and the rows are kept, never dropped.
#}
{% test is_known(model, column_name) %}
select * from {{ model }} where not {{ column_name }}
{% endtest %}
