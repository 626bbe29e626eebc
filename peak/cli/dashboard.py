"""``peak dashboard``: start the Streamlit dashboard (``dashboard/app.py``) over the marts.

Registered on the main app by :func:`register`. The app runs as ``streamlit run`` in a child
process, headless and without usage statistics; the lake and the dbt target reach it as
``PEAK_LAKE`` and ``PEAK_DBT_TARGET`` (Redis as ``REDIS_URL`` and ``PEAK_LEADERBOARD_PREFIX``,
passed through). A run report records the start; the command then serves until Ctrl+C (or
SIGTERM, which it passes on to Streamlit) and exits with Streamlit's status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from peak.cli.app import console, fail, reported, state
from peak.cli.model import TargetOption

COMMAND = "dashboard"
ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
DEFAULT_PORT = 8501


def streamlit_command(port: int, address: str) -> list[str]:
    """The child process: ``streamlit run dashboard/app.py``, headless, no usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def _serve(command: list[str], env: dict[str, str]) -> int:
    """Run Streamlit until it exits; Ctrl+C and SIGTERM stop it cleanly."""
    proc = subprocess.Popen(command, env=env, cwd=ROOT)

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the terminal sent SIGINT to both: let Streamlit finish
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def dashboard_command(
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port to serve the dashboard on.")
    ] = DEFAULT_PORT,
    address: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    target: TargetOption = None,
) -> None:
    """Start the Streamlit dashboard over the published marts (Ctrl+C stops it)."""
    from peak.model.warehouse import serving_path  # deferred: duckdb

    chosen = target or state.config.dbt_target
    options = {"port": port, "address": address, "target": chosen}
    with reported(COMMAND, options) as report:
        lake = state.lake
        if chosen == "local":
            warehouse = serving_path(lake)  # a local lake: S3 has no local target
            if not warehouse.exists():
                raise RuntimeError(f"no warehouse at {warehouse}: run `peak run` or `peak build`")
        env = {
            **os.environ,
            "PEAK_LAKE": lake.root,
            "PEAK_DBT_TARGET": chosen,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        url = f"http://{'localhost' if address in ('127.0.0.1', '0.0.0.0') else address}:{port}"
        report.stages[COMMAND] = {"url": url, "app": str(APP)}
    console.print(f"dashboard on {url} (lake {lake.root}, {chosen}); Ctrl+C stops it")
    code = _serve(streamlit_command(port, address), env)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise fail(f"streamlit exited with status {code}")


def register(app: typer.Typer) -> None:
    """Add ``peak dashboard`` to the app (once: a second call does nothing)."""
    if any(command.name == COMMAND for command in app.registered_commands):
        return
    app.command(COMMAND)(dashboard_command)
