"""``peak activate``: push the marts to Redis, HubSpot and SES (see ``activation/``).

``peak.cli`` registers the command with :func:`register`; ``peak run`` calls :func:`activate`
after ``dbt build``. ``peak.cli`` is imported inside the functions because it imports this
module at its end.

Exit codes: ``0`` every sink ok; otherwise one bit per failed sink (leaderboard ``4``, hubspot
``8``, email ``16``: :func:`activation.runner.exit_code`), ``1`` for any other failure, ``2``
for bad usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from activation import SINK_NAMES
from peak.cli.app import fail, out, progress_bar, reported, state
from peak.cli.model import TargetOption
from peak.core.layout import ACTIVATION_LOCK_KEY
from peak.core.locks import lake_lock
from peak.core.report import ATHENA_BYTES_SCANNED, RunReport
from peak.core.settings import Target

if TYPE_CHECKING:  # the sinks pull in pyarrow and redis: imported when a command runs
    from activation.base import SinkContext, SinkResult

COMMAND = "activate"
#: What ``peak activate`` accepts: a sink's name or ``all``.
SinkChoice = Literal[(*SINK_NAMES, "all")]  # type: ignore[valid-type]


def activate(
    report: RunReport,
    names: list[str],
    dry_run: bool = False,
    target: Target | None = None,
) -> dict[str, SinkResult]:
    """Run the named sinks (``all`` allowed) against the published marts; record them in the
    report's ``activation`` stage. Prints nothing and never exits: the caller decides."""
    from activation.base import SinkContext  # deferred: duckdb
    from activation.runner import STALE_LOCK, record, resolve  # deferred: sink clients
    from peak.model.warehouse import open_warehouse  # deferred: duckdb

    lake, settings = state.lake, state.config
    chosen = resolve(names)
    with lake_lock(
        lake, ACTIVATION_LOCK_KEY, report.run_id, what="activation", stale_after=STALE_LOCK
    ):
        ctx = SinkContext(
            lake=lake,
            warehouse=open_warehouse(lake, settings, target),
            run_id=report.run_id,
            dry_run=dry_run,
        )
        results = _run(ctx, chosen)
    record(report, results)
    scanned = getattr(ctx.warehouse, "bytes_scanned", None)
    if scanned is not None:  # the Athena reader: what the sinks' reads scanned, for `peak cost`
        report.stages["warehouse"] = {"target": ctx.warehouse.name, ATHENA_BYTES_SCANNED: scanned}
    return results


def _run(ctx: SinkContext, chosen: list[str]) -> dict[str, SinkResult]:
    from activation.runner import run_sinks  # deferred: sink clients

    with progress_bar() as progress:
        task = progress.add_task("activate", total=len(chosen))

        def done(name: str, result: SinkResult) -> None:
            progress.update(task, advance=1, description=f"{name}: {result.status}")

        return run_sinks(ctx, chosen, state.config, on_done=done)


def print_summary(results: dict[str, SinkResult], title: str = "activate") -> None:
    """The summary table: one row per sink."""

    table = Table(title=title)
    columns = ("sink", "records", "sent", "unchanged", "failed", "retried", "status")
    for col in columns:
        table.add_column(col, justify="left" if col in ("sink", "status") else "right")
    for name, r in results.items():
        status = f"{r.status} (dry run)" if r.dry_run and r.status == "ok" else r.status
        counts = (r.records, r.sent, r.unchanged, r.failed, r.retried)
        table.add_row(name, *(f"{n:,}" for n in counts), status)
    out.print(table)
    for r in results.values():
        if r.outbox:
            out.print(f"{r.sink} outbox: {r.outbox}", highlight=False, soft_wrap=True)


def fail_on_errors(report: RunReport, results: dict[str, SinkResult]) -> None:
    """Mark the report failed and exit with the sinks' bits if any sink failed."""
    from activation.runner import exit_code, failed  # deferred: sink clients

    code = exit_code(results)
    if not code:
        return
    message = "; ".join(f"{name}: {results[name].error}" for name in failed(results))
    report.status = "failed"
    report.error = message
    raise fail(message, code)


def activate_command(
    sink: Annotated[
        SinkChoice,
        typer.Argument(
            metavar="SINK",
            help="The sink to run, or all (every sink that is installed).",
            show_default=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write what would be sent to the outbox only.")
    ] = False,
    target: TargetOption = None,
    deploy_templates: Annotated[
        bool,
        typer.Option(
            "--deploy-templates",
            help="email only: create or update the SES templates from activation/templates/ "
            "(idempotent) and send nothing.",
        ),
    ] = False,
    full_resync: Annotated[
        bool,
        typer.Option(
            "--full-resync",
            help="hubspot: rebuild the sync state from the contacts HubSpot holds (a new "
            "portal, contacts deleted there), then send only the differences.",
        ),
    ] = False,
) -> None:
    """Push the marts to the leaderboard, HubSpot and email sinks."""

    if deploy_templates and sink != "email":
        raise fail("--deploy-templates applies to the email sink only")
    if full_resync and sink not in ("hubspot", "all"):
        raise fail("--full-resync applies to the hubspot sink only")
    if full_resync:  # an explicit option wins over PEAK_HUBSPOT_FULL_RESYNC
        config = state.config
        hubspot = config.hubspot.model_copy(update={"full_resync": True})
        state.settings = config.model_copy(update={"hubspot": hubspot})
    options = {"sink": sink, "dry_run": dry_run, "target": target, "full_resync": full_resync}
    if deploy_templates:
        with reported(f"{COMMAND} email --deploy-templates", options) as report:
            results = {"email": _deploy_templates(report, dry_run)}
            print_summary(results, "deploy email templates (records = templates)")
            fail_on_errors(report, results)
        return
    with reported(COMMAND, options) as report:
        results = activate(report, [sink], dry_run=dry_run, target=target)
        print_summary(results, f"activate {sink}{' (dry run)' if dry_run else ''}")
        fail_on_errors(report, results)


def _deploy_templates(report: RunReport, dry_run: bool) -> SinkResult:
    from activation.base import SinkContext  # deferred: duckdb
    from activation.email import EmailSink  # deferred: sink clients
    from activation.runner import record  # deferred: sink clients

    ctx = SinkContext(lake=state.lake, warehouse=None, run_id=report.run_id, dry_run=dry_run)  # type: ignore[arg-type]
    result = EmailSink(settings=state.config).deploy_templates(ctx)
    record(report, {"email": result})
    return result


def register(app: typer.Typer) -> None:
    """Add ``peak activate SINK`` to the app (once: a second call does nothing)."""
    if any(command.name == COMMAND for command in app.registered_commands):
        return
    app.command(COMMAND)(activate_command)
