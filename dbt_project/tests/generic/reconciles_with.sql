{#
  Row counts per group equal those of another relation: no row lost or duplicated on the way.
  Fails with one row per group whose counts differ. With `window_checked_in_at` (the check-in
  time column of `compare_to`, group_by then being its `dt` day), only the rows of `compare_to`
  the warehouse holds as of the as-of date count (in_warehouse_window); the model's every row
  still does, so a row the warehouse should have let go fails it.
#}
{% test reconciles_with(model, compare_to, group_by, window_checked_in_at=none) %}
with expected as (
    select {{ group_by }} as grp, count(*) as n from {{ compare_to }}
    {% if window_checked_in_at %}where {{ in_warehouse_window(group_by, window_checked_in_at) }}{% endif %}
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
