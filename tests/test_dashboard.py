"""The dashboard: every page renders, and what it shows is what the marts, Redis and the run
reports hold (computed again here, independently, from the warehouse and Redis).

One small lake is built per session (``peak generate`` + ``peak run``, the leaderboard published
to the test Redis under a prefix of its own, removed afterwards) and shared with
test_dashboard_browser.py. Pages run in Streamlit's ``AppTest`` (no browser, no server).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import redis
from streamlit.testing.v1 import AppTest

from activation.leaderboard import Keys, ranks, slug, visits_of
from dashboard import data, fmt, live, runs
from dashboard.data import Filters
from peak.core.lake import Lake
from peak.core.layout import quality_result_key, run_report_key
from peak.model.warehouse import DuckDBWarehouse, serving_path
from tests.redis_server import delete_prefix

pytestmark = pytest.mark.xdist_group("dashboard")

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
PEAK = [sys.executable, "-c", "from peak.cli import app; app(prog_name='peak')"]
PAGES = (
    "overview",
    "leaderboard",
    "locations",
    "classes",
    "retention",
    "member",
    "quality",
    "activation",
)
TITLES = {
    "overview": "Overview",
    "leaderboard": "Leaderboard",
    "locations": "Locations",
    "classes": "Classes and instructors",
    "retention": "Retention",
    "member": "Member",
    "quality": "Data quality",
    "activation": "Activation",
}
MEMBERS, DAYS = 300, 60


# ---------------------------------------------------------------------------------------------
# The session's lake (shared with the browser test)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltLake:
    root: Path
    redis_url: str
    prefix: str

    @property
    def warehouse(self) -> Path:
        return serving_path(Lake.from_uri(str(self.root)))

    def env(self) -> dict[str, str]:
        return {
            "PEAK_LAKE": str(self.root),
            "PEAK_DBT_TARGET": "local",
            "REDIS_URL": self.redis_url,
            "PEAK_LEADERBOARD_PREFIX": self.prefix,
        }


_BUILT: dict[str, BuiltLake] = {}


def pipeline_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a pipeline subprocess: no real HubSpot or AWS (the sinks dry-run)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "HUBSPOT_", "PEAK_", "REDIS_URL"))
    }
    env.update(
        {"AWS_EC2_METADATA_DISABLED": "true", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}
    )
    env.update(extra)
    return env


def build_lake(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> BuiltLake:
    """Generate a small gym and run the whole pipeline on it, once per process."""
    if redis_url in _BUILT:
        return _BUILT[redis_url]
    base = tmp_path_factory.mktemp("dashboard")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    built = BuiltLake(
        root=base / "lake",
        redis_url=redis_url,
        prefix=f"peak-test:{worker}:{uuid.uuid4().hex[:12]}:dashboard",
    )
    exports = base / "exports"
    env = pipeline_env(built.env())
    for args in (
        [
            "generate",
            "--out",
            str(exports),
            "--members",
            str(MEMBERS),
            "--days",
            str(DAYS),
            "--dirty-rate",
            "0.01",
        ],
        ["run", "--input", str(exports)],
    ):
        done = subprocess.run(PEAK + args, env=env, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"peak {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    _BUILT[redis_url] = built
    return built


def forget_lake(built: BuiltLake) -> None:
    client = redis.Redis.from_url(built.redis_url)
    try:
        delete_prefix(client, built.prefix)
    finally:
        client.close()
    _BUILT.pop(built.redis_url, None)


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[BuiltLake]:
    built = build_lake(tmp_path_factory, redis_url)
    yield built
    forget_lake(built)


@pytest.fixture
def env(lake: BuiltLake, monkeypatch: pytest.MonkeyPatch) -> BuiltLake:
    """The app's environment: the session's lake and Redis."""
    for key, value in lake.env().items():
        monkeypatch.setenv(key, value)
    return lake


def sql(built: BuiltLake, query: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def open_page(page: str, at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(str(APP), default_timeout=60)
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def default_period(built: BuiltLake) -> tuple[dt.date, dt.date]:
    """What the sidebar starts with: the last 28 days with check-ins."""
    (last,) = sql(built, "select max(local_date) from fct_attendance where location is not null")[0]
    return last - dt.timedelta(days=27), last


# ---------------------------------------------------------------------------------------------
# Every page
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(env: BuiltLake, page: str) -> None:
    # Given the session's lake, When the page is opened, Then it renders its title, no error
    at = open_page(page)
    assert [t.value for t in at.title] == [TITLES[page]]
    assert not at.error, [e.value for e in at.error]
    # the shared filters are in the sidebar on every page
    assert at.sidebar.multiselect(key="locations") is not None
    assert at.sidebar.date_input(key="dates") is not None


# ---------------------------------------------------------------------------------------------
# Overview: the figures are the warehouse's
# ---------------------------------------------------------------------------------------------


def expected_overview(built: BuiltLake, start: dt.date, end: dt.date, gyms: list[str]) -> dict:
    """The overview's four figures for a period, computed here from the star schema."""
    in_gyms = (lambda loc: loc in gyms) if gyms else (lambda loc: True)
    visits = sql(
        built,
        "select location, user_id from fct_attendance where local_date between ? and ? "
        "and location is not null",
        [start, end],
    )
    mine = [(loc, user) for loc, user in visits if in_gyms(loc)]
    joins = sql(
        built, "select home_location from dim_users where join_date between ? and ?", [start, end]
    )
    members = sql(
        built,
        "select c.home_location, c.churn_status, cast(c.churn_date as date), u.join_date "
        "from mart_churn c join dim_users u using (user_id)",
    )
    churned = could = 0
    for home, status, churn_day, joined in members:
        if not in_gyms(home):
            continue
        gone = status == "churned"
        churned += gone and start <= churn_day <= end
        could += joined <= end and not (gone and churn_day < start)
    return {
        "Members who visited": len({user for _, user in mine}),
        "Visits": len(mine),
        "Churn rate": churned / could if could else None,
        "New joins": sum(1 for (home,) in joins if in_gyms(home)),
    }


