"""Benchmark: `peak prune` against bare deletions of the same files.

Builds (once, cached under bench/out/) a lake of many small files laid out as the platform lays
them out: for every dataset and day, ``--files`` raw exports, their raw Parquet and quarantine
rows, and one processed partition; every raw id is in the transform ledger (all processed), and
every file's mtime is its key's date. Then, ``--repeat`` times each on a fresh copy (the copy is
not timed), it measures in the same run:

- ``peak prune``:     the command, in its own process (interpreter start and imports included)
- ``prune()``:        the library call in-process (what the command spends pruning)
- ``walk+unlink``:    a bare Python ``os.walk`` that parses each folder's date, unlinks expired
                      files and removes the emptied folder (the same rules, no ledger check,
                      no report)
- ``find -delete``:   ``find <zone> -type f -mtime +DAYS -delete`` per zone (by mtime), then
                      ``find <zone> -mindepth 2 -type d -empty -delete``

Every method leaves no emptied partition folder behind, as ``peak prune`` does.

and prints medians, ratios to ``walk+unlink`` and to ``find``, and files removed (each method
must remove the same number), writing bench/out/prune.json. A benchmark, not a test.

    .venv/bin/python bench/prune.py                       # 3 datasets x 730 days x 4 files
    .venv/bin/python bench/prune.py --days 365 --files 2 --repeat 5
    .venv/bin/python bench/prune.py --root /dev/shm/peak-bench   # in memory: no disk noise
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(REPO))

from peak.core import layout, ledger  # noqa: E402
from peak.core.lake import Lake  # noqa: E402
from peak.ops import prune  # noqa: E402

DATASETS = ("members", "classes", "attendance")

PEAK = """
import sys
from peak.cli import app
app(args=sys.argv[1:], prog_name="peak")
"""

WALK = r"""
import datetime as dt, os, re, sys
root, as_of = sys.argv[1], dt.date.fromisoformat(sys.argv[2])
keep = {"raw": 30, "raw_parquet": 30, "processed": 365, "quarantine": 90}
dated = re.compile(r"=(\d{4}-\d{2}-\d{2})$")
removed = 0
for zone, days in keep.items():
    for folder, _dirs, files in os.walk(os.path.join(root, zone)):
        match = dated.search(folder)
        if match and (as_of - dt.date.fromisoformat(match.group(1))).days > days:
            for name in files:
                os.unlink(os.path.join(folder, name))
                removed += 1
            os.rmdir(folder)  # like prune: no empty partition folders left behind
