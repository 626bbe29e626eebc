"""The HubSpot sync state: what was last synced, so a run sends only what changed.

``_state/activation/hubspot/state.json`` maps each synced email to the hash of the properties
last sent (plus its churn status and user id), and each location to its list id. After every
successful batch a small journal file records what it synced
(:class:`activation.journal.JournalledState`), so a crash re-sends at most the batch in flight
(upsert is idempotent anyway); journals fold into ``state.json`` at the start and the end of a
run (rewriting the whole state after every batch would write ~6 MB per 100 contacts at 100k
members).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activation.hubspot.settings import SINK
from activation.journal import JournalledState
from peak.core.lake import Lake


class SyncState(JournalledState):
    """``contacts``: email -> ``"<hash>|<status>|<user_id>"``; ``lists``: location -> list."""

    sink = SINK

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake)
        self.contacts: dict[str, str] = {}
        self.lists: dict[str, dict[str, Any]] = {}

    def apply(self, change: Mapping[str, Any]) -> None:
        """A change sets entries; ``None`` forgets one."""
        for email_, entry in (change.get("contacts") or {}).items():
            if entry is None:
                self.contacts.pop(email_, None)
            else:
                self.contacts[email_] = entry
        for location, entry in (change.get("lists") or {}).items():
            if entry is None:
                self.lists.pop(location, None)
            else:
                self.lists[location] = entry

    def snapshot(self) -> dict[str, Any]:
        return {"version": 1, "contacts": self.contacts, "lists": self.lists}

    def record(
        self,
        contacts: Mapping[str, str | None] | None = None,
        lists: Mapping[str, dict[str, Any] | None] | None = None,
    ) -> None:
        """Durably note what was just synced (one small journal file), then apply it."""
        delta = {"contacts": dict(contacts or {}), "lists": dict(lists or {})}
        if not delta["contacts"] and not delta["lists"]:
            return
        self.journal(delta)

    @staticmethod
    def entry(hash_: str, status: str, user_id: str) -> str:
        return f"{hash_}|{status}|{user_id}"

    @staticmethod
    def split(entry: str) -> tuple[str, str, str]:
        hash_, status, user_id = [*entry.split("|", 2), "", ""][:3]
        return hash_, status, user_id