def shown(expected: dict) -> dict[str, str]:
    return {
        label: fmt.pct(value) if label == "Churn rate" else f"{value:,}"
        for label, value in expected.items()
    }


def test_overview_figures_equal_the_warehouse(env: BuiltLake) -> None:
    at = open_page("overview")
    start, end = default_period(env)
    now = expected_overview(env, start, end, [])
    days = (end - start).days + 1
    before = expected_overview(
        env, start - dt.timedelta(days=days), start - dt.timedelta(days=1), []
    )
    got = metrics(at)
    assert {label: got[label][0] for label in now} == shown(now)  # the four period figures
    assert now["Visits"] > 0 and now["Members who visited"] > 0
    # each figure against the previous period of equal length
    assert got["Visits"][1] == fmt.delta_count(now["Visits"], before["Visits"])
    assert got["Members who visited"][1] == fmt.delta_count(
        now["Members who visited"], before["Members who visited"]
    )
    assert got["New joins"][1] == fmt.delta_count(now["New joins"], before["New joins"])
    assert got["Churn rate"][1] == (fmt.delta_points(now["Churn rate"], before["Churn rate"]) or "")


def test_overview_follows_the_sidebar_filters(env: BuiltLake) -> None:
    at = open_page("overview")
    gyms = sorted(at.sidebar.multiselect(key="locations").options)[:2]
    _, end = default_period(env)
    start = end - dt.timedelta(days=9)
    at.sidebar.multiselect(key="locations").set_value(gyms)
    at.sidebar.date_input(key="dates").set_value((start, end))
    at.run()
    assert not at.exception
    expected = expected_overview(env, start, end, gyms)
    got = {label: value for label, (value, _) in metrics(at).items() if label in expected}
    assert got == shown(expected)
    # the filters stay when another page is opened
    at = open_page("locations", at)
    assert at.sidebar.multiselect(key="locations").value == gyms
    assert sorted(set(at.dataframe[0].value["location"])) == gyms


# ---------------------------------------------------------------------------------------------
# Leaderboard: live from Redis, or the mart when Redis is down
# ---------------------------------------------------------------------------------------------


def last_complete_week(env: BuiltLake) -> dt.date:
    """The Monday of the newest week whose Sunday has data (the page's default week)."""
    (last,) = sql(env, "select max(local_date) from fct_attendance where location is not null")[0]
    return last - dt.timedelta(days=last.weekday() + (7 if last.weekday() < 6 else 0))


