"""The HubSpot sync state: what was last synced, so a run sends only what changed.

``_state/activation/hubspot/state.json`` maps each synced email to the hash of the properties
last sent (plus its churn status, user id and HubSpot's contact id, from the upsert's answer),
each location to its list id, and keeps the portal's id (``GET /account-info/v3/details``): the
dashboard links a member to their HubSpot record with the two. After every
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
    """``contacts``: email -> ``"<hash>|<status>|<user_id>|<contact id>"`` (the contact id
    empty when HubSpot's answer did not name it); ``lists``: location -> list; ``portal``: the
    portal's id, once known."""

    sink = SINK

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake)
        self.contacts: dict[str, str] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        #: ``{"id", "ui_domain"}`` of the portal, once known.
        self.portal: dict[str, str] | None = None

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
        if change.get("portal"):
            self.portal = dict(change["portal"])

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": 1,
            "contacts": self.contacts,
            "lists": self.lists,
            "portal": self.portal,
        }

    def record(
        self,
        contacts: Mapping[str, str | None] | None = None,
        lists: Mapping[str, dict[str, Any] | None] | None = None,
        portal: dict[str, str] | None = None,
    ) -> None:
        """Durably note what was just synced (one small journal file), then apply it."""
        delta: dict[str, Any] = {"contacts": dict(contacts or {}), "lists": dict(lists or {})}
        if portal:
            delta["portal"] = portal
        elif not delta["contacts"] and not delta["lists"]:
            return
        self.journal(delta)

    @staticmethod
    def entry(hash_: str, status: str, user_id: str, contact_id: str = "") -> str:
        return f"{hash_}|{status}|{user_id}|{contact_id}"

    @staticmethod
    def split(entry: str) -> tuple[str, str, str]:
        """(hash, status, user id) of an entry (entries written before the contact id have
        three fields)."""
        hash_, status, user_id = [*entry.split("|", 3), "", ""][:3]
        return hash_, status, user_id

    @staticmethod
    def contact_id(entry: str) -> str:
        """HubSpot's id of the entry's contact; empty when not known."""
        return [*entry.split("|", 3), "", "", ""][3]

    def contact_link(self, contact_id: str) -> str | None:
        """The contact's record in HubSpot's app; None while the portal is not known."""
        if not self.portal or not contact_id:
            return None
        domain = self.portal.get("ui_domain") or "app.hubspot.com"
        return f"https://{domain}/contacts/{self.portal['id']}/record/0-1/{contact_id}"

    def contact_ids(self) -> dict[str, str]:
        """user id -> HubSpot contact id, for the contacts whose id is known."""
        out = {}
        for entry in self.contacts.values():
            _, _, user_id = self.split(entry)
            contact_id = self.contact_id(entry)
            if user_id and contact_id:
                out[user_id] = contact_id
        return out
