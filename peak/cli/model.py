"""``peak build``, ``peak docs``, ``peak catalog sync`` and ``peak dbt-sources``: the model stage.

Registered on the main app by :func:`register`; ``peak run`` calls :func:`run_build` after the
transform. A build on the local target that passes publishes the warehouse's serving copy
(:func:`peak.model.warehouse.publish`), which every consumer reads.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from peak.cli.app import console, fail, out, parse_date, progress_bar, reported, state
from peak.core.report import RunReport
from peak.core.settings import Target
from peak.model import catalog, dbt
from peak.model.dbt import PROJECT_DIR

TargetOption = Annotated[
    Target | None,
    typer.Option(help="dbt target: local (DuckDB) or athena. [env: PEAK_DBT_TARGET]"),
]


def _build_vars(as_of: str | None, days: list[str] | None = None) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if as_of is not None:
        parse_date(as_of)
        out["as_of_date"] = as_of
    if days:
        out["attendance_days"] = sorted(days)
    return out or None


def _node_table(result: Any, title: str) -> Table:
    from collections import Counter

    counts: Counter[tuple[str, str]] = Counter()
    for node in result.nodes:
        counts[(node.resource_type.split(".")[-1], node.status)] += 1
    table = Table(title=title)
    for col in ("resource", "status", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for (kind, status), n in sorted(counts.items()):
        table.add_row(kind, status, f"{n:,}")
    return table


def _print_problems(result: Any) -> None:
    problems = [n for n in result.nodes if n.status in ("error", "fail", "warn", "runtime error")]
    if not problems:
        return
    table = Table(title="failures and warnings")
    for col in ("node", "status", "rows", "message"):
        table.add_column(col)
    for node in problems:
        first_line = (node.message or "").strip().splitlines()[:1]
        table.add_row(
            node.name,
            node.status,
            "" if node.failures is None else f"{node.failures:,}",
            escape(first_line[0] if first_line else ""),
        )
    out.print(table)


def run_build(
    report: RunReport,
    *,
    target: str,
    select: list[str] | None = None,
    exclude: list[str] | None = None,
    full_refresh: bool = False,
    as_of: str | None = None,
    changed_days: list[str] | None = None,
) -> bool:
    """``dbt build`` for the run report; publishes the serving warehouse when it passes.

    Returns False when the build failed or could not start (a source with no data yet).
    """
    from peak.model.warehouse import publish  # deferred: duckdb

    lake = state.lake
    missing = dbt.missing_sources(lake) if target == "local" else []
    if missing:
        reason = f"the processed zone has no {', '.join(missing)} yet"
        report.stages["build"] = {"target": target, "skipped": reason, "success": False}
        console.print(f"[yellow]dbt build skipped:[/] {reason}")
        return False
    if target == "local" and _missing_models(lake):
        # dbt unit tests of incremental models read the model's columns from the warehouse:
        # when models are missing (a first build, a new model), create them empty first (what
        # dbt's docs advise).
        with console.status("first build: creating empty models"):
            empty = dbt.invoke(
                lake,
                "build --empty",
                target=target,
                args=["--exclude", "resource_type:test", "resource_type:unit_test"],
                on_node=lambda *_: None,
            )
        if not empty.success:
            raise RuntimeError(empty.error or "dbt build --empty failed")
    args: list[str] = []
    for sel in select or []:
        args += ["--select", sel]
    for sel in exclude or []:
        args += ["--exclude", sel]
    if full_refresh:
        args.append("--full-refresh")
    with progress_bar() as progress:
        task = progress.add_task(f"dbt build ({target})", total=None)

        def finished(name: str, status: str) -> None:
            progress.update(task, advance=1, description=f"dbt build: {name} {status}")

        result = dbt.invoke(
            lake,
            "build",
            target=target,
            args=args,
            vars=_build_vars(as_of, changed_days),
            on_node=finished,
        )
        progress.update(task, description=f"dbt build ({target}): done", total=len(result.nodes))
    stage: dict[str, Any] = {"target": target, **result.to_dict()}
    if result.success and target == "local":
        stage["published"] = str(publish(lake))
    report.stages["build"] = stage
    if result.success:
        report.stages["freshness"] = dbt.freshness(lake, target)
    out.print(_node_table(result, f"dbt build ({target})"))
    _print_problems(result)
    if result.success:
        _print_freshness(report.stages["freshness"])
    return result.success


def _print_freshness(rows: list[dict[str, Any]]) -> None:
    table = Table(title="source freshness (contracts' warn/error thresholds)")
    for col in ("source", "status", "newest load (UTC)", "age h"):
        table.add_column(col, justify="right" if col == "age h" else "left")
    for row in rows:
        age = "" if row["age_hours"] is None else f"{row['age_hours']:,.1f}"
        table.add_row(row["source"], row["status"], row["max_loaded_at"] or "", age)
    out.print(table)


def _missing_models(lake: Any) -> set[str]:
    """The project's models (one per SQL file) the local warehouse does not hold yet."""
    import duckdb

    from peak.model.warehouse import build_path  # deferred: duckdb

    models = {path.stem for path in (PROJECT_DIR / "models").rglob("*.sql")}
    path = build_path(lake)
    if not path.exists():
        return models
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {
            row[0]
            for row in con.execute("select table_name from information_schema.tables").fetchall()
        }
    finally:
        con.close()
    return models - tables