def test_leaderboard_shows_what_redis_holds_ties_sharing_a_rank(env: BuiltLake) -> None:
    at = open_page("leaderboard")
    assert not at.warning
    assert any("Live from Redis" in c.value for c in at.caption)
    week = at.selectbox(key="leaderboard_week").value
    assert week.week_start == last_complete_week(env)  # not the week in progress
    keys = Keys(env.prefix)
    client = redis.Redis.from_url(env.redis_url, decode_responses=True)
    try:
        names = client.hgetall(keys.boards(week.iso_week))
        key = keys.board(week.iso_week, "overall")
        entries = client.zrevrange(key, 0, -1, withscores=True)
        handles = {user: client.hget(keys.members("handle"), user) for user, _ in entries}
    finally:
        client.close()
    assert [t.label for t in at.tabs] == [
        "Overall",
        *sorted(n for n in names.values() if n != "overall"),
    ]
    board = at.dataframe[0].value
    places = ranks([s for _, s in entries])
    sharing = {r: places.count(r) for r in places}
    expected = sorted(
        (rank, handles[user], visits_of(score))
        for (user, score), rank in zip(entries, places, strict=True)
    )[:20]  # by rank, ties by handle, as the mart's fallback orders them
    shown = list(zip(board["place"], board["handle"], board["visits"], strict=True))
    assert shown == [(("=" if sharing[r] > 1 else "") + str(r), h, v) for r, h, v in expected]
    assert any(p.startswith("=") for p in board["place"])  # the demo's members do tie


def test_cohorts_follow_the_gym_filter(env: BuiltLake) -> None:
    """Cohort retention for the chosen gyms equals the members of those gyms counted by hand
    (join month, months with a visit), and the gyms' cohorts add up."""
    warehouse = DuckDBWarehouse(env.warehouse)
    bounds = data.bounds(warehouse)
    gyms = tuple(sorted(bounds.locations)[:2])
    end = bounds.last
    f = Filters(end - dt.timedelta(days=27), end, gyms)
    first, last = data.cohort_window(f)
    hand = sql(
        env,
        f"""
        with members as (
            select user_id, cast(date_trunc('month', join_date) as date) as cohort_month
            from dim_users
            where home_location in ({", ".join("?" for _ in gyms)})
              and join_date >= cast(? as date) and join_date < cast(? as date) + interval 1 month
        ), sizes as (
            select cohort_month, count(*) as n from members group by cohort_month
        ), active as (
            select m.cohort_month, date_diff('month', m.cohort_month, a.activity_month) as k,
                   count(*) as n
            from members as m join int_member_months as a on a.user_id = m.user_id
            where a.activity_month >= m.cohort_month
            group by 1, 2
        )
        select s.cohort_month, a.k, s.n, a.n from sizes as s join active as a using (cohort_month)
        order by 1, 2
        """,
        [*gyms, first.isoformat(), last.isoformat()],
    )
    got = data.cohorts(warehouse, f)
    shown = [
        (r.cohort_month.date(), r.months_since_join, r.cohort_size, r.active_members)
        for r in got.itertuples()
        if r.active_members
    ]
    assert shown == [tuple(row) for row in hand]
    assert len(shown) > 12  # several join months, several months each
    for r in got.itertuples():
        assert r.retention_rate == pytest.approx(r.active_members / r.cohort_size)
    # the two gyms' cohorts are the sum of each gym's
    one, two = (data.cohorts(warehouse, Filters(f.start, f.end, (g,))) for g in gyms)
    month0 = [d[d.months_since_join == 0].set_index("cohort_month").cohort_size for d in (one, two)]
    both = got[got.months_since_join == 0].set_index("cohort_month").cohort_size
    assert both.to_dict() == month0[0].add(month0[1], fill_value=0).astype(int).to_dict()
    everyone = data.cohorts(warehouse, Filters(f.start, f.end, ()))
    assert everyone.cohort_size.max() > got.cohort_size.max()


def test_leaderboard_gym_filter_and_previous_weeks(env: BuiltLake) -> None:
    at = open_page("leaderboard")
    gym = at.sidebar.multiselect(key="locations").options[0]
    at.sidebar.multiselect(key="locations").set_value([gym]).run()
    assert [t.label for t in at.tabs] == ["Overall", gym]
    assert len(at.selectbox(key="leaderboard_week").options) >= 2
    at.selectbox(key="leaderboard_week").select_index(1).run()
    assert not at.exception
    previous = at.selectbox(key="leaderboard_week").value
    rows = sql(
        env,
        "select handle, visits from mart_leaderboard_weekly where week_start = ? and board = ? "
        "order by rank, handle limit 20",
        [previous.week_start, gym],
    )
    gym_board = at.dataframe[1].value
    assert rows and list(zip(gym_board["handle"], gym_board["visits"], strict=True)) == rows


