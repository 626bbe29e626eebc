"""Benchmark: the dashboard's speed as a manager feels it (Chromium), and per page in AppTest.

``--engine browser`` (the default) serves the app as ``peak dashboard`` does (``streamlit run``
on a free port over the lake) and drives Debian's Chromium (``/usr/bin/chromium``, headless,
through Playwright; never ``playwright install``). For each page and repeat, in a new tab (a
new session; the browser's HTTP cache kept, as a manager's browser keeps Streamlit's scripts):

- load:       navigation to the page's URL until its script run has finished (the server's
              ``script_finished`` message, read off the websocket) and the page is drawn: its
              heading visible, no "Running..." status, no skeleton, no stale element;
- navigation: a click on the page in the sidebar's navigation, until the same;
- filter:     one gym picked in the sidebar's filter, until the same.

The first pass (cold caches) is reported apart; the medians are over the others. The floor is
the same three steps on an app of two empty pages with one sidebar multiselect: what Streamlit
itself costs (page scripts, websocket, a rerun's round trip). The reference: the SQL and lake
reads the page ran (recorded in one AppTest render), replayed directly on DuckDB.

``--engine apptest`` times each page with Streamlit's ``AppTest`` (the script run on the server
side, in this process, not the websocket or the browser's drawing):

- first:     a fresh ``AppTest`` opened straight on the page with every Streamlit cache cleared
             (warm process: imports done, as on a running server);
- cached:    on that app, pick one gym, then go back to every gym: the second change is timed,
             its results all come from ``st.cache_data``;
- reference: the same SQL replayed, as above.

Two warehouses:

- ``demo``: the demo lake (``make demo``: ~5,000 members, a year, ~0.5M check-ins), read only;
- ``10x``:  ten times that (~50,000 members x 365 days, ~5M check-ins), generated and run
            through ``peak run`` once into bench/out/dashboard-10x/ (cached).

The leaderboard page reads Redis: the boards are published once per warehouse by the
leaderboard sink into a private ``redis-server`` (started on a free port, no persistence,
stopped at the end) or ``--redis-url`` under a ``peak-bench:*`` prefix removed afterwards;
AppTest also times ``leaderboard (fallback)``, the same page with Redis unreachable.

It prints medians (ms) and ratios to the reference, and writes them to bench/out/dashboard.json.
Targets in Chromium, at both sizes: full load under 1.5 s, navigation and filter change under
300 ms. This is a benchmark, not a test.

    .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --sizes demo --repeat 3
    .venv/bin/python bench/dashboard.py --engine both
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
from bench.dashboard_tab import Tab, served  # noqa: E402
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


def prepared(label: str, lake: Path, redis_url: str) -> dict[str, str]:
    """Announce ``lake``, publish its boards under a fresh prefix; the app's environment."""
    prefix = f"peak-bench:{uuid.uuid4().hex[:8]}:leaderboard"
    print(f"\n{label}: {lake} ({check_ins(lake):,} check-ins)", flush=True)
    publish_leaderboard(lake, redis_url, prefix)
    return {
        "PEAK_LAKE": str(lake),
        "PEAK_DBT_TARGET": "local",
        "REDIS_URL": redis_url,
        "PEAK_LEADERBOARD_PREFIX": prefix,
    }


def measure(label: str, lake: Path, redis_url: str, repeat: int) -> dict[str, Any]:
    env = prepared(label, lake, redis_url)
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
        delete_prefix(client, env["PEAK_LEADERBOARD_PREFIX"])
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


# ---------------------------------------------------------------------------------------------
# In a browser: `peak dashboard` served, headless Chromium driving it
# ---------------------------------------------------------------------------------------------

