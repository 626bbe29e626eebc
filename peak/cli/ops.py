"""``peak deploy package``, ``peak cost`` and ``peak prune``: running the platform on AWS.

Registered on the main app by :func:`register` (idempotent). ``cost`` and ``prune`` write a run
report like every command; ``deploy package`` records itself in ``dist/manifest.json`` instead,
since the lake it packages for may not exist yet (see :mod:`peak.ops.deploy`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from peak.cli.app import console, fail, out, parse_date, reported, state
from peak.core.lake import Lake
from peak.core.report import one_line
from peak.ops import cost, deploy, prune
from peak.ops.prune import ZONES


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.005 or value == 0 else f"${value:,.4f}"


def package_command(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where to build (artifacts/, template.json).")
    ] = Path("dist"),
) -> None:
    """Build the Lambda, Glue and CodeBuild artefacts and render the CloudFormation template.

    The template is rendered for the lake (--lake or PEAK_LAKE, an s3:// URI); see
    docs/deploy.md for uploading and deploying it.
    """

    try:
        lake = Lake.from_uri(state.lake_uri or state.config.lake)
        if lake.is_local:
            raise ValueError(
                f"deploy package renders the stack for an S3 lake, not the folder {lake.root}: "
                "pass --lake s3://bucket[/prefix] or set PEAK_LAKE"
            )
        with console.status("packaging"):
            result = deploy.package(lake, out_dir.resolve())
    except Exception as exc:
        raise fail(one_line(exc)) from exc
    table = Table(title=f"deploy package for {lake.root} -> {out_dir}")
    for col in ("artefact", "key", "size", "sha256"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for item in result.artefacts:
        table.add_row(item.name, escape(item.key), _size(item.size), item.sha256)
    out.print(table)
    out.print(
        f"next: aws s3 sync {out_dir}/artifacts s3://<ArtifactsBucketName>/<ArtifactsPrefix>, then "
        f"aws cloudformation deploy --template-file {out_dir}/template.json (docs/deploy.md)",
        highlight=False,
        soft_wrap=True,
    )


def cost_command(
    days: Annotated[int, typer.Option(min=1, help="Window of run reports to measure.")] = 30,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    workers: Annotated[
        int | None, typer.Option(min=2, help="Glue workers of Spark runs (template default 2).")
    ] = None,
    worker_type: Annotated[
        str | None, typer.Option(help="Glue worker type of Spark runs (G.1X, G.2X...).")
    ] = None,
    execution_class: Annotated[
        str, typer.Option(help="Glue execution class: FLEX (template default) or STANDARD.")
    ] = "FLEX",
) -> None:
    """Estimate the monthly AWS cost from the lake's volumes and run reports, vs the budget.

    The design's budget is Glue ~$1.20 and Athena ~$0.50 a month; prices live in peak/ops/cost.py.
    """

    options = {"days": days, "execution_class": execution_class}
    with reported("cost", options) as report:
        result = cost.estimate(
            state.lake,
            days=days,
            workers=workers or deploy.GLUE_DEFAULT_WORKERS,
            worker_type=worker_type or deploy.GLUE_DEFAULT_WORKER_TYPE,
            execution_class=execution_class,
        )
        report.stages["cost"] = result.to_dict()
        if json_output:
            print(cost.to_json(result))
            return
        title = (
            f"monthly cost estimate ({result.observed_days:,.1f} of {days} days observed; "
            f"list prices {cost.PRICES_REGION}, {cost.PRICES_DATE})"
        )
        table = Table(title=title, show_footer=True)
        table.add_column("service", footer="total")
        table.add_column("usage")
        table.add_column("basis")
        table.add_column("list", justify="right")
        table.add_column("billed", justify="right", footer=_usd(result.total_usd))
        table.add_column("budget", justify="right", footer=_usd(result.budget_usd))
        table.add_column("status", footer=f"budgeted {_usd(result.budgeted_usd)}: {result.status}")
        for line in result.lines:
            budget = "" if line.budget_usd is None else _usd(line.budget_usd)
            colour = {"over budget": "red", "within budget": "green"}.get(line.status, "")
            status = f"[{colour}]{line.status}[/]" if colour else line.status
            table.add_row(
                line.service,
                escape(line.usage),
                line.basis,
                _usd(line.list_usd),
                _usd(line.billed_usd),
                budget,
                status,
            )
        out.print(table)
        for line in result.lines:
            if line.basis in ("estimated", "assumed") and line.note:
                out.print(f"{line.service} ({line.basis}): {escape(line.note)}")


def prune_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    as_of: Annotated[
        str | None, typer.Option(help="Apply the retention as of this day (YYYY-MM-DD).")
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(help=f"Only these zones (repeatable): {', '.join(ZONES)}."),
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Files listed on a dry run.")] = 50,
) -> None:
    """Remove files past their zone's retention: raw 30 days, processed 1 year, quarantine 90;
    and snapshot versions closed more than a year ago (the local warehouse).

    The same rules as the deployed buckets' S3 lifecycle rules (peak/ops/prune.py).
    """

    for name in zone or []:
        if name not in ZONES:
            raise fail(f"unknown zone {name!r} (known: {', '.join(ZONES)})")
    day = parse_date(as_of) if as_of else dt.datetime.now(dt.UTC).date()
    options = {"dry_run": dry_run, "as_of": day.isoformat(), "zones": zone}
    with reported("prune", options) as report:
        result = prune.prune(
            state.lake, as_of=day, dry_run=dry_run, zones=zone, run_id=report.run_id
        )
        report.stages["prune"] = result.to_dict()
        if dry_run and result.keys:
            listing = Table(title=f"would remove ({min(limit, len(result.keys))} shown)")
            listing.add_column("key")
            for key in result.keys[:limit]:
                listing.add_row(escape(key))
            out.print(listing)
            if len(result.keys) > limit:
                out.print(f"… and {len(result.keys) - limit:,} more")
        verb = "would remove" if dry_run else "removed"
        table = Table(title=f"prune as of {day} ({verb})", show_footer=True)
        table.add_column("zone", footer="total")
        table.add_column("keeps", justify="right")
        table.add_column("dated before", justify="right")
        table.add_column("files", justify="right", footer=f"{result.files:,}")
        table.add_column("bytes", justify="right", footer=_size(result.bytes))
        table.add_column("rows", justify="right")
        table.add_column("kept: not yet transformed", justify="right")
        for stats in result.zones.values():
            table.add_row(
                stats.zone,
                f"{stats.days} days",
                stats.cutoff,
                f"{stats.files:,}",
                _size(stats.bytes),
                f"{stats.rows:,}" if stats.zone == prune.SNAPSHOTS else "",
                f"{stats.kept_unprocessed:,}",
            )
        out.print(table)
        for stats in result.zones.values():
            if stats.note:
                out.print(f"{stats.zone}: {escape(stats.note)}")


def register(app: typer.Typer) -> None:
    """Add ``deploy package``, ``cost`` and ``prune`` to the app (once)."""
    if any(group.name == "deploy" for group in app.registered_groups):
        return
    deploy_app = typer.Typer(help="Build and render what deploys to AWS (infra/, docs/deploy.md).")
    deploy_app.command("package")(package_command)
    app.add_typer(deploy_app, name="deploy")
    app.command("cost")(cost_command)
    app.command("prune")(prune_command)