def test_leaderboard_falls_back_to_the_mart_when_redis_is_down(
    env: BuiltLake, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    # Given Redis' URL points at a port nobody listens on
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port}/0")
    # When the leaderboard is opened
    at = open_page("leaderboard")
    # Then the page says so, and shows the mart's board
    (warning,) = at.warning
    assert "unreachable" in warning.value and "warehouse" in warning.value
    assert "mart_" not in warning.value  # no internal name on screen
    rows = sql(
        env,
        "select handle, visits, streak_weeks from mart_leaderboard_weekly "
        "where week_start = ? and board = 'overall' order by rank, handle limit 20",
        [last_complete_week(env)],
    )
    board = at.dataframe[0].value
    assert list(zip(board["handle"], board["visits"], board["streak_weeks"], strict=True)) == rows


# ---------------------------------------------------------------------------------------------
# Locations, classes, retention
# ---------------------------------------------------------------------------------------------


def test_locations_summary_equals_the_mart(env: BuiltLake) -> None:
    at = open_page("locations")
    start, end = default_period(env)
    expected = dict(
        sql(
            env,
            "select location, sum(visits)::bigint from mart_location_daily "
            "where activity_date between ? and ? and location is not null group by location",
            [start, end],
        )
    )
    summary = at.dataframe[0].value
    assert dict(zip(summary["location"], summary["visits"], strict=True)) == expected
    for grain in ("Week", "Month"):
        at.segmented_control(key="locations_grain").set_value(grain).run()
        assert not at.exception


def test_class_utilisation_over_all_dates_equals_the_mart(env: BuiltLake) -> None:
    warehouse = DuckDBWarehouse(env.warehouse)
    bounds = data.bounds(warehouse)
    classes = data.class_period(warehouse, Filters(bounds.first, bounds.last))
    mart = dict(sql(env, "select class_id, utilisation from mart_class_utilisation"))
    got = dict(zip(classes["class_id"], classes["utilisation"], strict=True))
    assert got.keys() == mart.keys()
    for class_id, value in mart.items():
        if value is None:  # never held
            assert got[class_id] != got[class_id]  # NaN
        else:
            assert got[class_id] == pytest.approx(value)


def test_classes_page_ranks_by_utilisation(env: BuiltLake) -> None:
    at = open_page("classes")
    fullest, emptiest = at.dataframe[0].value, at.dataframe[1].value
    assert list(fullest["utilisation"]) == sorted(fullest["utilisation"], reverse=True)
    assert list(emptiest["utilisation"]) == sorted(emptiest["utilisation"])
    assert fullest["utilisation"].iloc[0] >= emptiest["utilisation"].iloc[-1]
    teachers = at.dataframe[2].value
    start, end = default_period(env)
    expected = sql(
        env,
        "select instructor, count(*) from fct_attendance where is_known_class "
        "and local_date between ? and ? group by instructor",
        [start, end],
    )
    assert dict(zip(teachers["instructor"], teachers["check_ins"], strict=True)) == dict(expected)


def test_retention_counts_and_masked_members(env: BuiltLake) -> None:
    at = open_page("retention")
    counts = dict(sql(env, "select churn_status, count(*) from mart_churn group by churn_status"))
    got = metrics(at)
    assert got["Churn status: at risk"][0] == f"{counts.get('at_risk', 0):,}"
    assert got["Churn status: churned"][0] == f"{counts.get('churned', 0):,}"
    at_risk = next(d.value for d in at.dataframe if "email_masked" in d.value)
    assert len(at_risk) == min(counts.get("at_risk", 0), data.AT_RISK_ROWS)
    assert all("***@" in e for e in at_risk["email_masked"])
    # actionable: the booking system's member id, and the class and gym they usually come to
    for _, member in at_risk.head(3).iterrows():
        usual = sql(
            env,
            "select class_name, location, count(*) as n from fct_attendance "
            "where user_id = ? and location is not null and class_name is not null "
            "group by all order by n desc, class_name, location limit 1",
            [member["user_id"]],
        )
        assert (member["usual_class"], member["usual_gym"]) == usual[0][:2]


def test_no_email_address_is_shown_on_any_page(env: BuiltLake) -> None:
    addresses = {e for (e,) in sql(env, "select email from dim_users")}
    at = AppTest.from_file(str(APP), default_timeout=60)
    for page in PAGES:
        at = open_page(page, at)
        texts = [
            str(el.value)
            for kind in ("markdown", "caption", "metric", "warning", "info")
            for el in getattr(at, kind)
        ]
        for frame in at.dataframe:
            texts.append(frame.value.to_csv())
        blob = "\n".join(texts)
        leaked = [a for a in addresses if a in blob]
        assert not leaked, f"{page} shows {len(leaked)} email address(es)"


# ---------------------------------------------------------------------------------------------
# Data quality and activation: the run reports' figures
# ---------------------------------------------------------------------------------------------


