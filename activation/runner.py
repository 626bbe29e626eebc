"""Run activation sinks by name, record what they did, and turn failures into an exit code.

Sinks are registered by name in :data:`SINKS` as factories taking the
:class:`~peak.core.settings.Settings`. A sink in its own package (``activation/hubspot/``,
``activation/email/``) is imported only when it runs, so the runner works before that package
exists: ``all`` means every sink whose package is present. A sink class is constructed as
``Sink(settings=settings)`` when its ``__init__`` takes ``settings``, else as ``Sink()``.

Every sink runs, whatever happened to the ones before it: an exception becomes a failed
:class:`~activation.base.SinkResult` with a one-line error.

Exit codes: ``0`` when no sink failed; otherwise the sum of one bit per failed sink, in the fixed
order of :data:`EXIT_ORDER`: leaderboard ``4``, hubspot ``8``, email ``16`` (``4 << index``; the
CLI already uses ``1`` for a generic failure and ``3`` for rejected files). A failed sink that is
not in that order adds ``1``. So ``12`` means leaderboard and hubspot failed.

One activation at a time per lake: ``peak activate`` and ``peak run`` hold the lake's
activation lock (:func:`peak.core.locks.lake_lock`) while sinks run, so a scheduled run and a manual
one never both send the same e-mails or race on a sink's state.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from activation import SINK_NAMES
from activation.base import Sink, SinkContext, SinkError, SinkResult
from activation.leaderboard.sink import LeaderboardSink
from peak.core.report import RunReport, one_line
from peak.core.settings import Settings

#: When an S3 activation lock is a killed run's: the activation CodeBuild project times out at
#: 45 minutes, so a lock twice that old has no live owner (checked by the infrastructure tests).
STALE_LOCK = dt.timedelta(minutes=90)

SinkFactory = Callable[[Settings], Sink]

#: The exit-code bit of each sink: ``4 << EXIT_ORDER.index(name)``. Append only.
EXIT_ORDER = SINK_NAMES
EXIT_FIRST_BIT = 4
#: Added for a failed sink that has no bit of its own.
EXIT_OTHER = 1
#: The run report's stage holding one line per sink.
STAGE = "activation"


def _construct(cls: type, settings: Settings) -> Sink:
    """``cls(settings=settings)`` if it takes settings, else ``cls()``."""
    takes_settings = "settings" in inspect.signature(cls).parameters
    return cls(settings=settings) if takes_settings else cls()


class LazySink:
    """A factory for a sink class in a module that may not exist yet."""

    def __init__(self, module: str, attribute: str) -> None:
        self.module = module
        self.attribute = attribute

    @property
    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def __call__(self, settings: Settings) -> Sink:
        if not self.available:
            raise SinkError(f"{self.module} is not installed yet")
        cls = getattr(importlib.import_module(self.module), self.attribute)
        return _construct(cls, settings)


SINKS: dict[str, SinkFactory] = {
    "leaderboard": LeaderboardSink,
    "hubspot": LazySink("activation.hubspot", "HubSpotSink"),
    "email": LazySink("activation.email", "EmailSink"),
}
assert tuple(SINKS) == SINK_NAMES, "register every sink in activation.SINK_NAMES, in order"


def available() -> list[str]:
    """The sinks that can run now, in registry order."""
    return [name for name, f in SINKS.items() if getattr(f, "available", True)]


def resolve(names: Iterable[str]) -> list[str]:
    """Expand ``all``, drop repeats and refuse unknown names (``ValueError``)."""
    chosen: list[str] = []
    for name in names:
        if name == "all":
            expanded = available()
        elif name in SINKS:
            expanded = [name]
        else:
            raise ValueError(f"unknown sink {name!r} (known: {', '.join(SINKS)}, all)")
        chosen.extend(n for n in expanded if n not in chosen)
    return chosen


def run_sink(name: str, ctx: SinkContext, settings: Settings) -> SinkResult:
    """Run one sink; any exception becomes a failed result."""
    try:
        result = SINKS[name](settings).run(ctx)
    except Exception as exc:
        message = str(exc) if isinstance(exc, SinkError) else one_line(exc)
        return SinkResult(sink=name, status="failed", error=message, dry_run=ctx.dry_run)
    result.sink = name
    return result


def run_sinks(
    ctx: SinkContext,
    names: Iterable[str],
    settings: Settings | None = None,
    on_done: Callable[[str, SinkResult], Any] | None = None,
) -> dict[str, SinkResult]:
    """Run the named sinks (``all`` allowed) one after the other; one result per sink.

    ``settings`` defaults to the environment's (an entry point should pass its own).
    """
    settings = settings if settings is not None else Settings.load()
    results: dict[str, SinkResult] = {}
    for name in resolve(names):
        results[name] = run_sink(name, ctx, settings)
        if on_done is not None:
            on_done(name, results[name])
    return results


def record(report: RunReport, results: dict[str, SinkResult]) -> None:
    """One line per sink in ``report.stages["activation"]``."""
    stage = report.stages.setdefault(STAGE, {})
    for name, result in results.items():
        stage[name] = result.to_dict()


def failed(results: dict[str, SinkResult]) -> list[str]:
    return [name for name, result in results.items() if result.status == "failed"]


def exit_code(results: dict[str, SinkResult]) -> int:
    """0, or one bit per failed sink (see the module's documentation)."""
    code = 0
    for name in failed(results):
        code |= EXIT_FIRST_BIT << EXIT_ORDER.index(name) if name in EXIT_ORDER else EXIT_OTHER
    return code
