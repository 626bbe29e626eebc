"""Benchmark: the dashboard's time to first render of each page, and a cached re-run.

Timed with Streamlit's ``AppTest`` (the script run on the server side: every query, every lake
read, pandas and Altair, building the page's elements; not the websocket or the browser's
drawing), in this process, on two warehouses:

- ``demo``: the demo lake (``make demo``: ~5,000 members, a year, ~0.5M check-ins), read only;
- ``10x``:  ten times that (~50,000 members x 365 days, ~5M check-ins), generated and run
            through ``peak run`` once into bench/out/dashboard-10x/ (cached).

For each page, ``--repeat`` times each:

- first:     a fresh ``AppTest`` opened straight on the page with every Streamlit cache cleared
             (warm process: imports done, as on a running server);
- cached:    on that app, pick one gym, then go back to every gym: the second change is timed,
             its results all come from ``st.cache_data``;
- reference: the same SQL the page ran (recorded during its first render), replayed directly on
             one DuckDB connection to the same warehouse file, plus the same lake files read and
             parsed (run reports, quality results): the data work without Streamlit.

The leaderboard page reads Redis: the boards are published once per warehouse by the
leaderboard sink into a private ``redis-server`` (started on a free port, no persistence,
stopped at the end) or ``--redis-url`` under a ``peak-bench:*`` prefix removed afterwards;
``leaderboard (fallback)`` is the same page with Redis unreachable (reading the mart).

It prints medians (ms) and each page's ratio to its reference, and writes them to
bench/out/dashboard.json. Targets at demo size: first render under 1 s a page, cached re-run
under 100 ms. This is a benchmark, not a test.

    .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --sizes demo --repeat 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import duckdb  # noqa: E402
import redis  # noqa: E402

from activation.base import SinkContext  # noqa: E402
from activation.leaderboard import LeaderboardSink  # noqa: E402
from peak.core.lake import Lake  # noqa: E402
from peak.core.report import new_run_id  # noqa: E402
from peak.core.settings import LeaderboardSettings, RedisSettings, Settings  # noqa: E402
from peak.model.warehouse import DuckDBWarehouse, serving_path  # noqa: E402
from tests.redis_server import delete_prefix, free_port, private_server  # noqa: E402

APP = ROOT / "dashboard" / "app.py"
PAGES = ("overview", "leaderboard", "locations", "classes", "retention", "quality", "activation")
FALLBACK = "leaderboard (fallback)"
DEMO_LAKE = ROOT / "lake"
TEN_X = OUT / "dashboard-10x"
TEN_X_MEMBERS, TEN_X_DAYS = 50_000, 365
FIRST_TARGET_S, CACHED_TARGET_S = 1.0, 0.1


# ---------------------------------------------------------------------------------------------
# The warehouses
# ---------------------------------------------------------------------------------------------


def peak(*args: str, env: dict[str, str] | None = None) -> None:
    cmd = [sys.executable, "-c", "from peak.cli import app; app(prog_name='peak')", *args]
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): peak {' '.join(args)}")


def ten_x_lake() -> Path:
    """~50k members x 365 days through the whole pipeline, once (bench/out/dashboard-10x)."""
    lake = TEN_X / "lake"
    if (TEN_X / ".done").exists() and serving_path(Lake.from_uri(str(lake))).exists():
        return lake
    shutil.rmtree(TEN_X, ignore_errors=True)
    data = TEN_X / "data"
    started = time.perf_counter()
    print(f"generating {TEN_X_MEMBERS:,} members x {TEN_X_DAYS} days…", flush=True)
    env = {"PEAK_LAKE": str(lake)}  # the run reports go to this lake, never the demo's
    peak(
        "generate", "--out", str(data), "--members", str(TEN_X_MEMBERS),
        "--days", str(TEN_X_DAYS), "--dirty-rate", "0.002", env=env,
    )  # fmt: skip
    print("peak run (ingest, transform, dbt build; no activation)…", flush=True)
    peak("run", "--input", str(data), "--no-activate", env=env)
    (TEN_X / ".done").write_text(f"{time.perf_counter() - started:.0f} s\n")
    return lake


def check_ins(lake: Path) -> int:
    con = duckdb.connect(str(serving_path(Lake.from_uri(str(lake)))), read_only=True)
    try:
        return con.execute("select count(*) from fct_attendance").fetchone()[0]
    finally:
        con.close()


def publish_leaderboard(lake: Path, url: str, prefix: str) -> None:
    """The leaderboard sink, as ``peak activate leaderboard`` runs it (Redis only)."""
    settings = Settings(
        redis=RedisSettings(url=url), leaderboard=LeaderboardSettings(prefix=prefix)
    )
    root = Lake.from_uri(str(lake))
    ctx = SinkContext(root, DuckDBWarehouse(serving_path(root)), new_run_id(), dry_run=False)
    result = LeaderboardSink(settings).run(ctx)
    if result.status != "ok":
        raise SystemExit(f"leaderboard publish failed: {result.error}")


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


class Recorder:
    """Records the warehouse queries and lake reads of whatever runs while it is installed."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, str, list[Any]]] = []
        self.reads: list[Path] = []

    @contextmanager
    def installed(self) -> Iterator[Recorder]:
        query, read_bytes = DuckDBWarehouse.query, Lake.read_bytes
        recorder = self

        def recording_query(self: DuckDBWarehouse, sql: str, params: Any = ()) -> Any:
            recorder.queries.append((str(self.path), sql, list(params)))
            return query(self, sql, params)

        def recording_read(self: Lake, key: str) -> bytes:
            recorder.reads.append(self.path(key))
            return read_bytes(self, key)

        DuckDBWarehouse.query = recording_query  # type: ignore[method-assign]
        Lake.read_bytes = recording_read  # type: ignore[method-assign]
        try:
            yield self
        finally:
            DuckDBWarehouse.query = query  # type: ignore[method-assign]
            Lake.read_bytes = read_bytes  # type: ignore[method-assign]

    def replay(self) -> float:
        """The same work without Streamlit: one DuckDB connection per file, the same reads."""
        started = time.perf_counter()
        connections: dict[str, Any] = {}
        for path, sql, params in self.queries:
            con = connections.get(path) or connections.setdefault(
                path, duckdb.connect(path, read_only=True)
            )
            con.sql(sql, params=params or None).to_arrow_table()
        for con in connections.values():
            con.close()
        for path in self.reads:
            json.loads(path.read_bytes())
        return time.perf_counter() - started


