"""``peak generate``, ``peak ingest``, ``peak transform`` and ``peak run``: the pipeline's stages.

Each command parses its options, runs the stage's library function (:mod:`ingestion.land`,
:mod:`glue.transform`, :mod:`generator`) under a run report, and prints a summary table.
``peak run`` chains ingest, transform, :func:`peak.cli.model.run_build` and activation.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

import contracts
from peak.cli import activate as cli_activate
from peak.cli.app import (
    EXIT_REJECTED,
    console,
    fail,
    out,
    parse_date,
    progress_bar,
    reported,
    state,
)
from peak.cli.model import run_build
from peak.core.report import RunReport
from peak.core.settings import Engine, Target

# ---------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------


def _summary(report: RunReport, title: str) -> None:
    table = Table(title=title)
    columns = ("dataset", "files", "rejected", "rows landed", "rows in", "valid", "quarantined")
    for col in (*columns, "deduplicated"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, stats in sorted(report.datasets.items()):
        table.add_row(
            name,
            f"{stats.files_landed + stats.files_already_landed + len(stats.rejected_files):,}",
            f"{len(stats.rejected_files):,}",
            f"{stats.rows_landed:,}",
            f"{stats.rows_in:,}",
            f"{stats.rows_valid:,}",
            f"{stats.rows_quarantined:,}",
            f"{stats.rows_deduplicated:,}",
        )
    out.print(table)
    rejected = report.rejected_files
    if rejected:
        bad = Table(title="rejected files (kept byte for byte under quarantine/)")
        for col in ("file", "rule", "reason"):
            bad.add_column(col)
        for item in rejected:
            bad.add_row(escape(item.file.rsplit("/", 1)[-1]), item.code, escape(item.reason))
        out.print(bad)
    reasons = {}
    for name, stats in report.datasets.items():
        for code, n in stats.reasons.items():
            reasons[f"{name}.{code}"] = n
    if reasons:
        table = Table(title="quarantined rows by rule")
        table.add_column("dataset.column.rule")
        table.add_column("rows", justify="right")
        table.add_column("rule")
        for code, n in sorted(reasons.items()):
            ds, rule_code = code.split(".", 1)
            table.add_row(code, f"{n:,}", escape(contracts.get(ds).rule(rule_code).message))
        out.print(table)


# ---------------------------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------------------------


def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the exports to.")],
    members: Annotated[int, typer.Option(min=1, help="Number of members.")] = 5000,
    days: Annotated[int, typer.Option(min=1, help="Days of check-in history.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 42,
    dirty_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of rows to corrupt; >0 adds bad files.")
    ] = 0.0,
    end_date: Annotated[
        str | None, typer.Option(help="Last day of history, YYYY-MM-DD (default: today).")
    ] = None,
) -> None:
    """Write realistic sample exports (members, classes, daily check-ins)."""
    from generator.generate import generate as run_generate  # deferred: numpy, pandas

    with reported("generate", {"out": str(out_dir), "members": members, "days": days}) as report:
        end = parse_date(end_date) if end_date else None
        with progress_bar() as progress:
            task = progress.add_task("generating days", total=days)
            summary = run_generate(
                out_dir,
                members=members,
                days=days,
                seed=seed,
                dirty_rate=dirty_rate,
                end_date=end,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        table = Table(title=f"generated into {out_dir}")
        for col in ("dataset", "rows", "of which dirty"):
            table.add_column(col, justify="left" if col == "dataset" else "right")
        for name, rows in sorted(summary.rows.items()):
            table.add_row(name, f"{rows:,}", f"{summary.dirty_rows.get(name, 0):,}")
            report.dataset(name).rows_landed = rows
        out.print(table)
        out.print(f"{len(summary.files):,} files, {len(summary.bad_files)} deliberately bad")
        report.stages["generate"] = {
            "files": len(summary.files),
            "bad_files": [str(p) for p in summary.bad_files],
        }


# ---------------------------------------------------------------------------------------------
# ingest
# ---------------------------------------------------------------------------------------------


def _day(value: str | None, timezone: str) -> dt.date | None:
    """``--date``: a day that has begun somewhere we count (UTC or the gyms' time zone). A
    future day would stamp its rows with an ingestion time after every real one (and a run of
    it would build as of a day not yet lived): refused as bad usage, naming today."""
    if value is None:
        return None
    day = parse_date(value)
    today = max(dt.datetime.now(dt.UTC).date(), dt.datetime.now(ZoneInfo(timezone)).date())
    if day > today:
        raise typer.BadParameter(
            f"{value} is in the future (today is {today})", param_hint="--date"
        )
    return day


def _ingested_at(date: dt.date | None, timezone: str) -> dt.datetime:
    """Now (naive UTC), or for a backfill of day D the end of D in the gym's time zone, in UTC
    and never later than now: D's rules see D as 'today', and a gym west of UTC keeps its
    evening check-ins, which fall on D + 1 in UTC."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    if date is None or date == now.date():
        return now
    local_end = dt.datetime.combine(date, dt.time(23, 59, 59), tzinfo=ZoneInfo(timezone))
    end = local_end.astimezone(dt.UTC).replace(tzinfo=None)
    return min(end, now) if date < now.date() else end


def _ingest(
    report: RunReport,
    sources: list[str],
    *,
    dataset: str | None,
    ingested_at: dt.datetime,
) -> None:
    from ingestion.land import land_many, record_landing  # deferred: pyarrow

    with progress_bar() as progress:
        task = progress.add_task("landing exports", total=len(sources))

        def done(result) -> None:
            record_landing(report, result)
            progress.advance(task)

        results = land_many(
            state.lake, sources, ingested_at=ingested_at, dataset=dataset, on_file=done
        )
    report.stages["ingest"] = {
        "files": len(results),
        "landed": sum(r.status == "landed" for r in results),
        "already_landed": sum(r.status == "already_landed" for r in results),
        "rejected": sum(r.rejected for r in results),
    }


def _strict_exit(report: RunReport, strict: bool) -> None:
    if strict and report.rejected_files:
        report.status = "rejected"
        raise fail(f"{len(report.rejected_files)} file(s) rejected (--strict)", EXIT_REJECTED)


def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, folders or s3:// URIs to land.")],
    dataset: Annotated[
        str | None, typer.Option(help="Dataset of every file (default: from each file's name).")
    ] = None,
    date: Annotated[
        str | None, typer.Option(help="Ingest as of this day, YYYY-MM-DD (backfills).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit non-zero if any file is rejected.")] = False,
) -> None:
    """Land exports in the raw zone and convert them to raw Parquet."""
    from ingestion.land import expand_sources  # deferred: pyarrow

    if dataset is not None and dataset not in contracts.load_all():
        _unknown_dataset(dataset)
    day = _day(date, state.config.gym_timezone)
    with reported("ingest", {"paths": paths, "dataset": dataset, "date": date}) as report:
        sources = expand_sources(paths)
        _ingest(
            report,
            sources,
            dataset=dataset,
            ingested_at=_ingested_at(day, state.config.gym_timezone),
        )
        _summary(report, "ingest")
        _strict_exit(report, strict)


