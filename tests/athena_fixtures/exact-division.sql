-- exact-division: every line marked `fires` must fire, and no other line.
select
    visits * 1.0 / weeks as decimal_rate,  -- fires: exact-division
    visits / weeks as truncated,  -- fires: exact-division
    amount / weeks as decimal_amount,  -- fires: exact-division
    cast(visits * 1.0 / weeks as double) as cast_too_late,  -- fires: exact-division
    cast(floor(visits * 1.0 / weeks) as bigint) as rounded_before_floor,  -- fires: exact-division
    cast(visits as double) / weeks as double_rate,
    rate / weeks as double_over_integer,
    cast((visits) / (weeks) as bigint) as explicit_quotient,
    cast(visits as double) / nullif(cast(weeks as double), 0) as ratio_macro
from awsdatacatalog.fixtures.members
