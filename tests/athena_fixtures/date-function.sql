-- date-function: every line marked `fires` must fire, and no other line.
select
    date_add('day', joined, 7) as swapped,  -- fires: date-function
    date_add('day', rate, joined) as fractional_amount,  -- fires: date-function
    date_add('hour', 1, joined) as hours_to_a_date,  -- fires: date-function
    date_trunc('days', joined) as plural_unit,  -- fires: date-function
    date_diff('month', joined, cast(seen_at as date)) as months_between,  -- fires: date-function
    date_diff('day', seen_at, seen_at) as days_between_timestamps,  -- fires: date-function
    extract(dow from joined) as weekday_number,  -- fires: date-function
    date_add('day', -7, joined) as week_before,
    date_diff('day', joined, date '2026-12-31') as days_left,
    date_diff('month', date_trunc('month', joined), date_trunc('month', cast(seen_at as date))) as aligned,
    day_of_week(joined) as iso_weekday,
    date_trunc('week', seen_at) as week_start
from awsdatacatalog.fixtures.members
