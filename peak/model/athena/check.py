"""The semantic check for Athena: every rule of :mod:`.rules` over the compiled project.

What is checked, for every model and snapshot (:mod:`.project` compiles and types them):

* its full-refresh query, and for an incremental model its incremental query and every
  introspective query its macros sent while compiling (recorded by the emulator);
* with the hazard rules of :mod:`.rules`, on the query typed as Trino types it;
* for the incremental forms, with ``unbounded-partition-scan`` (:mod:`.scans`): a read of every
  partition of a partitioned table is a finding, unless it is an accepted scan.

Accepted scans are listed once each in ``dbt_project/athena_accepted_scans.yml``, with the
columns they read and their bytes scanned at 10x the demo's volume. A finding that no entry
accepts fails the check, and so does an entry no finding needs any more (the list stays true).
A finding points at the model's source file and line (mapped from the compiled SQL's line), the
expression, and the rule's fix hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import SqlglotError

from peak.model.athena.project import CompiledProject, Node
from peak.model.athena.rules import RULES, UNBOUNDED_SCAN
from peak.model.athena.scans import first_line, scans
from peak.model.athena.trino_types import DIALECT, Schema, annotate
from peak.model.dbt import PROJECT_DIR

ACCEPTED_SCANS = PROJECT_DIR / "athena_accepted_scans.yml"
_EXPRESSION_CHARS = 160


@dataclass
class Finding:
    rule: str
    model: str
    form: str
    file: str
    line: int | None
    expression: str
    message: str
    hint: str
    #: unbounded-partition-scan only: the relation read and the columns it reads.
    relation: str | None = None
    columns: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "model": self.model,
            "form": self.form,
            "where": self.where,
            "expression": self.expression,
            "message": self.message,
            "hint": self.hint,
        }
        if self.relation:
            out.update(relation=self.relation, columns=list(self.columns))
        return out


@dataclass(frozen=True)
class AcceptedScan:
    model: str
    query: str  # "model" (the model's own query) or "introspective" (its macros' queries)
    relation: str
    columns: tuple[str, ...]
    bytes_at_10x: int
    why: str

    def accepts(self, finding: Finding) -> bool:
        query = "introspective" if finding.form == "introspective" else "model"
        return (
            finding.rule == UNBOUNDED_SCAN.name
            and (finding.model, query, finding.relation) == (self.model, self.query, self.relation)
            and set(finding.columns) <= set(self.columns)
        )


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    accepted: list[tuple[Finding, AcceptedScan]] = field(default_factory=list)
    #: Accepted scans no finding needs any more.
    stale: list[AcceptedScan] = field(default_factory=list)
    #: Queries that could not be parsed or typed: model -> error.
    errors: dict[str, str] = field(default_factory=dict)
    #: What was checked: (model, form) pairs.
    checked: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        accepted = {id(f) for f, _ in self.accepted}
        return [f for f in self.findings if id(f) not in accepted]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stale and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": len(self.checked),
            "findings": [f.to_dict() for f in self.failures],
            "accepted_scans": [
                {**f.to_dict(), "bytes_at_10x": a.bytes_at_10x} for f, a in self.accepted
            ],
            "stale_accepted_scans": [f"{a.model}: {a.relation} ({a.query})" for a in self.stale],
            "errors": self.errors,
        }


def load_accepted(path: Path = ACCEPTED_SCANS) -> list[AcceptedScan]:
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    return [
        AcceptedScan(
            model=entry["model"],
            query=entry["query"],
            relation=entry["relation"],
            columns=tuple(entry["columns"]),
            bytes_at_10x=int(entry["bytes_at_10x"]),
            why=" ".join(str(entry["why"]).split()),
        )
        for entry in (document or {}).get("accepted") or []
    ]


def line_map(source: str, compiled: str) -> dict[int, int]:
    """Compiled line number -> source line number (1-based), by aligning the two texts."""
    src = [line.strip() for line in source.splitlines()]
    out = [line.strip() for line in compiled.splitlines()]
    mapping: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, src, out, autojunk=False)
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            mapping[j + 1] = (i1 + min(j - j1, max(i2 - i1 - 1, 0))) + 1
    return mapping


def _expression(node: exp.Expr) -> str:
    text = " ".join(node.sql(dialect=DIALECT).split())
    return text if len(text) <= _EXPRESSION_CHARS else text[: _EXPRESSION_CHARS - 1] + "…"


def _query_summary(sql: str) -> str:
    lines = [line.strip() for line in sql.splitlines()]
    body = " ".join(line for line in lines if line and not line.startswith("--"))
    return body if len(body) <= _EXPRESSION_CHARS else body[: _EXPRESSION_CHARS - 1] + "…"


def check_query(
    sql: str,
    schema: Schema,
    *,
    model: str,
    form: str,
    file: str,
    source: str | None = None,
) -> list[Finding]:
    """Every hazard rule over one query. Raises sqlglot's errors when it cannot be typed."""
    tree = annotate(sqlglot.parse_one(sql, read=DIALECT), schema)
    lines = line_map(source, sql) if source is not None else {}
    found: list[Finding] = []
    for rule in RULES.values():
        for node, message in rule.check(tree):
            line = first_line(node)
            found.append(
                Finding(
                    rule=rule.name,
                    model=model,
                    form=form,
                    file=file,
                    line=lines.get(line, line) if line else None,
                    expression=_expression(node),
                    message=message,
                    hint=rule.hint,
                )
            )
    return found