def _unknown_dataset(name: str) -> None:
    raise fail(f"unknown dataset {name!r} (known: {', '.join(contracts.load_all())})")


# ---------------------------------------------------------------------------------------------
# transform
# ---------------------------------------------------------------------------------------------


def _transform(
    report: RunReport, *, engine: str, reprocess: bool, quality: bool, datasets: list[str] | None
) -> None:
    from glue.engine import build_engine  # deferred: duckdb or pyspark
    from glue.transform import TransformOptions, transform  # deferred: duckdb, Great Expectations

    settings = state.config
    names = datasets or list(contracts.load_all())
    with progress_bar() as progress:
        task = progress.add_task(f"transform ({engine})", total=len(names))
        transform(
            state.lake,
            engine=build_engine(engine, settings),
            report=report,
            options=TransformOptions.from_settings(settings, reprocess=reprocess, quality=quality),
            datasets=names,
            progress=lambda ds, msg: progress.update(task, description=f"{ds}: {msg}"),
            done=lambda _ds: progress.advance(task),
        )
        progress.update(task, description=f"transform ({engine}): done")
    report.stages["transform"] = {"engine": engine, "reprocess": reprocess}


EngineOption = Annotated[
    Engine | None,
    typer.Option(help="duckdb (single node, the default) or spark. [env: PEAK_ENGINE]"),
]