#: The navigation's pages: (url path, title shown as the page's heading); as dashboard/app.py.
BROWSER_PAGES = (
    ("", "Overview"),
    ("leaderboard", "Leaderboard"),
    ("locations", "Locations"),
    ("classes", "Classes and instructors"),
    ("retention", "Retention"),
    ("member", "Member"),
    ("quality", "Data quality"),
    ("activation", "Activation"),
)
CHROMIUM = Path("/usr/bin/chromium")
LOAD_TARGET_S, STEP_TARGET_S = 1.5, 0.3
#: The floor: an app of two pages, each a title, with one multiselect in the sidebar.
EMPTY_APP = """\
import streamlit as st

def page():
    st.title(st.session_state.get("_title", "Empty"))

nav = st.navigation([st.Page(page, title="Empty", url_path="empty", default=True),
                     st.Page(lambda: st.title("Other"), title="Other", url_path="other")])
st.sidebar.multiselect("Gyms", ["North", "South"], key="locations", placeholder="All gyms")
nav.run()
"""
EMPTY_PAGES = (("", "Empty"), ("other", "Other"))


def browse(url: str, pages: tuple[tuple[str, str], ...], gym: str, repeat: int) -> dict[str, Any]:
    """Per page and repeat: a full load of the page before it in a new tab (a new session; the
    browser's HTTP cache kept, as a manager's browser keeps Streamlit's scripts), the sidebar
    navigation to it, one gym picked there. The first pass (cold caches: the browser's, the
    server's ``st.cache_data``) is kept apart; medians over the others."""
    from playwright.sync_api import sync_playwright

    runs: dict[str, dict[str, list[float]]] = {
        title: {"load": [], "navigation": [], "filter": []} for _, title in pages
    }
    cold: dict[str, dict[str, float]] = {title: {} for _, title in pages}
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            for n in range(repeat + 1):
                for i, (_path, title) in enumerate(pages):
                    before_path, before = pages[i - 1]
                    # a new tab, a new session; the browser's cache kept (as a manager's is)
                    tab = Tab(context.new_page())
                    tab.page.set_default_timeout(120_000)
                    # the page before it loaded in a new tab: that page's full load
                    sample = {"load": (before, tab.load(url, before_path, before))}
                    sample["navigation"] = (title, tab.navigate(title))
                    sample["filter"] = (title, tab.pick(gym, title))
                    tab.page.close()
                    for kind, (page, seconds) in sample.items():
                        if n == 0:
                            cold[page][kind] = seconds
                        else:
                            runs[page][kind].append(seconds)
        finally:
            browser.close()
    return {
        title: {
            **{f"{kind}_s": statistics.median(r) for kind, r in kinds.items()},
            "cold": cold[title],
            "runs": kinds,
        }
        for title, kinds in runs.items()
    }


def reference_s(page: str) -> tuple[float, int]:
    """The page's data work without Streamlit: its SQL and lake reads, recorded during one
    AppTest render, replayed on DuckDB (best of 3). Returns (seconds, queries)."""
    clear_caches()
    at = app_on(page)
    recorder = Recorder()
    with recorder.installed():
        at.run()
    checked(at, page)
    return min(recorder.replay() for _ in range(3)), len(recorder.queries)