def register(app: typer.Typer) -> None:
    catalog_app = typer.Typer(help="The Glue Data Catalog over the processed zone.")
    app.add_typer(catalog_app, name="catalog")

    @app.command()
    def build(
        target: TargetOption = None,
        select: Annotated[
            list[str] | None, typer.Option(help="dbt node selection (repeatable).")
        ] = None,
        exclude: Annotated[
            list[str] | None, typer.Option(help="dbt nodes to exclude (repeatable).")
        ] = None,
        full_refresh: Annotated[
            bool, typer.Option(help="Rebuild incremental models from scratch.")
        ] = False,
        compile_only: Annotated[
            bool,
            typer.Option(
                help="Compile every model and parse it as the target's SQL; run none. On athena: "
                "both forms of every model, typed, checked for Trino/DuckDB hazards."
            ),
        ] = False,
        compare: Annotated[
            bool,
            typer.Option(
                help="athena: also run each compiled model on DuckDB and compare its rows with "
                "the local warehouse's (docs/athena.md)."
            ),
        ] = False,
        as_of: Annotated[
            str | None, typer.Option(help="Measure churn and streaks from this day (YYYY-MM-DD).")
        ] = None,
    ) -> None:
        """Run dbt build (models, snapshots, tests) on the processed zone."""
        chosen = target or state.config.dbt_target
        options = {"target": chosen, "select": select, "full_refresh": full_refresh}
        if compare and chosen != "athena":
            raise fail("--compare runs the athena target's SQL: add --target athena", code=2)
        with reported("build", {**options, "compile_only": compile_only}) as report:
            if chosen == "athena" and (compile_only or compare):
                athena_check(report, select or [], compare=compare, as_of=as_of)
                return
            if compile_only:
                _compile_only(report, chosen, select or [])
                return
            if not run_build(
                report,
                target=chosen,
                select=select,
                exclude=exclude,
                full_refresh=full_refresh,
                as_of=as_of,
            ):
                raise RuntimeError(report.stages["build"].get("error") or "dbt build failed")

    @app.command()
    def docs(
        serve: Annotated[bool, typer.Option(help="Serve the site after generating it.")] = False,
        port: Annotated[int, typer.Option(help="Port to serve on.")] = 8080,
        target: TargetOption = None,
    ) -> None:
        """Generate the dbt docs site (static, usable offline) and optionally serve it."""

        chosen = target or state.config.dbt_target
        with reported("docs", {"target": chosen}) as report:
            lake = state.lake
            with console.status("dbt docs generate"):
                result = dbt.invoke(lake, "docs generate --static", target=chosen)
            if not result.success:
                raise RuntimeError(result.error or "dbt docs generate failed")
            site = dbt.target_path(lake, chosen)
            report.stages["docs"] = {"site": str(site / "index.html")}
            out.print(f"docs: {site / 'index.html'}")
            out.print(f"offline single file: {site / 'static_index.html'}")
        if serve:
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
            with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
                console.print(f"serving the docs on http://127.0.0.1:{port} (Ctrl+C stops)")
                with contextlib.suppress(KeyboardInterrupt):
                    httpd.serve_forever()

    @app.command("dbt-sources")
    def dbt_sources(
        check: Annotated[
            bool, typer.Option(help="Only check the file is up to date (exit 1 if not).")
        ] = False,
    ) -> None:
        """Regenerate dbt_project's sources file from contracts/ (or check it)."""

        current = dbt.SOURCES_FILE.read_text(encoding="utf-8") if dbt.SOURCES_FILE.exists() else ""
        if check:
            if current != dbt.sources_yaml():
                raise fail(f"{dbt.SOURCES_FILE} is out of date: run `peak dbt-sources`")
            out.print(f"{dbt.SOURCES_FILE} is up to date")
            return
        changed = dbt.write_sources()
        out.print(f"{dbt.SOURCES_FILE}: {'rewritten' if changed else 'unchanged'}")

    @catalog_app.command("sync")
    def catalog_sync(
        dataset: Annotated[
            list[str] | None, typer.Option(help="Only these datasets (repeatable).")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option(help="Show what would change; change nothing.")
        ] = False,
    ) -> None:
        """Create or update the Glue tables (partition projection on dt) from the contracts."""

        with reported("catalog sync", {"datasets": dataset, "dry_run": dry_run}) as report:
            lake = state.lake
            database = state.config.glue_database
            result = catalog.sync(catalog.client_for(lake), database, lake, dataset, dry_run)
            report.stages["catalog"] = result.to_dict()
            table = Table(title=f"Glue database {database}{' (dry run)' if dry_run else ''}")
            table.add_column("table")
            table.add_column("action")
            for action in ("created", "updated", "unchanged", "orphaned"):
                for name in getattr(result, action):
                    table.add_row(name, action)
            out.print(table)


