"""``peak forget``: erase members everywhere and print the erasure report (peak/ops/forget/).

Registered on the main app by :func:`register`. The run report records counts and the register's
salted hashes only: no id or address asked for is ever written to it, printed or logged.
Exit code ``0`` when every place searched holds nothing of the members, ``1`` otherwise (what is
left is in the table; running the same command again finishes an interrupted erasure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from peak.cli.app import console, fail, out, reported, state
from peak.core.erasure import Subject
from peak.ops.forget import SYSTEMS, ForgetResult, forget, parse_lines

COMMAND = "forget"


def forget_command(
    user_id: Annotated[
        list[str] | None, typer.Option("--user-id", help="A member's id (repeatable).")
    ] = None,
    email: Annotated[
        list[str] | None, typer.Option("--email", help="A member's e-mail address (repeatable).")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            exists=True,
            dir_okay=False,
            help="A file of members: one id or address a line ('#' comments).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only search: say where the members are.")
    ] = False,
    skip: Annotated[
        list[str] | None,
        typer.Option(help=f"A remote system this deployment does not use: {', '.join(SYSTEMS)}."),
    ] = None,
) -> None:
    """Erase members everywhere (GDPR): the lake's zones, the warehouse and its snapshots,
    outboxes, Redis, HubSpot and the sinks' state; then search every place again.

    A member asked for by id goes with every address they had, one asked for by address with
    every member who used it. Only salted hashes are kept, so that no later export brings them
    back and no sink sends to them again.
    """

    asked = Subject.of(user_id or (), email or ())
    if from_file is not None:
        asked = asked | parse_lines(from_file.read_text(encoding="utf-8").splitlines())
    for name in skip or []:
        if name not in SYSTEMS:
            raise fail(f"unknown system {name!r} (known: {', '.join(SYSTEMS)})", code=2)
    options = {
        "user_ids": len(asked.ids),
        "emails": len(asked.emails),
        "from_file": from_file is not None,
        "dry_run": dry_run,
        "skip": skip or [],
    }
    with reported(COMMAND, options) as report:
        with console.status("forgetting" if not dry_run else "searching"):
            result = forget(
                state.lake,
                asked,
                settings=state.config,
                run_id=report.run_id,
                dry_run=dry_run,
                skip=skip or (),
            )
        report.stages[COMMAND] = result.to_dict()
        _print(result)
        if not dry_run and not result.clean:
            message = (
                f"the members are still found in {sum(1 for p in result.places if p.remaining)}"
                " place(s): see the table; run the same command again"
            )
            report.finish("failed", message)
            raise fail(message)


def _print(result: ForgetResult) -> None:
    subject = result.subject
    title = (
        f"{'where the members are' if result.dry_run else 'erasure report'}: "
        f"{subject.get('ids', 0)} id(s), {subject.get('emails', 0)} address(es)"
        f" ({subject.get('ids_added', 0)} id(s) and {subject.get('emails_added', 0)} address(es)"
        " found with those asked for)"
    )
    table = Table(title=title, show_footer=True)
    table.add_column("place", footer="total")
    table.add_column("searched", justify="right")
    table.add_column("erased", justify="right", footer=f"{sum(p.erased for p in result.places):,}")
    table.add_column(
        "found" if result.dry_run else "remaining", justify="right", footer=f"{result.remaining:,}"
    )
    table.add_column("note")
    for place in result.places:
        left = "not searched" if place.remaining < 0 else f"{place.remaining:,}"
        colour = "green" if place.remaining == 0 else "red"
        note = place.note or (f"{len(place.tables)} tables searched" if place.tables else "")
        table.add_row(
            escape(place.place),
            f"{place.searched:,}",
            f"{place.erased:,}",
            left if result.dry_run else f"[{colour}]{left}[/]",
            escape(note),
        )
    out.print(table)
    if result.resumed:
        out.print(f"finished {result.resumed} erasure(s) an earlier run left unfinished")


def register(app: typer.Typer) -> None:
    """Add ``forget`` to the app (once)."""
    if any(command.name == COMMAND for command in app.registered_commands):
        return
    app.command(COMMAND)(forget_command)
