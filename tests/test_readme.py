"""The README's command table lists exactly what ``peak --help`` lists: every top-level command
and command group, and every command of each group (``peak catalog sync``, ``peak deploy
package``), one row each, none missing and none extra."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from peak.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## The `peak` command"
#: The first cell of a table row: ``| `peak build [--target …]` | ...``.
ROW = re.compile(r"^\|\s*`peak ([^`]*)`\s*\|", re.MULTILINE)
#: A command or group name in a row: the words before the first option or argument.
NAME = re.compile(r"[a-z][a-z0-9-]*")


def cli_commands() -> dict[str, set[str]]:
    """What ``peak --help`` lists: each visible command or group, with a group's commands.

    Read from the Click command Typer builds for ``peak`` (Typer vendors its own Click, so the
    objects are asked what they list rather than checked against ``click``'s classes)."""
    root = typer.main.get_command(app)
    context = root.context_class(root)
    listed: dict[str, set[str]] = {}
    for name in root.list_commands(context):
        command = root.get_command(context, name)
        if command is None or command.hidden:
            continue
        listed[name] = set()
        if hasattr(command, "list_commands"):  # a group: ``peak catalog``, ``peak deploy``
            sub = command.context_class(command, parent=context)
            for sub_name in command.list_commands(sub):
                sub_command = command.get_command(sub, sub_name)
                if sub_command is not None and not sub_command.hidden:
                    listed[name].add(sub_name)
    return listed


def table_rows(readme: str) -> list[tuple[str, ...]]:
    """The command path of each row of the README's command table: ``("build",)``,
    ``("catalog", "sync")``. A group's row names the group and one of its commands."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    rows = []
    for usage in ROW.findall(section):
        words = []
        for word in usage.split():
            if not NAME.fullmatch(word):
                break
            words.append(word)
        rows.append(tuple(words))
    return rows


def table_problems(readme: str, listed: dict[str, set[str]]) -> list[str]:
    """Each row missing from the table, extra in it or repeated, as a sentence."""
    problems = []
    rows = table_rows(readme)
    seen: dict[tuple[str, ...], int] = {}
    for row in rows:
        seen[row] = seen.get(row, 0) + 1
    expected: set[tuple[str, ...]] = set()
    for name, commands in listed.items():
        expected |= {(name, c) for c in commands} if commands else {(name,)}
    for row in sorted(expected - set(seen)):
        problems.append(f"`peak {' '.join(row)}` is in `peak --help` but not in the README")
    for row in sorted(set(seen) - expected):
        problems.append(f"`peak {' '.join(row)}` is in the README but not in `peak --help`")
    for row, count in sorted(seen.items()):
        if count > 1:
            problems.append(f"`peak {' '.join(row)}` has {count} rows in the README")
    return problems


@pytest.fixture(scope="module")
def listed() -> dict[str, set[str]]:
    return cli_commands()


def test_the_readme_lists_every_command_and_group_of_peak_help_and_no_other(listed):
    assert table_problems(README.read_text(encoding="utf-8"), listed) == []


def test_the_commands_compared_are_the_ones_peak_help_prints(listed):
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = set(re.findall(r"^│ ([a-z][a-z0-9-]*)\s{2,}", result.output, re.MULTILINE))
    assert printed == set(listed)
    for group, commands in listed.items():
        if commands:
            result = CliRunner().invoke(app, [group, "--help"], env={"COLUMNS": "200"})
            assert result.exit_code == 0, result.output
            assert set(re.findall(r"^│ ([a-z][a-z0-9-]*)\s{2,}", result.output, re.M)) == commands


def drop_row(readme: str, usage: str) -> str:
    return re.sub(rf"^\| `peak {re.escape(usage)}[ `].*\n", "", readme, count=1, flags=re.M)


def add_row(readme: str, row: str) -> str:
    """``row`` inserted before the table's ``peak cost`` row."""
    return readme.replace("| `peak cost ", f"{row}\n| `peak cost ", 1)


MISSING = "is in `peak --help` but not in the README"
EXTRA = "is in the README but not in `peak --help`"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: drop_row(t, "prune"), f"`peak prune` {MISSING}"),
        (lambda t: drop_row(t, "catalog sync"), f"`peak catalog sync` {MISSING}"),
        (lambda t: add_row(t, "| `peak rewind [--to D]` | undo |"), f"`peak rewind` {EXTRA}"),
        (lambda t: add_row(t, "| `peak deploy upload` | up |"), f"`peak deploy upload` {EXTRA}"),
        (lambda t: add_row(t, "| `peak docs` | again |"), "`peak docs` has 2 rows in the README"),
    ],
    ids=["missing", "missing in a group", "extra", "extra in a group", "repeated"],
)
def test_a_missing_extra_or_repeated_row_is_caught(listed, edit, problem):
    readme = README.read_text(encoding="utf-8")
    edited = edit(readme)
    assert edited != readme
    problems = table_problems(edited, listed)
    assert problems == [problem]