def _compile_only(report: RunReport, target: str, select: list[str]) -> None:
    """Compile every model for the local target and parse each with sqlglot (athena's
    compile-only is :func:`athena_check`)."""

    lake = state.lake
    args = ["--select", *(select or ["resource_type:model"])]
    with console.status(f"dbt compile ({target})"):
        result = dbt.invoke(lake, "compile", target=target, args=args)
    if not result.success:
        raise RuntimeError(result.error or "dbt compile failed")
    checks = dbt.check_compiled(result, target)
    bad = [c for c in checks if not c.ok]
    table = Table(title=f"compiled for {target}, parsed as {dbt.DIALECTS[target]} SQL")
    for col in ("model", "parses", "error"):
        table.add_column(col)
    for check in checks:
        table.add_row(check.model, "yes" if check.ok else "NO", escape(check.error))
    out.print(table)
    report.stages["compile"] = {
        "target": target,
        "models": len(checks),
        "unparseable": [{"model": c.model, "error": c.error} for c in bad],
    }
    if not checks:
        raise RuntimeError("no model was compiled")
    if bad:
        raise RuntimeError(f"{len(bad)} compiled model(s) do not parse as {target} SQL")


def athena_check(report: RunReport, select: list[str], *, compare: bool, as_of: str | None) -> None:
    """``--compile-only`` (and ``--compare``) on athena: both forms of every model compiled,
    typed and checked for the Trino/DuckDB hazards; with ``compare``, each run on DuckDB and
    compared with the local warehouse (docs/athena.md)."""
    from peak.model.athena import check, compare_rows, project  # deferred: sqlglot, duckdb, moto

    lake = state.lake
    if compare and as_of is None:
        as_of = compare_rows.built_as_of(lake)
    with console.status("compiling for Athena: full-refresh and incremental forms"):
        compiled = project.compile_project(
            lake, vars=_build_vars(as_of), work_group=state.config.athena.work_group
        )
    try:
        result = check.check_project(compiled, select=select or None)
        models = [n for n in compiled.nodes.values() if n.resource_type == "model"]
        report.stages["compile"] = {
            "target": "athena",
            "models": len([n for n in models if "full-refresh" in n.sql]),
            "incremental_forms": sorted(n.name for n in models if "incremental" in n.sql),
            "introspective_queries": len(compiled.queries),
            "unparseable": [{"model": m, "error": e} for m, e in result.errors.items()],
        }
        report.stages["athena_check"] = result.to_dict()
        _print_check(result)
        comparisons = []
        if compare:
            with console.status(f"running each model's Athena SQL on DuckDB (as of {as_of})"):
                comparisons = compare_rows.compare_project(compiled, select or None)
            report.stages["compare"] = {
                "as_of": as_of,
                "models": [c.to_dict() for c in comparisons],
            }
            _print_comparisons(comparisons)
    finally:
        compiled.close()
    if not result.ok:
        raise RuntimeError(
            f"Athena check: {len(result.failures)} finding(s), {len(result.stale)} stale accepted "
            f"scan(s), {len(result.errors)} untyped quer(ies) (see the tables above)"
        )
    different = [c.model for c in comparisons if c.status == compare_rows.DIFFERENT]
    if different:
        raise RuntimeError(
            f"Athena SQL on DuckDB differs from the local build: {', '.join(different)}"
        )


