-- unbounded-partition-scan: every line marked `fires` must fire, and no other line.
-- visits is partitioned by dt; visits_by_day is a view over it (dt renamed visit_day).
with recent as (
    select * from awsdatacatalog.fixtures.visits  -- fires: unbounded-partition-scan
    where local_date >= date '2026-11-01'
),

bounded as (
    select * from awsdatacatalog.fixtures.visits
    where local_date >= date '2026-11-01' and dt >= date '2026-10-31'
),

through_a_view as (
    select * from awsdatacatalog.fixtures.visits_by_day  -- fires: unbounded-partition-scan
),

bounded_through_a_view as (
    select * from awsdatacatalog.fixtures.visits_by_day
    where visit_day in (date '2026-11-01', date '2026-11-02')
),

nothing as (
    select * from awsdatacatalog.fixtures.visits
    where 1 = 0
),

partition_only as (
    select max(dt) as newest from awsdatacatalog.fixtures.visits
)

select user_id from recent
union all
select user_id from bounded
union all
select user_id from through_a_view
union all
select user_id from bounded_through_a_view
union all
select user_id from nothing
union all
select cast(newest as varchar) from partition_only
