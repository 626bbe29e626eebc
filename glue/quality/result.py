"""What a validation gives back: :class:`QualityResult` (counts and column names, never
values), its one-line summary, and :func:`check`, which raises :class:`QualityError` so that
nothing is published."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from peak.core.errors import TransformError


class QualityError(TransformError):
    """A staged dataset failed its quality suite: nothing may be published."""

    def __init__(self, message: str, result: QualityResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class QualityResult:
    dataset: str
    success: bool
    rows_checked: int
    batches: int
    expectations: int
    #: One entry per failed expectation: ``expectation`` (its type), ``column`` (or key columns
    #: joined by commas; for the column set, the missing and unexpected columns), ``rule``
    #: (the contract rule, when one matches), ``evaluated_by`` and ``observed`` (counts and
    #: column names only, never values).
    failed: list[dict] = field(default_factory=list)
    docs_index: Path | None = None
    results_path: Path | None = None
    seconds: float = 0.0
    #: Wall seconds per phase: setup, great_expectations (reading overlapped), duckdb (run
    #: concurrently with GX), docs.
    timings: dict[str, float] = field(default_factory=dict)
    #: The rows the row-level expectations saw: a uniform sample of ``rows_checked``.
    rows_sampled: int = 0

    def summary(self) -> str:
        sample = (
            f" (row checks on a sample of {self.rows_sampled:,})"
            if self.rows_sampled < self.rows_checked
            else ""
        )
        head = (
            f"{self.dataset}: {self.expectations} expectations on {self.rows_checked:,} rows"
            f"{sample} in {self.batches} batches"
        )
        if self.success:
            return f"{head}: passed"
        what = ", ".join(
            f"{f['expectation']}({f['column']})" if f.get("column") else f["expectation"]
            for f in self.failed
        )
        return f"{head}: FAILED {len(self.failed)} ({what})"


def check(result: QualityResult) -> QualityResult:
    """Raise :class:`QualityError` naming each failed expectation and column; else return."""
    if result.success:
        return result
    lines = [
        f"{result.dataset}: {len(result.failed)} of {result.expectations} expectations of "
        f"suite {result.dataset}_processed failed on {result.rows_checked:,} staged rows:"
    ]
    for f in result.failed:
        column = f" on column {f['column']}" if f.get("column") else ""
        lines.append(f"  - {f['expectation']}{column}: {_describe(f.get('observed') or {})}")
    if result.docs_index:
        lines.append(f"  Data Docs: {result.docs_index}")
    raise QualityError("\n".join(lines), result)


def _describe(observed: dict) -> str:
    if "unexpected_count" in observed:
        base = f"{observed['unexpected_count']:,} of {observed.get('element_count', 0):,} rows"
        return base + " unexpected"
    if "missing" in observed or "unexpected" in observed:
        parts = []
        if observed.get("missing"):
            parts.append("missing " + ", ".join(observed["missing"]))
        if observed.get("unexpected"):
            parts.append("unexpected " + ", ".join(observed["unexpected"]))
        return "; ".join(parts) or "columns differ"
    if "error" in observed:
        return f"could not be evaluated: {observed['error']}"
    return ", ".join(f"{k}={v}" for k, v in observed.items())