def load_reports(built: BuiltLake) -> list[dict]:
    folder = built.root / run_report_key("x").rsplit("/", 1)[0]
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_quality_page_shows_quarantine_results_and_freshness(env: BuiltLake) -> None:
    at = open_page("quality")
    quarantined: dict[str, int] = {}
    for report in load_reports(env):
        for name, stats in report["datasets"].items():
            if stats.get("rows_in"):
                quarantined[name] = quarantined.get(name, 0) + stats["rows_quarantined"]
    got = metrics(at)
    for name, rows in quarantined.items():
        assert got[f"{name} rows"][0] == f"{rows:,} quarantined"
    assert sum(quarantined.values()) > 0  # the generator's dirty rows
    # Great Expectations: the newest result per dataset, as written by the transform
    lake = Lake.from_uri(str(env.root))
    keys = runs.quality_result_keys(lake)
    assert keys and all(k == quality_result_key(k.split("/")[-2], runs.run_id_of(k)) for k in keys)
    results = next(df.value for df in at.dataframe if "rows_checked" in df.value)
    assert set(results["dataset"]) == {"attendance", "classes", "members"}
    assert results["success"].all()
    assert all(got[f"{name} suite"][0] == "passed" for name in results["dataset"])
    # freshness of each source, from the newest build
    fresh = next(df.value for df in at.dataframe if "age_hours_now" in df.value)
    assert sorted(fresh["source"]) == ["attendance", "classes", "members"]
    last_runs = at.dataframe[-1].value
    assert {"generate", "run"} <= set(last_runs["command"])


def test_validation_folder_is_glue_quality_s(env: BuiltLake) -> None:
    from glue import quality

    assert runs.VALIDATIONS_PREFIX.rstrip("/").endswith(quality.RESULTS_FOLDER)
    lake = Lake.from_uri(str(env.root))
    latest = runs.quality_results(lake, runs.quality_result_keys(lake)).iloc[0]
    assert not runs.expectations(lake, latest["run_id"], latest["dataset"]).empty


def test_activation_page_shows_the_last_syncs(env: BuiltLake) -> None:
    at = open_page("activation")
    last = next(r for r in reversed(load_reports(env)) if "activation" in r["stages"])
    stage = last["stages"]["activation"]
    got = metrics(at)
    for sink, label in (("hubspot", "HubSpot"), ("email", "Retention emails")):
        (title,) = [k for k in got if k.startswith(label)]
        value, delta = got[title]
        # no HubSpot token, no AWS credentials in the tests: dry runs, which send nothing
        assert "(dry run)" in title
        assert value == f"{stage[sink]['sent']:,} would be sent, none sent"
        assert delta == f"{stage[sink]['unchanged']:,} unchanged · {stage[sink]['failed']:,} failed"
    table = at.dataframe[0].value
    assert set(stage) <= set(table["sink"])


# ---------------------------------------------------------------------------------------------
# Caching: a new publish is read at once
# ---------------------------------------------------------------------------------------------


def test_a_new_publish_is_picked_up(env: BuiltLake, tmp_path: Path, monkeypatch) -> None:
    # Given a lake of our own holding a copy of the serving warehouse
    mine = Lake.from_uri(str(tmp_path / "lake"))
    target = serving_path(mine)
    target.parent.mkdir(parents=True)
    shutil.copyfile(env.warehouse, target)
    monkeypatch.setenv("PEAK_LAKE", mine.root)
    at = open_page("overview")
    before = metrics(at)["Visits"][0]
    # When a build publishes a warehouse with no visits on a day of the period (renamed over
    # the old one, as peak.model.warehouse.publish does)
    day = default_period(env)[1] - dt.timedelta(days=3)
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copyfile(env.warehouse, rebuilt)
    con = duckdb.connect(str(rebuilt))
    (removed,) = con.execute(
        "select sum(visits)::bigint from mart_location_daily where activity_date = ?", [day]
    ).fetchone()
    con.execute("update mart_location_daily set visits = 0 where activity_date = ?", [day])
    con.close()
    os.replace(rebuilt, target)
    # Then the next rerun shows the new figures (the cache key holds the file's identity)
    at.run()
    after = metrics(at)["Visits"][0]
    assert removed > 0
    assert int(before.replace(",", "")) - int(after.replace(",", "")) == removed


# ---------------------------------------------------------------------------------------------
# The queries: parameterised, plain SQL for DuckDB and Athena, never an email
# ---------------------------------------------------------------------------------------------