def clear_caches() -> None:
    import streamlit as st

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # "no runtime found": AppTest's own
    st.cache_data.clear()
    st.cache_resource.clear()


def app_on(page: str) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.switch_page(f"views/{page}.py")
    return at


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def checked(at: Any, page: str) -> None:
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].value}")


def measure_page(page: str, repeat: int) -> dict[str, Any]:
    script = page.split()[0]
    first, cached, reference = [], [], []
    for _ in range(repeat):
        clear_caches()
        at = app_on(script)
        recorder = Recorder()
        with recorder.installed():
            first.append(timed(at.run))
        checked(at, page)
        reference.append(min(recorder.replay() for _ in range(3)))
        gyms = at.sidebar.multiselect(key="locations")
        gyms.set_value(list(gyms.options[:1]))
        at.run()
        at.sidebar.multiselect(key="locations").set_value([])
        cached.append(timed(at.run))
        checked(at, page)
    out = {
        "first_s": statistics.median(first),
        "cached_s": statistics.median(cached),
        "reference_s": statistics.median(reference),
        "queries": len(recorder.queries),
        "lake_reads": len(recorder.reads),
        "runs": {"first": first, "cached": cached, "reference": reference},
    }
    out["ratio"] = out["first_s"] / out["reference_s"] if out["reference_s"] else None
    return out


def streamlit_floor(repeat: int) -> float:
    """AppTest's own cost: a page holding one title."""
    from streamlit.testing.v1 import AppTest

    runs = []
    for _ in range(repeat):
        at = AppTest.from_string("import streamlit as st\nst.title('x')")
        runs.append(timed(at.run))
    return statistics.median(runs)


