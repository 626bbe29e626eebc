"""The send ledger: each (campaign, member, period) goes out at most once.

The ledger lives in ``_state/activation/email/`` (``ledger.json`` plus journals,
:class:`activation.journal.JournalledState`). A period starts on the day a campaign goes to a
member and lasts ``every_days`` (UTC days): sent on day D, due again on D + ``every_days``. Each
batch is journalled as ``sending`` *before* its call and ``sent``/``failed`` after it (one small
journal file each, folded into ``ledger.json`` at the start and end of a run). A crash between
the two leaves the batch ``sending``: SES may or may not have taken it and has no idempotency key
to ask, so it is treated as sent (``in_doubt``) until its period ends. That is the at-most-once
choice: a crash can lose a batch's emails for one period, never send them twice. The same holds
for an answer lost on the way back (a read timeout, a 5xx other than 503): the run stops with the
batch in doubt, and botocore's own retries are off (``client_config()``) so nothing is re-sent
behind our back. Per-destination failures in a bulk answer (``Status`` other than ``Success``)
and calls SES refused are recorded ``failed`` with SES's error and go again next run. Entries
whose period ended more than ``ledger_keep_days`` (90) ago are dropped at the end of a run.
Runs must not overlap: the ledger has no lock of its own (``peak activate`` holds the lake's
activation lock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from activation.email.settings import SINK
from activation.journal import JournalledState
from peak.core.lake import Lake

LEDGER = "ledger.json"

SENDING, SENT, FAILED = "sending", "sent", "failed"

_UNSET: Any = object()


class Ledger(JournalledState):
    """``entries``: ``"<campaign>|<user_id>"`` -> ``{"p": period start, "s": sending|sent|failed,
    …}`` (``m`` SES message id, ``e`` error, ``b`` batch, ``at`` time); ``last_stop``: where the
    last run that stopped early stopped (None once a run got through)."""

    sink = SINK
    snapshot_name = LEDGER

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake)
        self.entries: dict[str, dict[str, Any]] = {}
        self.last_stop: dict[str, Any] | None = None

    @staticmethod
    def key(campaign: str, user_id: str) -> str:
        return f"{campaign}|{user_id}"

    def apply(self, change: Mapping[str, Any]) -> None:
        self.entries.update(change.get("entries") or {})
        if "last_stop" in change:
            self.last_stop = change["last_stop"]

    def snapshot(self) -> dict[str, Any]:
        return {"version": 1, "entries": self.entries, "last_stop": self.last_stop}

    def record(
        self, entries: Mapping[str, dict[str, Any]] | None = None, last_stop: Any = _UNSET
    ) -> None:
        """Durably note entries (one small journal file), then apply them."""
        delta: dict[str, Any] = {"entries": dict(entries or {})}
        if last_stop is not _UNSET:
            delta["last_stop"] = last_stop
        if not delta["entries"] and "last_stop" not in delta:
            return
        self.journal(delta)

    def prune(self, today: dt.date, every_days: Mapping[str, int], keep_days: int) -> int:
        """Forget entries whose period ended more than ``keep_days`` ago (they decide nothing
        any more; SES's event publishing is the audit trail). Applied by the next compaction."""
        dropped = 0
        for key, entry in list(self.entries.items()):
            days = every_days.get(key.split("|", 1)[0], 0)
            try:
                ended = dt.date.fromisoformat(entry["p"]) + dt.timedelta(days=days)
            except (KeyError, TypeError, ValueError):
                continue
            if (today - ended).days > keep_days:
                del self.entries[key]
                dropped += 1
        if dropped:
            self.mark_changed()
        return dropped