print(removed)
"""


def build(base: Path, days: int, files: int, end: dt.date) -> Path:
    """The template lake (cached under ``base``): returns its path."""
    root = base / f"prune-lake-{days}d-{files}f-{end}"
    if (root / ".done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    lake = Lake.from_uri(str(root))
    print(f"building {root.name}…", flush=True)
    payload = b"x" * 256
    for dataset in DATASETS:
        ids = []
        for offset in range(days):
            day = end - dt.timedelta(days=offset)
            stamp = dt.datetime.combine(day, dt.time(6)).replace(tzinfo=dt.UTC).timestamp()
            keys = [layout.processed_key(dataset, day.isoformat())]
            for n in range(files):
                raw_id = f"{dataset[:3]}{offset:05d}{n:03d}".ljust(64, "0")
                ids.append(raw_id)
                keys += [
                    layout.raw_key(dataset, day.isoformat(), raw_id, "csv"),
                    layout.raw_parquet_key(dataset, day.isoformat(), raw_id),
                    layout.quarantine_rows_key(dataset, day.isoformat(), raw_id),
                ]
            for key in keys:
                path = lake.path(key)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(payload)
                os.utime(path, (stamp, stamp))
        ledger.mark_processed(lake, dataset, set(ids), "bench")
    (root / ".done").touch()
    return root


def fresh(template: Path) -> Path:
    target = template.parent / "prune-run"
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-a", str(template), str(target)], check=True)
    os.sync()  # the copy's writeback must not land inside the next measurement
    return target


def count(root: Path) -> int:
    return sum(len(f) for _d, _s, f in os.walk(root))


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    removed = fn()
    return time.perf_counter() - start, removed


def run_peak(lake: Path, as_of: str) -> int:
    env = {**os.environ, "PEAK_LAKE": str(lake), "PEAK_PROGRESS": ""}
    subprocess.run(
        [sys.executable, "-c", PEAK, "prune", "--as-of", as_of],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    (report,) = (lake / "_runs").glob("*.json")  # the command's run report says what it did
    return json.loads(report.read_text())["stages"]["prune"]["files"]


def run_library(lake: Path, as_of: str) -> int:
    return prune.prune(Lake.from_uri(str(lake)), as_of=dt.date.fromisoformat(as_of)).files


def run_walk(lake: Path, as_of: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", WALK, str(lake), as_of], check=True, capture_output=True, text=True
    )
    return int(done.stdout.strip())


def run_find(lake: Path, as_of: str) -> int:
    # find's -mtime +N means "more than N+1 days old" counted from now: shift by the days
    # between now and as_of so the same files match.
    shift = (dt.datetime.now(dt.UTC).date() - dt.date.fromisoformat(as_of)).days
    before = count(lake)
    for zone, days in (("raw", 30), ("raw_parquet", 30), ("quarantine", 90), ("processed", 365)):
        subprocess.run(
            ["find", str(lake / zone), "-type", "f", "-mtime", f"+{days + shift}", "-delete"],
            check=True,
        )
        # like prune: remove the partition folders that emptied
        subprocess.run(
            ["find", str(lake / zone), "-mindepth", "2", "-type", "d", "-empty", "-delete"],
            check=True,
        )
    return before - count(lake)


METHODS = {
    "peak prune": run_peak,
    "prune()": run_library,
    "walk+unlink": run_walk,
    "find -delete": run_find,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=730, help="days of history per dataset")
    parser.add_argument("--files", type=int, default=4, help="exports per dataset and day")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--root",
        type=Path,
        default=OUT,
        help="where the lakes are built: bench/out (disk), or /dev/shm to leave disk writeback "
        "out of the measurement",
    )
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    args.root.mkdir(parents=True, exist_ok=True)
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    template = build(args.root, args.days, args.files, end)
    total = count(template) - 1  # .done
    as_of = end.isoformat()
    timings: dict[str, list[float]] = {name: [] for name in METHODS}
    removed: dict[str, set[int]] = {name: set() for name in METHODS}
    for i in range(args.repeat):
        for name, method in METHODS.items():  # interleaved, so drift hits every method alike
            lake = fresh(template)
            seconds, n = timed(lambda method=method, lake=lake: method(lake, as_of))
            timings[name].append(seconds)
            removed[name].add(n)
            print(f"  run {i + 1}: {name:13s} {seconds:7.3f} s  {n:,} files", flush=True)
    shutil.rmtree(template.parent / "prune-run", ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    results = [
        {
            "method": name,
            "median_s": round(median, 3),
            "runs_s": [round(v, 3) for v in timings[name]],
            "files_removed": sorted(removed[name]),
            "vs_walk": round(median / medians["walk+unlink"], 2),
            "vs_find": round(median / medians["find -delete"], 2),
        }
        for name, median in medians.items()
    ]
    print(f"\nlake: {total:,} files ({args.days} days x {len(DATASETS)} datasets); as of {as_of}")
    print(f"{'method':>14} {'median s':>9} {'removed':>9} {'vs walk':>8} {'vs find':>8}")
    for r in results:
        print(
            f"{r['method']:>14} {r['median_s']:>9.3f} {max(r['files_removed']):>9,} "
            f"{r['vs_walk']:>7.2f}x {r['vs_find']:>7.2f}x"
        )
    (OUT / "prune.json").write_text(
        json.dumps(
            {"files": total, "days": args.days, "root": str(args.root), "results": results},
            indent=2,
        )
    )
    print("\nratio = median time / median time of the reference (same files removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
