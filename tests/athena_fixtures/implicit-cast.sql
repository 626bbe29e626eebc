-- implicit-cast: every line marked `fires` must fire, and no other line.
select
    joined > '2026-01-01' as after_new_year,  -- fires: implicit-cast
    visits = code as same_code,  -- fires: implicit-cast
    coalesce(label, visits) as label_or_visits,  -- fires: implicit-cast
    case when visits > 0 then label else visits end as mixed_case,  -- fires: implicit-cast
    label || visits as concatenated,  -- fires: implicit-cast
    joined between '2026-01-01' and date '2026-12-31' as in_year,  -- fires: implicit-cast
    visits in ('1', '2') as listed,  -- fires: implicit-cast
    joined > date '2026-01-01' as typed_literal,
    label || cast(visits as varchar) as cast_first,
    coalesce(label, 'none') as same_types
from awsdatacatalog.fixtures.members
