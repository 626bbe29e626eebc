"""Benchmark: `peak ingest` + `peak transform` against DuckDB's plain CSV -> Parquet conversion.

For each size (about 1M and 10M check-ins by default) the script generates sample exports once
(cached under bench/out/), then, ``--repeat`` times each, measures in the same run:

- reference: DuckDB converting the same CSV files to Parquet, nothing else (one COPY per dataset)
- duckdb:    `peak ingest` + `peak transform --engine duckdb` into a fresh lake (the local default,
             Great Expectations included)
- spark:     the same with `--engine spark` (``--no-spark`` skips it)

Each measured command runs in its own process; peak memory is the largest resident set of any
of them (``wait4``'s ru_maxrss, children included). It prints medians and the ratio to the
reference, and writes them to bench/out/transform.json. This is a benchmark, not a test: it
asserts nothing and is never part of `make test`.

    .venv/bin/python bench/transform.py                    # 1M and 10M check-ins, 3 repeats
    .venv/bin/python bench/transform.py --sizes 1m --repeat 5
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


REFERENCE = """
import duckdb, sys
data, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
for ds in ("members", "classes", "attendance"):
    con.execute(
        f"COPY (SELECT * FROM read_csv('{data}/{ds}_*.csv')) TO '{out}/{ds}.parquet' "
        "(FORMAT parquet)"
    )
"""


def reference(data: Path) -> tuple[float, int]:
    target = OUT / "reference"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return run([sys.executable, "-c", REFERENCE, str(data), str(target)])


def pipeline(data: Path, engine: str) -> tuple[float, int]:
    lake = OUT / f"lake-{engine}"
    shutil.rmtree(lake, ignore_errors=True)
    env = {"PEAK_LAKE": str(lake), "PEAK_PROGRESS": ""}
    t1, m1 = run([str(BIN / "peak"), "ingest", str(data), "--date", END_DATE], env)
    t2, m2 = run([str(BIN / "peak"), "transform", "--engine", engine], env)
    return t1 + t2, max(m1, m2)


def rows(data: Path) -> int:
    import duckdb

    return duckdb.sql(f"SELECT COUNT(*) FROM read_csv('{data}/attendance_*.csv')").fetchall()[0][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,10m", help="comma list of: " + ", ".join(SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark engine")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for label in args.sizes.split(","):
        data = generate(label)
        n = rows(data)
        engines = ["duckdb"] + ([] if args.no_spark else ["spark"])
        timings: dict[str, list[float]] = {"reference": [], **{e: [] for e in engines}}
        memory: dict[str, int] = dict.fromkeys(timings, 0)
        for i in range(args.repeat):
            for name in timings:  # interleaved, so drift hits every engine alike
                seconds, rss = reference(data) if name == "reference" else pipeline(data, name)
                timings[name].append(seconds)
                memory[name] = max(memory[name], rss)
                print(
                    f"  {label} run {i + 1}: {name:9s} {seconds:7.2f} s  {rss / 2**30:5.2f} GiB",
                    flush=True,
                )
        ref = statistics.median(timings["reference"])
        for name, values in timings.items():
            median = statistics.median(values)
            results.append(
                {
                    "size": label,
                    "check_ins": n,
                    "engine": name,
                    "median_s": round(median, 2),
                    "runs_s": [round(v, 2) for v in values],
                    "ratio": round(median / ref, 2),
                    "peak_rss_gib": round(memory[name] / 2**30, 2),
                }
            )
    print()
    print(
        f"{'size':>5} {'check-ins':>11} {'engine':>10} {'median s':>9} {'ratio':>6} {'peak GiB':>9}"
    )
    for r in results:
        print(
            f"{r['size']:>5} {r['check_ins']:>11,} {r['engine']:>10} {r['median_s']:>9.2f} "
            f"{r['ratio']:>5.2f}x {r['peak_rss_gib']:>9.2f}"
        )
    (OUT / "transform.json").write_text(json.dumps(results, indent=2))
    print("\nratio = median time / median time of DuckDB's plain CSV->Parquet (reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