class Recording:
    """A warehouse that records every query it runs."""

    name = "duckdb"

    def __init__(self, inner: DuckDBWarehouse) -> None:
        self.inner = inner
        self.calls: list[tuple[str, list]] = []

    def query(self, sql_text: str, params=()):
        self.calls.append((sql_text, list(params)))
        return self.inner.query(sql_text, params)

    def read(self, relation, columns=None):  # pragma: no cover - the dashboard never reads
        raise AssertionError("the dashboard queries, it never reads whole marts")


def every_query(built: BuiltLake) -> list[tuple[str, list]]:
    warehouse = Recording(DuckDBWarehouse(built.warehouse))
    bounds = data.bounds(warehouse)
    start, end = bounds.last - dt.timedelta(days=20), bounds.last
    for gyms in ((), bounds.locations[:2]):
        f = Filters(start, end, gyms)
        data.overview(warehouse, f)
        data.daily_visits(warehouse, f)
        data.location_daily(warehouse, f)
        data.home_members(warehouse, f)
        data.class_period(warehouse, f)
        data.instructors(warehouse, f)
        data.cohorts(warehouse, f)
        data.churned(warehouse, f)
        data.churn_status_now(warehouse, f)
        data.status_history(warehouse, f)
        data.at_risk_members(warehouse, f)
    boards = data.mart_boards(warehouse)
    data.mart_board(warehouse, boards["week_start"].iloc[0].date(), "overall", 5)
    data.mart_winners(warehouse)
    return warehouse.calls


DUCKDB_ONLY = re.compile(
    r"::|\bgroup by all\b|\bqualify\b|\bexclude\b|\bstrftime\b|\blist_\w+|\bepoch\b|\bilike\b"
    r"|\bdatediff\b|\bdate_diff\b|\bstruct_\w+|\bregexp_matches\b",
    re.IGNORECASE,
)


def test_queries_are_parameterised_trino_compatible_and_never_read_emails(env: BuiltLake) -> None:
    import sqlglot

    calls = every_query(env)
    gyms = set(data.bounds(DuckDBWarehouse(env.warehouse)).locations)
    assert len(calls) > 20
    for text, params in calls:
        # Athena (Trino) parses it, and nothing DuckDB-only is in it
        sqlglot.parse_one(text, read="trino")
        assert not DUCKDB_ONLY.search(text), text
        # values are bound, never spelled into the SQL
        assert text.count("?") == len(params), text
        assert not any(g in text for g in gyms), text
        assert not re.search(r"'\d{4}-\d{2}-\d{2}'", text), text
        # no email column is selected (only dim_users.email_masked)
        assert not re.search(r"\bemail\b", text), text


# ---------------------------------------------------------------------------------------------
# Pure parts
# ---------------------------------------------------------------------------------------------


def test_filters_previous_period_and_cohort_window() -> None:
    f = Filters(dt.date(2026, 11, 1), dt.date(2026, 11, 28), ("Peak B", "Peak A", "Peak A"))
    assert f.days == 28 and f.locations == ("Peak A", "Peak B")
    assert f.previous() == Filters(dt.date(2026, 10, 4), dt.date(2026, 10, 31), f.locations)
    # a period that is no whole number of weeks is compared with the same weekdays
    ten = Filters(dt.date(2026, 11, 19), dt.date(2026, 11, 28)).previous()
    assert ten == Filters(dt.date(2026, 11, 5), dt.date(2026, 11, 14))
    assert ten.start.weekday() == dt.date(2026, 11, 19).weekday() and ten.days == 10
    assert data.cohort_window(f) == (dt.date(2025, 12, 1), dt.date(2026, 11, 1))
    long = Filters(dt.date(2024, 3, 15), dt.date(2026, 11, 28))
    assert data.cohort_window(long) == (dt.date(2024, 3, 1), dt.date(2026, 11, 1))
    with pytest.raises(ValueError, match="before it starts"):
        Filters(dt.date(2026, 11, 2), dt.date(2026, 11, 1))


def test_numbers_are_formatted_for_people() -> None:
    assert fmt.count(1234567) == "1,234,567"
    assert fmt.count(None) == "–"
    assert fmt.pct(0.1234) == "12.3%"
    assert fmt.delta_count(1100, 1000) == "+100 (+10.0%)"
    assert fmt.delta_count(5, 0) == "+5"
    assert fmt.delta_points(0.05, 0.04) == "+1.0 pp"
    assert fmt.mask_emails("bounced: alice.smith@example.co.uk (x)") == (
        "bounced: a***@example.co.uk (x)"
    )