def measure(label: str, lake: Path, redis_url: str, repeat: int) -> dict[str, Any]:
    prefix = f"peak-bench:{uuid.uuid4().hex[:8]}:leaderboard"
    print(f"\n{label}: {lake} ({check_ins(lake):,} check-ins)", flush=True)
    publish_leaderboard(lake, redis_url, prefix)
    env = {
        "PEAK_LAKE": str(lake),
        "PEAK_DBT_TARGET": "local",
        "REDIS_URL": redis_url,
        "PEAK_LEADERBOARD_PREFIX": prefix,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    pages: dict[str, Any] = {}
    try:
        for page in PAGES:
            pages[page] = measure_page(page, repeat)
            report_line(page, pages[page])
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens
        pages[FALLBACK] = measure_page(FALLBACK, repeat)
        report_line(FALLBACK, pages[FALLBACK])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        client = redis.Redis.from_url(redis_url)
        delete_prefix(client, prefix)
        client.close()
    return {"lake": str(lake), "check_ins": check_ins(lake), "pages": pages}


def report_line(page: str, m: dict[str, Any]) -> None:
    ratio = f"{m['ratio']:.1f}x" if m["ratio"] else "-"
    print(
        f"  {page:<24} first {m['first_s'] * 1000:7.0f} ms   cached {m['cached_s'] * 1000:6.0f} ms"
        f"   reference {m['reference_s'] * 1000:6.1f} ms ({m['queries']} queries, "
        f"{m['lake_reads']} files)   ratio {ratio}",
        flush=True,
    )


def summary(results: dict[str, Any], floor: float) -> None:
    print(
        f"\nAppTest floor (a fresh app holding one title): {floor * 1000:.0f} ms; "
        "'own' is a first render less that floor"
    )
    head = "first / cached / reference ms, ratio (own ratio)"
    print(f"\n{'page':<24}" + "".join(f"{label:>52}" for label in results))
    print(f"{'':<24}" + "".join(f"{head:>52}" for _ in results))
    for page in (*PAGES, FALLBACK):
        cells = []
        for r in results.values():
            m = r["pages"][page]
            own = max(m["first_s"] - floor, 0.0) / m["reference_s"]
            cells.append(
                f"{m['first_s'] * 1000:.0f} / {m['cached_s'] * 1000:.0f} / "
                f"{m['reference_s'] * 1000:.1f}, {m['ratio']:.1f}x ({own:.1f}x)"
            )
        print(f"{page:<24}" + "".join(f"{c:>52}" for c in cells))
    if "demo" in results:
        pages = results["demo"]["pages"].values()
        slow = max(m["first_s"] for m in pages)
        slow_cached = max(m["cached_s"] for m in pages)
        print(
            f"\ndemo targets: slowest first render {slow * 1000:.0f} ms "
            f"({'met' if slow < FIRST_TARGET_S else 'NOT met'}: < {FIRST_TARGET_S * 1000:.0f} ms), "
            f"slowest cached re-run {slow_cached * 1000:.0f} ms "
            f"({'met' if slow_cached < CACHED_TARGET_S else 'NOT met'}: "
            f"< {CACHED_TARGET_S * 1000:.0f} ms)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="demo,10x", help="comma list of: demo, 10x")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--redis-url", help="a Redis to publish into (default: a private one)")
    parser.add_argument("--prepare", action="store_true", help="only build the 10x lake")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    lakes: dict[str, Path] = {}
    for size in sizes:
        if size == "demo":
            if not serving_path(Lake.from_uri(str(DEMO_LAKE))).exists():
                raise SystemExit(f"no demo warehouse in {DEMO_LAKE}: run `make demo` first")
            lakes[size] = DEMO_LAKE
        elif size == "10x":
            lakes[size] = ten_x_lake()
        else:
            raise SystemExit(f"unknown size {size!r}")
    if args.prepare:
        return 0
    results: dict[str, Any] = {}
    with private_server(args.redis_url) as url:
        floor = streamlit_floor(args.repeat)
        for size, lake in lakes.items():
            results[size] = measure(size, lake, url, args.repeat)
    summary(results, floor)
    OUT.mkdir(exist_ok=True)
    out = OUT / "dashboard.json"
    out.write_text(json.dumps({"apptest_floor_s": floor, **results}, indent=2, default=str))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
