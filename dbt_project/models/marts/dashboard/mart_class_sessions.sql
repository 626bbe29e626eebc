-- One row per class session held: a class on a local day with at least one check-in. The grain
-- utilisation is computed from (see docs: utilisation), here for all time
-- (mart_class_utilisation) and by the dashboard for any period and gyms.
select
    f.class_id,
    f.local_date as session_date,
    c.location,
    c.capacity,
    count(*) as attendees
from {{ ref('fct_attendance') }} as f
inner join {{ ref('dim_classes') }} as c on f.class_id = c.class_id
group by f.class_id, f.local_date, c.location, c.capacity