def _print_check(result: Any) -> None:
    """Each finding as a block: rule, file:line and form; the expression; why, and the fix."""
    for finding in result.failures:
        out.print(f"[bold]{finding.rule}[/]  {finding.where}  ({finding.form})", highlight=False)
        out.print(f"    {escape(finding.expression)}", highlight=False, soft_wrap=True)
        out.print(f"    {escape(finding.message)}", highlight=False)
        out.print(f"    fix: {escape(finding.hint)}", highlight=False)
    for entry in result.stale:
        out.print(
            f"[bold]stale accepted scan[/]  {entry.model} reads {entry.relation} "
            f"({entry.query}): no query does any more; remove it from "
            "dbt_project/athena_accepted_scans.yml",
            highlight=False,
        )
    for model, error in result.errors.items():
        out.print(f"[bold]untyped[/]  {model}: {escape(error)}", highlight=False)
    accepted = Table(title="accepted full scans (dbt_project/athena_accepted_scans.yml)")
    for col in ("model", "query", "reads", "columns", "bytes at 10x the demo"):
        accepted.add_column(col, justify="right" if col.startswith("bytes") else "left")
    for finding, entry in result.accepted:
        accepted.add_row(finding.model, entry.query, entry.relation, ", ".join(finding.columns),
                         f"{entry.bytes_at_10x:,}")  # fmt: skip
    if accepted.rows:
        out.print(accepted)
    out.print(
        f"Athena check: {len(result.checked)} queries checked, {len(result.failures)} finding(s), "
        f"{len(result.accepted)} accepted scan(s)"
    )


def _print_comparisons(comparisons: list[Any]) -> None:
    table = Table(title="Athena SQL on DuckDB against the local build")
    for col in ("model", "form", "result", "rows (athena / local)", "detail"):
        table.add_column(col, overflow="fold")
    for item in comparisons:
        rows = "" if item.athena_rows is None else f"{item.athena_rows:,} / {item.duckdb_rows:,}"
        detail = item.reason
        if item.partitions:
            detail = f"partitions {', '.join(item.partitions)}"
        if item.only_athena or item.only_duckdb:
            detail = f"only athena: {item.only_athena[:1]}; only local: {item.only_duckdb[:1]}"
        table.add_row(item.model, item.form, item.status, rows, escape(detail))
    out.print(table)
