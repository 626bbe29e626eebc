"""Benchmark: `peak ingest` + `peak transform` against the floor of the same work, in two shapes.

For each size (1M and 10M check-ins by default) the script generates a year of daily exports
once (cached under bench/out/) and, from them, the same check-ins as one backfill file. For each
shape (``daily``: 365 daily files; ``backfill``: a year in one export) it measures, ``--repeat``
times each, interleaved, in the same run:

- floor:  ``bench/transform_floor.py``, the design's two passes done bare in DuckDB (hash, copy
          and CSV -> text Parquet; then typed, validated, de-duplicated, partitioned Parquet)
- duckdb: `peak ingest` + `peak transform --engine duckdb` into a fresh lake (the local default,
          Great Expectations included)
- spark:  the same with `--engine spark` (``--spark`` adds it; slow on 2 cores)

Each measured command runs in its own process; peak memory is the largest resident set of any
of them (``wait4``'s ru_maxrss, children included). It prints medians, the ratio to the floor
and, for Spark, the per-row costs from which docs/performance.md extrapolates the day size at
which Glue's Spark job pays (extrapolated: there is no Glue here). It writes
bench/out/transform.json. This is a benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/transform.py                      # 1M and 10M, 3 repeats
    .venv/bin/python bench/transform.py --sizes 1m --repeat 3 --spark
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
#: size label -> members; the generator produces about 100 check-ins per member-year.
SIZES = {"100k": 1_000, "1m": 10_000, "10m": 100_000}
END_DATE = "2026-11-24"


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run a command; return (seconds, peak RSS in bytes of it and its children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    return seconds, usage.ru_maxrss * 1024


def generate(label: str) -> Path:
    data = OUT / f"data-{label}"
    if (data / ".done").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    print(f"generating {label} check-ins ({SIZES[label]:,} members, 365 days)…", flush=True)
    cmd = [
        str(BIN / "peak"),
        "generate",
        "--out",
        str(data),
        "--members",
        str(SIZES[label]),
        "--days",
        "365",
        "--seed",
        "7",
        "--end-date",
        END_DATE,
    ]
    run(cmd, {"PEAK_LAKE": str(OUT / "scratch-lake")})
    (data / ".done").touch()
    return data


FLOOR = HERE / "transform_floor.py"


def backfill(data: Path) -> Path:
    """The same exports with the year's check-ins in one file (what a chain sends on day one)."""
    out = data.with_name(data.name + "-backfill")
    if (out / ".done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    days = sorted(data.glob("attendance_*.csv"))
    with open(out / f"attendance_{END_DATE}.csv", "wb") as dst:
        for i, src in enumerate(days):
            with open(src, "rb") as fh:
                if i:
                    fh.readline()  # the header, once
                shutil.copyfileobj(fh, dst, 16 << 20)
    for src in data.glob("*.csv"):
        if not src.name.startswith("attendance_"):
            shutil.copyfile(src, out / src.name)
    (out / ".done").touch()
    return out


#: DuckDB's memory cap for every measured process (PEAK_DUCKDB_MEMORY_LIMIT; --memory-limit).
MEMORY = {"limit": "1GB"}


def floor(data: Path) -> tuple[float, int]:
    cmd = [sys.executable, str(FLOOR), str(data), str(OUT / "floor"), MEMORY["limit"]]
    return run(cmd)


def pipeline(data: Path, engine: str) -> tuple[float, int]:
    lake = OUT / f"lake-{engine}"
    shutil.rmtree(lake, ignore_errors=True)
    env = {"PEAK_LAKE": str(lake), "PEAK_PROGRESS": "", "PEAK_DUCKDB_MEMORY_LIMIT": MEMORY["limit"]}
    t1, m1 = run([str(BIN / "peak"), "ingest", str(data), "--date", END_DATE], env)
    t2, m2 = run([str(BIN / "peak"), "transform", "--engine", engine], env)
    return t1 + t2, max(m1, m2)


def rows(data: Path) -> int:
    import duckdb

    return duckdb.sql(f"SELECT COUNT(*) FROM read_csv('{data}/attendance_*.csv')").fetchall()[0][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,10m", help="comma list of: " + ", ".join(SIZES))
    parser.add_argument("--shapes", default="daily,backfill", help="daily, backfill")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spark", action="store_true", help="also the Spark engine")
    parser.add_argument(
        "--memory-limit", default="1GB", help="DuckDB's cap, floor and pipeline alike"
    )
    args = parser.parse_args(argv)
    MEMORY["limit"] = args.memory_limit
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for label in args.sizes.split(","):
        daily = generate(label)
        n = rows(daily)
        for shape in args.shapes.split(","):
            data = daily if shape == "daily" else backfill(daily)
            engines = ["duckdb"] + (["spark"] if args.spark else [])
            timings: dict[str, list[float]] = {"floor": [], **{e: [] for e in engines}}
            memory: dict[str, int] = dict.fromkeys(timings, 0)
            for i in range(args.repeat):
                for name in timings:  # interleaved, so drift hits every engine alike
                    seconds, rss = floor(data) if name == "floor" else pipeline(data, name)
                    timings[name].append(seconds)
                    memory[name] = max(memory[name], rss)
                    print(
                        f"  {label} {shape} run {i + 1}: {name:7s} {seconds:7.2f} s  "
                        f"{rss / 2**30:5.2f} GiB",
                        flush=True,
                    )
            ref = statistics.median(timings["floor"])
            for name, values in timings.items():
                median = statistics.median(values)
                results.append(
                    {
                        "size": label,
                        "shape": shape,
                        "check_ins": n,
                        "engine": name,
                        "median_s": round(median, 2),
                        "runs_s": [round(v, 2) for v in values],
                        "ratio": round(median / ref, 2),
                        "peak_rss_gib": round(memory[name] / 2**30, 2),
                        "us_per_check_in": round(median / n * 1e6, 3),
                    }
                )
    print()
    print(
        f"{'size':>5} {'shape':>9} {'check-ins':>11} {'engine':>7} {'median s':>9} "
        f"{'ratio':>6} {'peak GiB':>9} {'us/row':>7}"
    )
    for r in results:
        print(
            f"{r['size']:>5} {r['shape']:>9} {r['check_ins']:>11,} {r['engine']:>7} "
            f"{r['median_s']:>9.2f} {r['ratio']:>5.2f}x {r['peak_rss_gib']:>9.2f} "
            f"{r['us_per_check_in']:>7.3f}"
        )
    (OUT / "transform.json").write_text(json.dumps(results, indent=2))
    print("\nratio = median time / median time of the floor (bench/transform_floor.py), same run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