def measure_browser(label: str, lake: Path, redis_url: str, repeat: int) -> dict[str, Any]:
    env = prepared(f"{label} in Chromium", lake, redis_url)
    con = duckdb.connect(str(serving_path(Lake.from_uri(str(lake)))), read_only=True)
    gym = con.execute("select min(home_location) from dim_users").fetchone()[0]
    con.close()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with served(APP, env) as url:
            pages = browse(url, BROWSER_PAGES, gym, repeat)
        for path, title in BROWSER_PAGES:
            ref, queries = reference_s(path or "overview")
            m = pages[title]
            m.update(reference_s=ref, queries=queries, ratio=m["load_s"] / ref if ref else None)
            print(
                f"  {title:<24} load {m['load_s'] * 1000:6.0f} ms   navigation "
                f"{m['navigation_s'] * 1000:5.0f} ms   filter {m['filter_s'] * 1000:5.0f} ms   "
                f"reference {ref * 1000:6.1f} ms ({queries} queries)",
                flush=True,
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        client = redis.Redis.from_url(redis_url)
        delete_prefix(client, env["PEAK_LEADERBOARD_PREFIX"])
        client.close()
    return {"lake": str(lake), "check_ins": check_ins(lake), "gym": gym, "pages": pages}


def browser_floor(repeat: int) -> dict[str, Any]:
    """The same three steps on an app of two empty pages: Streamlit's own cost, in Chromium."""
    OUT.mkdir(exist_ok=True)
    app = OUT / "empty_app.py"
    app.write_text(EMPTY_APP)
    with served(app, {}) as url:
        pages = browse(url, EMPTY_PAGES, "North", repeat)
    return {
        kind: statistics.median(pages[t][f"{kind}_s"] for _, t in EMPTY_PAGES)
        for kind in ("load", "navigation", "filter")
    }


def browser_summary(results: dict[str, Any], floor: dict[str, Any]) -> None:
    print(
        "\nChromium floor (two empty pages, one sidebar multiselect): load "
        f"{floor['load'] * 1000:.0f} ms, navigation {floor['navigation'] * 1000:.0f} ms, "
        f"filter {floor['filter'] * 1000:.0f} ms"
    )
    head = "load / navigation / filter ms, ratio"
    print(f"\n{'page':<24}" + "".join(f"{label:>44}" for label in results))
    print(f"{'':<24}" + "".join(f"{head:>44}" for _ in results))
    for _, title in BROWSER_PAGES:
        cells = []
        for r in results.values():
            m = r["pages"][title]
            ratio = f"{m['ratio']:.1f}x" if m["ratio"] else "-"
            cells.append(
                f"{m['load_s'] * 1000:.0f} / {m['navigation_s'] * 1000:.0f} / "
                f"{m['filter_s'] * 1000:.0f}, {ratio}"
            )
        print(f"{title:<24}" + "".join(f"{c:>44}" for c in cells))
    for label, r in results.items():
        pages = r["pages"].values()
        load = max(m["load_s"] for m in pages)
        step = max(max(m["navigation_s"], m["filter_s"]) for m in pages)
        print(
            f"{label} targets: slowest full load {load * 1000:.0f} ms "
            f"({'met' if load < LOAD_TARGET_S else 'NOT met'}: < {LOAD_TARGET_S * 1000:.0f} ms), "
            f"slowest navigation or filter change {step * 1000:.0f} ms "
            f"({'met' if step < STEP_TARGET_S else 'NOT met'}: < {STEP_TARGET_S * 1000:.0f} ms)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="demo,10x", help="comma list of: demo, 10x")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--redis-url", help="a Redis to publish into (default: a private one)")
    parser.add_argument("--prepare", action="store_true", help="only build the 10x lake")
    parser.add_argument(
        "--engine",
        default="browser",
        choices=("browser", "apptest", "both"),
        help="browser: Chromium on `peak dashboard`; apptest: Streamlit's AppTest in process",
    )
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
    if args.engine != "apptest" and not CHROMIUM.exists():
        raise SystemExit(f"no {CHROMIUM}: `make chromium` installs Debian's")
    out: dict[str, Any] = {}
    with private_server(args.redis_url) as url:
        if args.engine != "apptest":
            floor = browser_floor(args.repeat)
            browser = {
                size: measure_browser(size, lake, url, args.repeat) for size, lake in lakes.items()
            }
            browser_summary(browser, floor)
            out["browser"] = {"floor_s": floor, **browser}
        if args.engine != "browser":
            apptest_floor = streamlit_floor(args.repeat)
            apptest = {size: measure(size, lake, url, args.repeat) for size, lake in lakes.items()}
            summary(apptest, apptest_floor)
            out["apptest"] = {"apptest_floor_s": apptest_floor, **apptest}
    OUT.mkdir(exist_ok=True)
    path = OUT / "dashboard.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
