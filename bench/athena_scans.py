"""Measurement: the bytes each full scan of the Athena check reads, at 10x the demo's volume.

The Athena check (docs/athena.md) accepts a few scans of a partitioned table that read every
partition (the incremental macros' comparisons, the latest member and class records); each is
listed once in dbt_project/athena_accepted_scans.yml with what it reads at 10x the demo's
volume. This script produces those figures: it generates a lake at that volume (the demo is
`make demo`: 5,000 members, a year; 10x is 50,000 members), lands, transforms and builds it
(cached under bench/out/), compiles the project for Athena as on the day after the build, and
for every unbounded scan sums the compressed bytes of the column chunks it reads
(peak.model.athena.cost): the processed zone's own files for a source, the local warehouse's
table written as Athena writes it for a model. It prints a table and writes
bench/out/athena_scans.json. A measurement, not a test: it asserts nothing.

    .venv/bin/python bench/athena_scans.py                    # 10x the demo: 50,000 members
    .venv/bin/python bench/athena_scans.py --members 5000     # the demo's volume
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peak.core.lake import Lake
from peak.model.athena import check, cost, project
from peak.model.athena.compare_rows import built_as_of

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
END_DATE = "2026-11-24"


def peak(lake: Path, *args: str) -> None:
    env = {"PEAK_LAKE": str(lake), "PATH": str(BIN)}
    started = time.monotonic()
    subprocess.run([str(BIN / "peak"), *args], env=env, check=True, capture_output=True)
    print(f"  peak {' '.join(args[:2])}: {time.monotonic() - started:,.0f} s", flush=True)


def built_lake(members: int, days: int) -> Path:
    """A lake generated, landed, transformed and built at this volume (cached)."""
    lake = OUT / f"athena-scans-{members}x{days}" / "lake"
    if (lake / ".done").exists():
        return lake
    exports = lake.parent / "exports"
    print(f"building a lake of {members:,} members over {days} days in {lake.parent}", flush=True)
    peak(lake, "generate", "--out", str(exports), "--members", str(members), "--days", str(days),
         "--dirty-rate", "0.002", "--end-date", END_DATE)  # fmt: skip
    peak(lake, "ingest", str(exports), "--date", END_DATE)
    peak(lake, "transform", "--no-quality")
    peak(lake, "build", "--as-of", END_DATE)
    (lake / ".done").write_text("built\n")
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000, help="10x the demo's 5,000")
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    lake = Lake.from_uri(str(built_lake(args.members, args.days)))
    compiled = project.compile_project(lake, vars={"as_of_date": built_as_of(lake)})
    try:
        result = check.check_project(compiled, accepted=[])
        scans: dict[tuple[str, str, str], set[str]] = {}
        for finding in result.findings:
            if finding.rule == check.UNBOUNDED_SCAN.name and finding.relation:
                query = "introspective" if finding.form == "introspective" else "model"
                scans.setdefault((finding.model, query, finding.relation), set()).update(
                    finding.columns
                )
        rows: list[dict[str, Any]] = [
            {
                "model": model,
                "query": query,
                "relation": relation,
                "columns": sorted(columns),
                "bytes": cost.scan_bytes(compiled, relation, columns),
            }
            for (model, query, relation), columns in sorted(scans.items())
        ]
    finally:
        compiled.close()
    print(f"\n{'model':28} {'query':14} {'reads':26} {'bytes':>14}  columns")
    for row in rows:
        print(f"{row['model']:28} {row['query']:14} {row['relation']:26} {row['bytes']:>14,}  "
              f"{', '.join(row['columns'])}")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    report = {"members": args.members, "days": args.days, "measured": time.strftime("%Y-%m-%d"),
              "scans": rows}  # fmt: skip
    (OUT / "athena_scans.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
