{#
  Row counts per group equal those of another relation: no row lost or duplicated on the way.
  Fails with one row per group whose counts differ. With `within_retention`, only the groups
  of `compare_to` the warehouse keeps count (group_by is then the `dt` day: retention_start);
  the model's every group still does, so a day the warehouse should have let go fails it.
#}
{% test reconciles_with(model, compare_to, group_by, within_retention=false) %}
with expected as (
    select {{ group_by }} as grp, count(*) as n from {{ compare_to }}
    {% if within_retention %}where cast({{ group_by }} as date) >= {{ retention_start() }}{% endif %}
    group by {{ group_by }}
),

actual as (
    select {{ group_by }} as grp, count(*) as n from {{ model }} group by {{ group_by }}
)

select
    coalesce(e.grp, a.grp) as grp,
    coalesce(e.n, 0) as expected_rows,
    coalesce(a.n, 0) as actual_rows
from expected as e
full outer join actual as a on e.grp = a.grp
where coalesce(e.n, 0) <> coalesce(a.n, 0)
{% endtest %}
