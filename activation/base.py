"""What every activation sink shares: its context, its result, the outbox, its state files and
how records are cut into batch calls.

A sink reads marts through :class:`peak.model.warehouse.Warehouse`, never a database directly. It
returns a :class:`SinkResult` whose counts obey ``records == sent + unchanged + failed`` (every
record ends sent, unchanged, or failed with its reason); ``retried`` counts the API calls that
were repeated after a 429/5xx/timeout. A dry run writes exactly what would be sent to
``<lake>/outbox/<sink>/<run_id>/`` and sends nothing. Sync state (what was last sent
successfully) lives in the lake under ``_state/activation/<sink>/`` and is written atomically
(:mod:`activation.journal` journals it). Pacing and retries are :mod:`activation.pacing`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from activation.addresses import normalise_email as normalise_email  # its home: addresses
from peak.core.errors import ActivationError
from peak.core.lake import Lake
from peak.core.layout import activation_state_key, outbox_prefix
from peak.model.warehouse import Warehouse

T = TypeVar("T")


class SinkError(ActivationError):
    """A sink could not do its work (unreachable service, consistency check failed, …)."""


@dataclass
class SinkContext:
    lake: Lake
    warehouse: Warehouse
    run_id: str
    dry_run: bool = False


@dataclass
class RecordError:
    key: str
    reason: str


@dataclass
class SinkResult:
    sink: str
    records: int = 0
    sent: int = 0
    unchanged: int = 0
    failed: int = 0
    retried: int = 0
    api_calls: int = 0
    dry_run: bool = False
    status: str = "ok"  # ok | failed | skipped
    error: str | None = None
    outbox: str | None = None
    errors: list[RecordError] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.records == self.sent + self.unchanged + self.failed

    def fail_records(self, errors: Iterable[RecordError]) -> None:
        """Count each record failed, with its reason."""
        for error in errors:
            self.failed += 1
            self.errors.append(error)

    def log(self, logger: logging.Logger) -> None:
        """One log line with the counts (never a record's data)."""
        logger.info(
            "%s: %d records, %d sent, %d unchanged, %d failed, %d calls (%d repeated)%s",
            self.sink,
            self.records,
            self.sent,
            self.unchanged,
            self.failed,
            self.api_calls,
            self.retried,
            " [dry run]" if self.dry_run else "",
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = out["errors"][:100]  # the report stays readable; the state has them all
        out["balanced"] = self.balanced
        return out


class Sink(Protocol):
    name: str

    def run(self, ctx: SinkContext) -> SinkResult: ...


def short_text(text: Any, limit: int = 300) -> str:
    """A service's message on one line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def batches(
    items: Iterable[T], size: int, key: Callable[[T], Any] | None = None
) -> Iterator[list[T]]:
    """Consecutive runs of at most ``size`` items, one per batch API call; with ``key``, a run
    also ends where the key changes (so every batch has one key: one email campaign)."""
    batch: list[T] = []
    for item in items:
        if batch and (len(batch) >= size or (key is not None and key(batch[0]) != key(item))):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def write_outbox(ctx: SinkContext, sink: str, name: str, records: Iterable[Any]) -> str:
    """Write one JSON Lines file of what would be sent; returns its URI."""
    key = f"{outbox_prefix(sink, ctx.run_id)}{name}.jsonl"
    body = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in records)
    ctx.lake.write_bytes(key, body.encode("utf-8"))
    return ctx.lake.uri(key)


def load_state(lake: Lake, sink: str, name: str = "state.json") -> dict[str, Any]:
    return lake.read_json(activation_state_key(sink, name), default={}) or {}


def save_state(lake: Lake, sink: str, state: dict[str, Any], name: str = "state.json") -> None:
    lake.write_json(activation_state_key(sink, name), state)