def check_scans(
    sql: str,
    project: CompiledProject,
    *,
    model: str,
    form: str,
    file: str,
    source: str | None = None,
) -> list[Finding]:
    """``unbounded-partition-scan`` over one query of an incremental model."""
    views = {
        n.key: n.sql["full-refresh"] for n in project.nodes.values() if n.materialized == "view"
    }
    partitions = {s.key: "dt" for s in project.sources}
    partitions.update({n.key: n.partition for n in project.nodes.values() if n.partition})
    names = project.by_key()
    lines = line_map(source, sql) if source is not None else {}
    found = []
    for scan in scans(sql, views=views, partitions=partitions, schema=project.schema):
        if scan.bounded or not scan.columns:
            continue
        relation = names.get(tuple(scan.relation.split(".", 1)), scan.relation)  # type: ignore[arg-type]
        expression = _query_summary(sql) if form == "introspective" else f"reads {relation}"
        found.append(
            Finding(
                rule=UNBOUNDED_SCAN.name,
                model=model,
                form=form,
                file=file,
                line=(
                    lines.get(scan.line, scan.line)
                    if scan.line and form != "introspective"
                    else None
                ),
                expression=expression,
                message=(
                    f"reads every {scan.partition} partition of {relation} "
                    f"(columns {', '.join(scan.columns)})"
                ),
                hint=UNBOUNDED_SCAN.hint,
                relation=relation,
                columns=scan.columns,
            )
        )
    return found


def _subjects(project: CompiledProject) -> Iterable[tuple[Node, str, str]]:
    by_id = {node.unique_id: node for node in project.nodes.values()}
    for node in project.nodes.values():
        for form, sql in node.sql.items():
            yield node, ("snapshot" if node.resource_type == "snapshot" else form), sql
    for query in project.queries:
        sender = by_id.get(query.node_id or "")
        if sender is not None:
            yield sender, "introspective", query.sql


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: dict[tuple[Any, ...], Finding] = {}
    for finding in findings:
        key = (finding.rule, finding.model, finding.where, finding.expression, finding.message)
        if key in seen:
            if finding.form not in seen[key].form.split(", "):
                seen[key].form += f", {finding.form}"
        else:
            seen[key] = finding
    return list(seen.values())


def check_project(
    project: CompiledProject,
    accepted: list[AcceptedScan] | None = None,
    select: Iterable[str] | None = None,
) -> CheckResult:
    """The check over the compiled project (only the models in ``select``, when given)."""
    accepted = load_accepted() if accepted is None else accepted
    chosen = set(select or project.nodes)
    result = CheckResult(errors=dict(project.untyped))
    findings: list[Finding] = []
    for node, form, sql in _subjects(project):
        if node.name not in chosen:
            continue
        result.checked.append((node.name, form))
        path = PROJECT_DIR / node.file
        source = (
            path.read_text(encoding="utf-8") if path.suffix == ".sql" and path.exists() else None
        )
        file = f"dbt_project/{node.file}"
        try:
            findings += check_query(
                sql, project.schema, model=node.name, form=form, file=file, source=source
            )
            if node.incremental and form in ("incremental", "introspective"):
                findings += check_scans(
                    sql, project, model=node.name, form=form, file=file, source=source
                )
        except SqlglotError as exc:
            result.errors[f"{node.name} ({form})"] = str(exc).strip().splitlines()[0]
    result.findings = _dedupe(findings)
    for finding in result.findings:
        entry = next((a for a in accepted if a.accepts(finding)), None)
        if entry is not None:
            result.accepted.append((finding, entry))
    used = {id(a) for _, a in result.accepted}
    result.stale = [a for a in accepted if id(a) not in used and a.model in chosen]
    return result