def test_live_leaderboard_reads_the_sinks_keys(env: BuiltLake) -> None:
    from peak.core.settings import RedisSettings

    settings = RedisSettings(url=env.redis_url)
    client = live.connect(settings)
    try:
        board = live.LiveLeaderboard(client, env.prefix)
        weeks = board.weeks()
        names = board.boards(weeks[0].iso_week)
    finally:
        client.close()
    assert weeks == sorted(weeks, key=lambda w: w.week_start, reverse=True)
    assert all(slug(name) == key for key, name in names.items())
    down = RedisSettings(url="redis://127.0.0.1:1/0")
    with pytest.raises(live.LeaderboardUnavailable, match="unreachable"):
        live.connect(down)


def test_peak_dashboard_command(env: BuiltLake, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from peak import cli
    from peak.cli import dashboard as cli_dashboard

    cli_dashboard.register(cli.app)
    cli_dashboard.register(cli.app)  # idempotent
    assert [c.name for c in cli.app.registered_commands].count("dashboard") == 1
    command = cli_dashboard.streamlit_command(8765, "127.0.0.1")
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"
    assert command[command.index("--server.port") + 1] == "8765"
    # no warehouse yet: a one-line error, exit 1, nothing started
    result = CliRunner().invoke(cli.app, ["--lake", str(tmp_path / "empty"), "dashboard"])
    assert result.exit_code == 1
    assert "no warehouse at" in result.output and "peak run" in result.output


# ---------------------------------------------------------------------------------------------
# Charts that cannot mislead
# ---------------------------------------------------------------------------------------------


def chart_problems(spec: dict, where: str) -> list[str]:
    """A Vega-Lite spec's series without a legend, and bars whose axis may drop labels."""
    found = []
    for layer in [spec, *spec.get("layer", [])]:
        mark = layer.get("mark")
        kind = mark.get("type") if isinstance(mark, dict) else mark
        encoding = layer.get("encoding", {})
        for channel in ("color", "strokeDash", "shape"):
            series = encoding.get(channel)
            is_series = isinstance(series, dict) and series.get("type") == "nominal"
            if is_series and "legend" in series and series["legend"] is None:
                found.append(f"{where}: a {channel} series without a legend")
        for channel in ("x", "y"):
            axis = encoding.get(channel, {})
            discrete = axis.get("type") in ("nominal", "ordinal")
            if (
                kind == "bar"
                and discrete
                and (axis.get("axis") or {}).get("labelOverlap") is not False
            ):
                found.append(f"{where}: bars on {channel} whose labels may be dropped")
    return found


def test_every_chart_has_its_legends_and_every_bar_its_label(env: BuiltLake) -> None:
    problems: list[str] = []
    at = AppTest.from_file(str(APP), default_timeout=60)
    for setting in ("all gyms", "one gym"):
        for page in PAGES:
            at = open_page(page, at)
            if setting == "one gym" and not at.sidebar.multiselect(key="locations").value:
                gym = sorted(at.sidebar.multiselect(key="locations").options)[0]
                at.sidebar.multiselect(key="locations").set_value([gym]).run()
            for chart in at.get("arrow_vega_lite_chart"):
                spec = json.loads(chart.proto.spec)
                problems += chart_problems(spec, f"{page} ({setting})")
    assert problems == []


def test_peak_hours_and_visits_per_member_are_the_warehouses(env: BuiltLake) -> None:
    start, end = default_period(env)  # 28 days: four of each weekday
    warehouse = DuckDBWarehouse(env.warehouse)
    hours = data.peak_hours(warehouse, Filters(start, end))
    rows = sql(
        env,
        "select location, weekday, hour, count(*) from fct_attendance "
        "where local_date between ? and ? and location is not null group by all",
        [start, end],
    )
    got = zip(hours["location"], hours["weekday"], hours["hour"], hours["check_ins"], strict=True)
    assert sorted(got) == sorted(rows)
    assert (hours["per_day"] * 4 == hours["check_ins"]).all()

    per_member = data.visits_per_member(warehouse, Filters(start, end))
    members = dict(
        sql(
            env,
            "select u.user_id, count(a.user_id) from dim_users u left join fct_attendance a "
            "on a.user_id = u.user_id and a.local_date between ? and ? "
            "and a.location is not null "
            "where u.join_date <= ? and u.status <> 'cancelled' group by u.user_id",
            [start, end, end],
        )
    )
    assert dict(zip(per_member["user_id"], per_member["visits"], strict=True)) == members
    at = open_page("overview")
    shown = metrics(at)["Members with no visit"][0]
    assert shown == f"{sum(1 for v in members.values() if v == 0):,}"
    at = open_page("locations", at)
    assert at.selectbox(key="peak_hours_gym").value == sorted(set(hours["location"]))[0]


def test_member_movement_adds_up_and_is_the_warehouses(env: BuiltLake) -> None:
    start, end = default_period(env)
    move = data.member_movement(DuckDBWarehouse(env.warehouse), Filters(start, end), "W-SUN")
    joined = sql(
        env, "select count(*) from dim_users where join_date between ? and ?", [start, end]
    )
    lost = sql(
        env,
        "select count(*) from mart_churn where churn_status = 'churned' "
        "and cast(churn_date as date) between ? and ?",
        [start, end],
    )
    assert (move["joined"].sum(), move["lost"].sum()) == (joined[0][0], lost[0][0])
    assert (move["end"] == move["start"] + move["joined"] - move["lost"]).all()
    assert list(move["start"].iloc[1:]) == list(move["end"].iloc[:-1])  # one flows into the next
    assert move["partial"].iloc[0] == (start.weekday() != 0)
    at = open_page("retention")
    assert "Member movement" in [h.value for h in at.subheader]


def test_onboarding_counts_new_members_first_30_days(env: BuiltLake) -> None:
    (first,) = sql(env, "select min(local_date) from fct_attendance")[0]
    _, end = default_period(env)
    period = Filters(first, end)
    got = data.onboarding(DuckDBWarehouse(env.warehouse), period, end)
    last_join = end - dt.timedelta(days=data.ONBOARDING_DAYS - 1)
    first_join = first - dt.timedelta(days=data.ONBOARDING_DAYS - 1)
    expected = dict(
        sql(
            env,
            "select u.user_id, count(a.user_id) from dim_users u left join fct_attendance a "
            "on a.user_id = u.user_id and a.location is not null "
            "and a.local_date between u.join_date and u.join_date + 29 "
            "where u.join_date between ? and ? group by u.user_id",
            [first_join, last_join],
        )
    )
    assert dict(zip(got["user_id"], got["visits_30d"], strict=True)) == expected
    days = sql(
        env,
        "select user_id, list(distinct local_date order by local_date)[1:2] from fct_attendance "
        "where location is not null and user_id in (select user_id from dim_users "
        "where join_date between ? and ?) and local_date <= ? group by user_id",
        [first_join, last_join, end],
    )
    firsts = {u: [*d, None, None][:2] for u, d in days}
    for _, row in got.iterrows():
        want = firsts.get(row["user_id"], [None, None])
        seen = [None if pd.isna(v) else v.date() for v in (row["first_visit"], row["second_visit"])]
        assert seen == want, row["user_id"]
    at = open_page("retention")
    assert "New members" in metrics(at)


def test_member_page_shows_one_members_visits_and_status_history(env: BuiltLake) -> None:
    (user_id,) = sql(
        env,
        "select user_id from snap_churn_status group by user_id "
        "order by count(*) desc, user_id limit 1",
    )[0]
    at = open_page("member")
    at.text_input(key="member_id").set_value(user_id).run()
    assert not at.exception
    (handle,) = sql(env, "select handle from dim_users where user_id = ?", [user_id])[0]
    assert metrics(at)["Member"][0] == handle
    visits, history = (d.value for d in at.dataframe)
    (total,) = sql(
        env,
        "select count(*) from fct_attendance where user_id = ? and location is not null",
        [user_id],
    )[0]
    assert len(visits) == min(total, 50)
    versions = sql(
        env,
        "select churn_status from snap_churn_status where user_id = ? order by dbt_valid_from",
        [user_id],
    )
    labels = {"active": "Active", "at_risk": "At risk", "churned": "Churned"}
    assert list(history["status"]) == [labels[s] for (s,) in versions]
    at.text_input(key="member_id").set_value("NOBODY").run()
    assert any("No member with this id" in i.value for i in at.info)


def test_membership_mix_is_the_warehouses(env: BuiltLake) -> None:
    _, end = default_period(env)
    gym = sql(env, "select min(home_location) from dim_users")[0][0]
    mix = data.membership_mix(DuckDBWarehouse(env.warehouse), Filters(end, end, (gym,)))
    rows = sql(
        env,
        "select plan, status, count(*) from dim_users "
        "where join_date <= ? and home_location = ? group by all",
        [end, gym],
    )
    got = zip(mix["plan"], mix["status"], mix["members"], strict=True)
    assert sorted(got) == sorted(rows) and set(mix["location"]) == {gym}
    at = open_page("locations")
    assert "Membership mix" in [h.value for h in at.subheader]
