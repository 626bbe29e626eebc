"""The browser side of bench/dashboard.py: ``peak dashboard`` served on a free port, and one
Chromium tab on it that times a full load, a sidebar navigation and a filter change until the
server reports the script run finished and the page is drawn."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.redis_server import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"

IDLE_JS = """() => {
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  return !(status && /Running/.test(status.innerText))
    && !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-testid="stMain"] [data-stale="true"]');
}"""


@contextmanager
def served(app: Path, env: dict[str, str]) -> Iterator[str]:
    """``app`` served as ``peak dashboard`` serves dashboard/app.py, on a free port."""
    from peak.cli.dashboard import APP as PEAK_APP
    from peak.cli.dashboard import streamlit_command

    port = free_port()
    command = [str(app) if c == str(PEAK_APP) else c for c in streamlit_command(port, "127.0.0.1")]
    log = OUT / f"dashboard-server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the dashboard did not start:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


class Tab:
    """One browser tab on the app; counts the script runs the server reports finished.

    "Done" is the server's ``script_finished`` message read off the websocket (the run is over,
    every element sent), then the page drawn: its heading visible, no "Running..." status, no
    skeleton, no stale element left, one animation frame painted.
    """

    def __init__(self, page: Any) -> None:
        self.page = page
        self.finished = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        msg.ParseFromString(payload)
        if (
            msg.WhichOneof("type") == "script_finished"
            and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
        ):
            self.finished += 1

    def timed(self, action: Callable[[], Any], heading: str) -> float:
        before = self.finished
        started = time.perf_counter()
        action()
        deadline = started + 120
        while self.finished == before:
            if time.perf_counter() > deadline:
                raise SystemExit(f"{heading}: no script run finished within 120 s")
            self.page.wait_for_timeout(2)
        main = self.page.get_by_test_id("stMain")
        # (an open dropdown hides the rest of the page from the accessibility tree)
        main.get_by_role("heading", name=heading, include_hidden=True).first.wait_for(
            state="visible"
        )
        self.page.wait_for_function(IDLE_JS)
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(true)))")
        elapsed = time.perf_counter() - started
        errors = self.page.locator('[data-testid="stException"]')
        if errors.count():
            raise SystemExit(f"{heading}: {errors.first.inner_text()[:300]}")
        return elapsed

    def load(self, url: str, path: str, title: str) -> float:
        return self.timed(lambda: self.page.goto(f"{url}/{path}"), title)

    def navigate(self, title: str) -> float:
        nav = self.page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True)
        return self.timed(nav.click, title)

    def pick(self, option: str, title: str) -> float:
        self.page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").click()
        choice = self.page.get_by_role("option", name=option)
        elapsed = self.timed(choice.click, title)
        self.page.keyboard.press("Escape")
        return elapsed
