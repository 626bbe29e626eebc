"""End to end in a browser: ``peak dashboard`` serves the app, headless Chromium uses it.

It starts ``peak dashboard --port <free>`` on the session's lake (built by test_dashboard.py's
``build_lake``), opens the overview, switches to the leaderboard, picks one gym in the sidebar
and checks the boards follow; then visits every page with two filter settings (every gym, one
gym) and fails on what a manager must never see: an error, a traceback, "None"/"nan"/"NaT", a
dbt model's name or a raw code. Screenshots go to ``test-artifacts/`` (git-ignored).
Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import free_port
from tests.test_dashboard import ROOT, BuiltLake, build_lake, forget_lake, pipeline_env, sql

pytestmark = [pytest.mark.xdist_group("dashboard"), pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# `peak dashboard …` through the same Typer app as the `peak` script.
PEAK = [sys.executable, "-c", "from peak.cli import app; app(prog_name='peak')"]
START_TIMEOUT_S = 60
UI_TIMEOUT_MS = 30_000
#: The navigation's page titles, in its order.
PAGES = (
    "Overview",
    "Leaderboard",
    "Locations",
    "Classes and instructors",
    "Retention",
    "Member",
    "Data quality",
    "Activation",
)
#: What must never be on screen: missing values printed raw, dbt models' names, raw codes.
UNSEEN = {
    "a missing value printed raw": re.compile(r"\b(None|nan|NaN|NaT)\b"),
    "a dbt model's name": re.compile(r"\b(stg|int|fct|dim|mart|snap)_[a-z0-9_]+"),
    "a raw code": re.compile(r"\bat_risk\b"),
    "a traceback": re.compile(r"Traceback \(most recent call last\)"),
}


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[BuiltLake]:
    built = build_lake(tmp_path_factory, redis_url)
    yield built
    forget_lake(built)


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"peak dashboard exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"the dashboard did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture
def server(lake: BuiltLake, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*PEAK, "dashboard", "--port", str(port)],
            env=pipeline_env(lake.env()),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: nothing outlives the test
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()  # `peak dashboard` passes SIGTERM on to Streamlit
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):  # Streamlit, had it outlived its parent
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed: `make chromium` installs it (as .ci/run does)",
)
def test_dashboard_in_a_browser(lake: BuiltLake, server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    gyms = [g for (g,) in sql(lake, "select distinct board from mart_leaderboard_weekly")]
    gym = sorted(g for g in gyms if g != "overall")[0]
    other = sorted(g for g in gyms if g != "overall")[1]
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            # expect() keeps its own 5 s default: under a loaded CI machine the first page
            # (Streamlit's cold start and the warehouse's first queries) takes longer.
            expect.set_options(timeout=UI_TIMEOUT_MS)
            # Given the app's front page: the overview's figures
            page.goto(server)
            expect(page.get_by_text("Members who visited")).to_be_visible()
            expect(page.get_by_text("Churn rate")).to_be_visible()
            expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

            # When the leaderboard page is opened from the navigation
            page.get_by_test_id("stSidebarNav").get_by_text("Leaderboard").click()
            expect(page.get_by_text("Live from Redis")).to_be_visible()
            expect(page.get_by_role("tab", name=other)).to_be_visible()

            # And one gym is picked in the sidebar's filter
            picker = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect")
            picker.click()
            page.get_by_role("option", name=gym).click()
            page.keyboard.press("Escape")

            # Then only the overall board and that gym's are shown
            expect(page.get_by_role("tab", name=gym)).to_be_visible()
            expect(page.get_by_role("tab", name=other)).to_have_count(0)
            expect(page.get_by_role("tab", name="Overall")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dashboard-leaderboard.png"), full_page=True)

            # And the filter holds on the next page
            page.get_by_test_id("stSidebarNav").get_by_text("Locations").click()
            expect(page.get_by_role("heading", name="Per gym")).to_be_visible()
            expect(page.get_by_text(f"· {gym} ·")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dashboard-locations.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard-leaderboard.png").stat().st_size > 10_000


def settle(page) -> None:
    """Wait until the script run is over (no "Stop" button, no placeholder skeleton) and the
    page has drawn."""
    page.wait_for_function(
        "() => ![...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Stop')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')"
    )
    page.wait_for_timeout(500)


def problems_on(page) -> list[str]:
    """What a manager must not see on the page shown (its main area's visible text)."""
    found = []
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    if errors.count():
        found.append(f"an error element: {errors.first.inner_text()[:200]!r}")
    text = page.get_by_test_id("stMain").inner_text()
    for what, pattern in UNSEEN.items():
        match = pattern.search(text)
        if match:
            start = max(match.start() - 60, 0)
            found.append(f"{what}: ...{text[start : match.end() + 60]!r}...")
    return found


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_every_page_with_two_filter_settings_shows_nothing_raw(
    lake: BuiltLake, server: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    gym = sorted(g for (g,) in sql(lake, "select distinct home_location from dim_users"))[0]
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    problems: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(server)
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            for setting in ("all gyms", "one gym"):
                if setting == "one gym":
                    picker = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect")
                    picker.click()
                    page.get_by_role("option", name=gym).click()
                    page.keyboard.press("Escape")
                for title in PAGES:
                    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                    expect(page.get_by_role("heading", name=title).first).to_be_visible()
                    settle(page)
                    name = (
                        f"dashboard-{title.lower().replace(' ', '-')}-{setting.replace(' ', '-')}"
                    )
                    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                    found = problems_on(page)
                    if found:
                        problems[f"{title} ({setting})"] = found
        finally:
            browser.close()
    assert problems == {}
