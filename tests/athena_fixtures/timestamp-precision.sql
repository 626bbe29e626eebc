-- timestamp-precision: every line marked `fires` must fire, and no other line.
select
    current_timestamp as loaded_at,  -- fires: timestamp-precision
    cast(seen_at as timestamp(6)) as microseconds,  -- fires: timestamp-precision
    cast('2026-01-01 10:00:00.123456' as timestamp) as literal_microseconds,  -- fires: timestamp-precision
    date_trunc('microsecond', seen_at) as truncated,  -- fires: timestamp-precision
    cast('2026-01-01 10:00:00.123' as timestamp) as literal_milliseconds,
    cast(seen_at as timestamp(3)) as milliseconds,
    date_trunc('second', seen_at) as to_the_second,
    cast(joined as timestamp) as midnight
from awsdatacatalog.fixtures.members
