"""What SES's answers mean for the send ledger and the run's result: each destination's status
in a bulk answer, the entries of a batch SES refused, and a run stopped cleanly (what is left
stays due) or with a batch in doubt (at most once: it stays ``sending``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from activation.base import RecordError, SinkResult, short_text
from activation.email.errors import InDoubt
from activation.email.ledger import FAILED, SENDING, SENT, Ledger
from activation.email.plan import Target

log = logging.getLogger(__name__)

#: The bulk status SES v2 gives an entry it took, and one refused because the daily quota is
#: used up (``BulkEmailEntryResult.Status``).
SUCCESS = "SUCCESS"
DAILY_QUOTA_STATUS = "ACCOUNT_DAILY_QUOTA_EXCEEDED"
#: Entry statuses that say nothing about the recipient: no entry of any later batch can go
#: either (the account, the sender, the template or the configuration set), so the run stops.
ACCOUNT_STATUSES = frozenset(
    {
        "ACCOUNT_SUSPENDED",
        "ACCOUNT_SENDING_PAUSED",
        "CONFIGURATION_SET_NOT_FOUND",
        "CONFIGURATION_SET_SENDING_PAUSED",
        "MAIL_FROM_DOMAIN_NOT_VERIFIED",
        "TEMPLATE_NOT_FOUND",
        "INVALID_SENDING_POOL_NAME",
    }
)


@dataclass
class Settled:
    """A bulk answer, destination by destination: the ledger entries to journal, how many SES
    took, why it refused (or may not have taken) the others, and whether the quota ran out."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: int = 0
    errors: list[RecordError] = field(default_factory=list)
    daily_quota_hit: bool = False
    #: Why no later batch can go either (an :data:`ACCOUNT_STATUSES` answer), if so.
    account_problem: str | None = None


def settle(
    batch: list[Target], response: Mapping[str, Any], start: str, stamp: str, batch_id: str
) -> Settled:
    """Each target of a ``SendBulkEmail`` answer (its ``BulkEmailEntryResults``, in the
    entries' order): ``sent`` with its message id, ``failed`` with SES's reason, or still
    ``sending`` (in doubt) when SES said nothing of it."""
    out = Settled()
    statuses = response.get("BulkEmailEntryResults") or []
    for i, target in enumerate(batch):
        status = statuses[i] if i < len(statuses) else None
        if status is None:  # no word on it: SES may have sent it
            out.entries[target.key] = {"p": start, "s": SENDING, "b": batch_id, "at": stamp}
            out.errors.append(RecordError(target.user_id, "in doubt: no status"))
            continue
        state = status.get("Status") or (SUCCESS if status.get("MessageId") else "")
        if state == SUCCESS:
            out.entries[target.key] = {
                "p": start,
                "s": SENT,
                "m": status.get("MessageId"),
                "at": stamp,
            }
            out.sent += 1
        else:
            why = f"rejected by SES: {state or 'no status'}"
            if status.get("Error"):
                why += f": {short_text(status['Error'])}"
            out.entries[target.key] = failed_entry(start, stamp, why)
            out.errors.append(RecordError(target.user_id, why))
            out.daily_quota_hit = out.daily_quota_hit or state == DAILY_QUOTA_STATUS
            if state in ACCOUNT_STATUSES and out.account_problem is None:
                out.account_problem = why
    return out


def failed_entry(start: str, stamp: str, error: str) -> dict[str, Any]:
    """The ledger entry of a member SES did not take: due again next run."""
    return {"p": start, "s": FAILED, "e": short_text(error), "at": stamp}


def not_sent(pending: Iterable[list[Target]], reason: str) -> Iterator[RecordError]:
    """One record error per member of the batches left unsent."""
    for batch in pending:
        for target in batch:
            yield RecordError(target.user_id, reason)


def stop_record(
    run_id: str | None,
    sent: int,
    reason: str,
    message: str,
    pending: list[list[Target]],
    batches_sent: int,
) -> dict[str, Any]:
    """Where a run stopped (the ledger's ``last_stop``): why, how far it got, who is next."""
    first = pending[0][0] if pending and pending[0] else None
    return {
        "run_id": run_id,
        "reason": reason,
        "message": short_text(message),
        "batches_sent": batches_sent,
        "sent": sent,
        "left": sum(len(b) for b in pending),
        "next": {"campaign": first.campaign.name, "user_id": first.user_id} if first else None,
    }


def stop(
    ledger: Ledger,
    result: SinkResult,
    run_id: str | None,
    reason: str,
    message: str,
    pending: list[list[Target]],
    batches_sent: int,
) -> None:
    """Stop cleanly: what is left stays due, the stop is recorded, the run is failed."""
    left = sum(len(b) for b in pending)
    record = stop_record(run_id, result.sent, reason, message, pending, batches_sent)
    ledger.record(last_stop=record)
    result.details["stopped"] = record
    result.status = "failed"
    result.error = f"stopped: {message}; {left} left for the next run"
    result.fail_records(not_sent(pending, f"deferred: {message}; next run continues"))
    log.warning("email: %s", result.error)


def stop_in_doubt(
    ledger: Ledger,
    result: SinkResult,
    run_id: str | None,
    exc: InDoubt,
    batch: list[Target],
    batch_id: str,
    pending: list[list[Target]],
    batches_sent: int,
) -> None:
    """Stop after a send whose answer was lost: SES may have taken the batch, so it stays
    ``sending`` (treated as sent this period) and the rest is left for the next run."""
    record = stop_record(run_id, result.sent, "in_doubt", str(exc), pending, batches_sent)
    ledger.record(last_stop=record)
    result.details["stopped"] = record
    result.details["in_doubt"] = {"batch": batch_id, "members": len(batch)}
    result.status = "failed"
    result.error = f"{exc}; batch {batch_id} ({len(batch)} members) is in doubt"
    reason = f"in doubt (treated as sent this period): {exc}"
    result.fail_records(RecordError(t.user_id, reason) for t in batch)
    result.fail_records(not_sent(pending, f"deferred: stopped after {exc}"))