def transform(
    engine: EngineOption = None,
    reprocess: Annotated[
        bool, typer.Option(help="Rebuild the processed zone from every raw file.")
    ] = False,
    dataset: Annotated[
        list[str] | None, typer.Option(help="Only these datasets (repeatable).")
    ] = None,
    quality: Annotated[
        bool, typer.Option(help="Check staged partitions with Great Expectations.")
    ] = True,
) -> None:
    """Validate, type, de-duplicate and partition the new raw files (the Glue job, locally)."""
    for name in dataset or []:
        if name not in contracts.load_all():
            _unknown_dataset(name)
    chosen = engine or state.config.engine
    with reported("transform", {"engine": chosen, "reprocess": reprocess}) as report:
        _transform(report, engine=chosen, reprocess=reprocess, quality=quality, datasets=dataset)
        _summary(report, f"transform ({chosen})")


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


def select_for_date(sources: list[str], day: dt.date | None) -> list[str]:
    """The exports of one day: files dated that day in their names, and undated files."""
    if day is None:
        return sources
    wanted = day.isoformat()
    chosen = []
    for source in sources:
        stamped = contracts.export_date_from_name(source.rsplit("/", 1)[-1])
        if stamped is None or stamped == wanted:
            chosen.append(source)
    return chosen


def run(
    date: Annotated[
        str | None, typer.Option(help="The day to run, YYYY-MM-DD (default: today).")
    ] = None,
    input_dir: Annotated[
        str | None, typer.Option("--input", help="Folder or s3:// prefix holding the exports.")
    ] = None,
    engine: EngineOption = None,
    target: Annotated[
        Target | None, typer.Option(help="dbt target: local or athena. [env: PEAK_DBT_TARGET]")
    ] = None,
    build: Annotated[bool, typer.Option(help="Run dbt build after the transform.")] = True,
    activate: Annotated[
        bool, typer.Option(help="Run every activation sink after a passing build.")
    ] = True,
    strict: Annotated[bool, typer.Option(help="Exit non-zero if any file is rejected.")] = False,
) -> None:
    """Run every stage for one day: ingest, transform, dbt build, then activation."""
    from ingestion.land import expand_sources  # deferred: pyarrow

    chosen = engine or state.config.engine
    dbt_target = target or state.config.dbt_target
    day = _day(date, state.config.gym_timezone)
    options = {"date": date, "input": input_dir, "engine": chosen, "target": dbt_target}
    with reported("run", options) as report:
        if input_dir:
            sources = select_for_date(expand_sources([input_dir]), day)
            _ingest(
                report,
                sources,
                dataset=None,
                ingested_at=_ingested_at(day, state.config.gym_timezone),
            )
        _transform(report, engine=chosen, reprocess=False, quality=True, datasets=None)
        _summary(report, f"run {date or 'today'}")
        written = report.dataset("attendance").partitions_written
        built = build and run_build(report, target=dbt_target, as_of=date, changed_days=written)
        if not built:
            # A failed test (severity error) or a skipped build holds every sink back.
            stage = report.stages.get("build", {"skipped": "--no-build"})
            why = stage.get("skipped") or f"dbt build failed: {stage.get('error')}"
            report.stages["activation"] = {"skipped": why}
            if "skipped" not in stage:
                raise RuntimeError(stage.get("error") or "dbt build failed")
            console.print(f"[yellow]activation skipped:[/] {escape(why)}")
            _strict_exit(report, strict)
            return
        if activate:
            results = cli_activate.activate(report, ["all"], target=dbt_target)
            cli_activate.print_summary(results, f"activate (run {date or 'today'})")
            _strict_exit(report, strict)
            cli_activate.fail_on_errors(report, results)
        _strict_exit(report, strict)


def register(app: typer.Typer) -> None:
    """Add ``generate``, ``ingest``, ``transform`` and ``run`` to the app."""
    for command in (generate, ingest, transform, run):
        app.command()(command)
