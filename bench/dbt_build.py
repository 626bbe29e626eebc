"""Benchmark: `peak build` (dbt on DuckDB) at about 1M and 10M check-ins.

For each size the script reuses bench/transform.py's cached sample (a year of exports), lands and
transforms every file except the last day's check-ins into a base lake (once, cached), then,
``--repeat`` times each, measures in the same run:

- full:      `peak build --full-refresh` on a copy of the base lake (a year of history)
- daily:     the last day's check-ins landed and transformed on a copy of the fully built lake,
             then `peak build` (the incremental daily run: only changed days are rebuilt)
- reference: DuckDB building the same fact table by hand from the processed Parquet (one
             CREATE TABLE AS with the joins), full and for the last day only

It prints medians, the ratio of each to its reference, and the ratio of the 10M daily run to the
1M one (target: within 1.5x, the daily cost follows the day's data, not the history). Results
go to bench/out/dbt_build.json. A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/dbt_build.py                 # 1M and 10M, 3 repeats
    .venv/bin/python bench/dbt_build.py --sizes 1m --repeat 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from transform import BIN, END_DATE, OUT, SIZES, generate, run  # noqa: E402

LAST_DAY_FILE = f"attendance_{END_DATE}.csv"

REFERENCE = """
import duckdb, sys
lake, day = sys.argv[1], sys.argv[2]
where = f"where a.dt = date '{day}'" if day != "all" else ""
con = duckdb.connect()
con.execute(f'''
create table fct as
with m as (select * from read_parquet('{lake}/processed/members/*/*.parquet',
                                      hive_partitioning = true)
           qualify row_number() over (partition by user_id order by dt desc, updated_at desc) = 1),
     c as (select * from read_parquet('{lake}/processed/classes/*/*.parquet',
                                      hive_partitioning = true)
           qualify row_number() over (partition by class_id order by dt desc) = 1)
select a.*, c.location, c.class_name, c.instructor, m.location as home_location,
       isodow(a.checked_in_at) as weekday, extract(hour from a.checked_in_at) as hour
from read_parquet('{lake}/processed/attendance/*/*.parquet', hive_partitioning = true) a
left join c using (class_id) left join m using (user_id) {where}''')
"""


def peak(lake: Path, *args: str) -> float:
    env = {"PEAK_LAKE": str(lake), "PEAK_PROGRESS": ""}
    seconds, _ = run([str(BIN / "peak"), *args], env)
    return seconds


def copy_lake(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "_dbt", ignore_errors=True)  # dbt's state holds absolute paths
    return dst


def base_lake(label: str, data: Path) -> Path:
    """Every export but the last day's check-ins, ingested and transformed (cached)."""
    base = OUT / f"dbt-base-{label}"
    if (base / ".done").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    inbox = OUT / f"dbt-inbox-{label}"
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir(parents=True)
    for path in data.iterdir():
        if path.suffix in (".csv", ".json") and path.name != LAST_DAY_FILE:
            (inbox / path.name).symlink_to(path)
    print(f"preparing the {label} base lake…", flush=True)
    peak(base, "ingest", str(inbox))
    peak(base, "transform", "--no-quality")
    (base / ".done").touch()
    return base


def built_lake(label: str, base: Path) -> Path:
    """The base lake after one full build (cached): the starting point of the daily runs."""
    built = OUT / f"dbt-built-{label}"
    if (built / ".done").exists():
        return built
    copy_lake(base, built)
    peak(built, "build", "--as-of", END_DATE)
    (built / ".done").touch()
    return built


def full(label: str, base: Path) -> float:
    lake = copy_lake(base, OUT / f"dbt-full-{label}")
    return peak(lake, "build", "--full-refresh", "--as-of", END_DATE)


def daily(label: str, built: Path, data: Path) -> float:
    lake = copy_lake(built, OUT / f"dbt-daily-{label}")
    inbox = OUT / f"dbt-day-{label}"
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir()
    (inbox / LAST_DAY_FILE).symlink_to(data / LAST_DAY_FILE)
    peak(lake, "ingest", str(inbox))
    peak(lake, "transform", "--no-quality")
    return peak(lake, "build", "--as-of", END_DATE)


def reference(lake: Path, day: str) -> float:
    start = time.perf_counter()
    run([sys.executable, "-c", REFERENCE, str(lake), day])
    return time.perf_counter() - start


def fact_rows(lake: Path) -> int:
    import duckdb

    sql = f"select count(*) from read_parquet('{lake}/processed/attendance/*/*.parquet')"
    return duckdb.sql(sql).fetchall()[0][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,10m", help="comma list of: " + ", ".join(SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for label in args.sizes.split(","):
        data = generate(label)
        base = base_lake(label, data)
        built = built_lake(label, base)
        times: dict[str, list[float]] = {"full": [], "ref_full": [], "daily": [], "ref_day": []}
        for i in range(args.repeat):
            times["full"].append(full(label, base))
            times["ref_full"].append(reference(base, "all"))
            times["daily"].append(daily(label, built, data))
            times["ref_day"].append(reference(base, END_DATE))
            print(
                f"  {label} run {i + 1}: "
                + "  ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                flush=True,
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        results[label] = {
            "check_ins": fact_rows(base),
            "median_s": {k: round(v, 2) for k, v in med.items()},
            "runs_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
            "full_ratio": round(med["full"] / med["ref_full"], 2),
            "daily_ratio": round(med["daily"] / med["ref_day"], 2),
        }
    print()
    print(f"{'size':>5} {'history':>11} {'full s':>8} {'ratio':>7} {'daily s':>8} {'ratio':>7}")
    for label, r in results.items():
        m = r["median_s"]
        print(
            f"{label:>5} {r['check_ins']:>11,} {m['full']:>8.2f} {r['full_ratio']:>6.1f}x "
            f"{m['daily']:>8.2f} {r['daily_ratio']:>6.1f}x"
        )
    if {"1m", "10m"} <= set(results):
        growth = results["10m"]["median_s"]["daily"] / results["1m"]["median_s"]["daily"]
        print(f"\ndaily run, 10M history / 1M history: {growth:.2f}x (target <= 1.5x)")
        results["daily_growth_10m_over_1m"] = round(growth, 2)
    print("ratio = median `peak build` / median hand-written DuckDB fact build (same run)")
    (OUT / "dbt_build.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
