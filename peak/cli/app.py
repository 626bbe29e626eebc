"""The ``peak`` application and what every command group shares: the Typer app, the settings
and lake of this invocation (:data:`state`), the run report every command writes
(:func:`reported`), progress bars, the consoles and the one-line failure.

The command groups (:mod:`peak.cli.pipeline`, :mod:`~peak.cli.model`, :mod:`~peak.cli.activate`,
:mod:`~peak.cli.dashboard`, :mod:`~peak.cli.ops`) import from here; nothing here imports them.
:mod:`peak.cli` registers them on the app.
"""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from peak.core.errors import PeakError
from peak.core.lake import Lake
from peak.core.report import RunReport, one_line
from peak.core.settings import Settings

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

app = typer.Typer(
    help="Peak Fitness data platform: land, validate, model and activate the gyms' data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
# Summary tables stay readable when the output goes to a file or a CI log (no terminal width).
out = Console() if sys.stdout.isatty() else Console(width=120)

EXIT_FAILED = 1
EXIT_REJECTED = 3


class State:
    settings: Settings | None = None
    lake_uri: str | None = None

    @property
    def lake(self) -> Lake:
        """The lake of ``--lake`` or ``PEAK_LAKE``; a bad URI ends the command in one line."""
        try:
            return Lake.from_uri(self.lake_uri or self.config.lake)
        except PeakError as exc:
            raise fail(str(exc)) from None

    @property
    def config(self) -> Settings:
        """The settings, read once; a bad variable ends the command in one line naming it."""
        if self.settings is None:
            try:
                self.settings = Settings.load()
            except PeakError as exc:
                raise fail(str(exc)) from None
        return self.settings


state = State()


@app.callback()
def main(
    lake: Annotated[
        str | None,
        typer.Option(help="Lake root: a folder or s3://bucket/prefix. [env: PEAK_LAKE]"),
    ] = None,
) -> None:
    """Peak Fitness data platform."""
    state.lake_uri = lake
    state.settings = None


def console_script() -> None:
    """The ``peak`` console script (and ``python -m peak``)."""
    # At exit, what the command built (Great Expectations alone is some 100k objects) is left
    # to the OS rather than walked by the cyclic collector: about 0.9 s per command that used
    # it. Registered first, so it runs after every other exit handler.
    atexit.register(gc.freeze)
    app(prog_name="peak")


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def reported(command: str, options: dict[str, Any]) -> Iterator[RunReport]:
    """Run a command under a run report that is saved whatever happens."""
    lake, settings = state.lake, state.config  # bad settings end here, in one line
    report = RunReport(command, lake=lake.root, options=options)
    report.options.setdefault("gym_timezone", settings.gym_timezone)
    try:
        yield report
    except typer.Exit:
        report.finish("ok" if report.status == "running" else report.status, report.error)
        _save(lake, report)
        raise
    except KeyboardInterrupt:
        report.finish("interrupted", "interrupted")
        _save(lake, report)
        raise fail("interrupted") from None
    except Exception as exc:
        message = one_line(exc)
        report.finish("failed", message)
        _save(lake, report)
        if os.environ.get("PEAK_DEBUG"):
            raise
        raise fail(message) from exc
    report.finish("ok")
    _save(lake, report)


def _save(lake: Lake, report: RunReport) -> None:
    try:
        key = report.save(lake)
        console.print(f"run report: {lake.uri(key)}", highlight=False, soft_wrap=True)
    except Exception as exc:  # never hide the original outcome
        console.print(f"[yellow]warning:[/] could not save the run report: {one_line(exc)}")


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and not os.environ.get("PEAK_PROGRESS"),
    )


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
