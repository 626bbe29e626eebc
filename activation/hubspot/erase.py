"""Erased members in HubSpot and in the HubSpot sink's sync state.

``peak forget`` (:mod:`peak.ops.forget`) calls these:

- :func:`erase_state`: the sync state's contacts that name a member (keyed by address, their
  entry holding the user id) are removed and the journals folded in and deleted, so the next
  sync neither remembers nor "retires" them;
- :class:`Remote`: HubSpot itself, through hubspot-api-client and the sink's own call loop
  (pacing, retries, the token scrubbed). :meth:`Remote.erase` calls HubSpot's GDPR delete
  (``POST /crm/v3/objects/contacts/gdpr-delete``) for every address of the members, by
  ``idProperty=email`` (HubSpot permanently deletes the contact and everything associated, and
  blocks an address it does not know from coming back), and for every contact its search finds
  by ``peak_user_id``, by record id. :meth:`Remote.search` counts what HubSpot still holds: the
  erasure report's proof.
"""

from __future__ import annotations

from typing import Any

from activation.hubspot.client import HubSpotClient
from activation.hubspot.errors import HubSpotError
from activation.hubspot.properties import PROPERTY_BY_NAME
from activation.hubspot.state import SyncState
from peak.core.erasure import Subject, mentions
from peak.core.lake import Lake

#: The contact property holding the member's id (the mart's user_id).
USER_ID_PROPERTY = next(p.name for p in PROPERTY_BY_NAME.values() if p.column == "user_id")
#: HubSpot's search takes at most this many results a page.
SEARCH_PAGE = 100


def _named(subject: Subject, address: str, entry: str) -> bool:
    return subject.found_in(address) or mentions(entry, subject)


def found_in_state(lake: Lake, subject: Subject) -> int:
    """Contacts of the sync state that name a member."""
    state = SyncState.load(lake)
    return sum(1 for address, entry in state.contacts.items() if _named(subject, address, entry))


def erase_state(lake: Lake, subject: Subject) -> int:
    """Remove the members' contacts from the sync state (idempotent); how many."""
    state = SyncState.load(lake)
    gone = [a for a, entry in state.contacts.items() if _named(subject, a, entry)]
    for address in gone:
        del state.contacts[address]
    if gone:
        state.mark_changed()
        state.compact()  # the journals that named them are deleted with the fold
    return len(gone)


class Remote:
    """HubSpot, for erasing: GDPR deletes and searches through the sink's call loop."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client
        self._basic: Any = None
        self._search: Any = None

    def _apis(self) -> tuple[Any, Any]:
        if self._basic is None:
            from hubspot.crm.contacts import BasicApi, SearchApi  # deferred: hubspot-api-client

            api_client = self.client.apis()["batch"].api_client  # configured: host, token, retry
            self._basic, self._search = BasicApi(api_client), SearchApi(api_client)
        return self._basic, self._search

    def _find(self, prop: str, value: str) -> list[dict[str, Any]]:
        """Every contact whose ``prop`` equals ``value`` (all pages)."""
        _, search = self._apis()
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [
                    {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}
                ],
                "properties": ["email", USER_ID_PROPERTY],
                "limit": SEARCH_PAGE,
            }
            if after:
                body["after"] = after
            answer = self.client.call(search.do_search, body).body
            found += list(answer.get("results") or [])
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return found

    def _contacts(self, subject: Subject) -> set[str]:
        """The record ids of every contact with a member's address or id."""
        ids: set[str] = set()
        for email in sorted(subject.emails):
            ids |= {str(c.get("id")) for c in self._find("email", email)}
        for user_id in sorted(subject.ids):
            ids |= {str(c.get("id")) for c in self._find(USER_ID_PROPERTY, user_id)}
        return ids

    def search(self, subject: Subject) -> int:
        """How many contacts HubSpot holds with a member's address or id."""
        return len(self._contacts(subject))

    def erase(self, subject: Subject) -> int:
        """GDPR-delete every contact of the members: each address (also one HubSpot does not
        hold: it is blocked from coming back), then any contact left holding their id. The
        number of contacts HubSpot held; idempotent (deleting again only keeps them blocked)."""
        basic, _ = self._apis()
        held = self._contacts(subject)
        for email in sorted(subject.emails):
            self.client.call(basic.purge, {"objectId": email, "idProperty": "email"})
        for user_id in sorted(subject.ids):
            for contact in self._find(USER_ID_PROPERTY, user_id):
                try:
                    self.client.call(basic.purge, {"objectId": str(contact.get("id"))})
                except HubSpotError as exc:
                    if exc.status != 404:  # gone meanwhile
                        raise
        return len(held)
