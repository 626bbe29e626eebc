"""A full resync: the sync state rebuilt from what HubSpot holds (``--full-resync``).

The sink trusts its state: pointed at a new portal, or after someone deleted contacts in
HubSpot, the plan says "unchanged" and nothing is sent. A full resync reads back every contact of
ours (those with ``peak_user_id``) with the properties the sink sends, through the CRM search
(``POST /crm/v3/objects/contacts/search``), and makes that the state: each contact's hash is the
hash of what HubSpot holds, so the plan then sends exactly the contacts HubSpot lacks or holds
differently, and retires the ones it still holds as at risk or churned.

HubSpot's search returns at most 200 results a page and 10,000 a query, and takes at most 5
requests a second (``PEAK_HUBSPOT_SEARCH_RATE_LIMIT``, paced by a
:class:`activation.pacing.RateLimiter` of its own beside the client's). So the read-back pages by
object id: each query asks for the contacts whose ``hs_object_id`` is above the last one read,
sorted by it, and never pages with ``after``. A portal without the ``peak_user_id`` property
holds none of ours (no search is made).

The rebuilt state replaces the old one as a snapshot before anything is sent (a crash after it
leaves a state that is true of HubSpot); its lists are dropped too, so they are found again by
name or created (:func:`activation.hubspot.lists.ensure_lists`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from activation.base import normalise_email
from activation.hubspot.client import HubSpotClient
from activation.hubspot.properties import (
    ACTIVE,
    OBJECT_TYPE,
    STATUS_PROPERTY,
    USER_ID_PROPERTY,
    Prop,
    properties_hash,
)
from activation.hubspot.state import SyncState
from activation.pacing import RateLimiter

#: HubSpot's object id property: the read-back's sort and cursor.
OBJECT_ID = "hs_object_id"


@dataclass
class ReadBack:
    """What HubSpot holds of ours: email -> state entry, and what it cost."""

    contacts: dict[str, str] = field(default_factory=dict)
    found: int = 0
    search_calls: int = 0


def search_body(names: Sequence[str], after_id: int, page: int) -> dict[str, Any]:
    """One page of our contacts whose object id is above ``after_id``, in object id order."""
    return {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": USER_ID_PROPERTY, "operator": "HAS_PROPERTY"},
                    {"propertyName": OBJECT_ID, "operator": "GT", "value": str(after_id)},
                ]
            }
        ],
        "sorts": [{"propertyName": OBJECT_ID, "direction": "ASCENDING"}],
        "properties": ["email", *names],
        "limit": page,
    }


def read_back(
    client: HubSpotClient, props: Sequence[Prop], limiter: RateLimiter, page: int
) -> ReadBack:
    """Every contact of ours HubSpot holds, as sync state entries (retired ones left out)."""
    out = ReadBack()
    apis = client.apis()
    known = client.call(apis["properties"].get_all, OBJECT_TYPE, archived=False).body
    if USER_ID_PROPERTY not in {p.get("name") for p in known.get("results") or []}:
        return out  # a portal that never had our properties holds none of our contacts
    names = [p.name for p in props]
    after_id = 0
    while True:
        limiter.acquire()
        try:
            body = client.call(apis["search"].do_search, search_body(names, after_id, page)).body
        finally:
            limiter.release()
        out.search_calls += 1
        results = body.get("results") or []
        for item in results:
            values = item.get("properties") or {}
            out.found += 1
            email_ = normalise_email(values.get("email"))
            status = str(values.get(STATUS_PROPERTY) or "")
            if not email_ or not status or status == ACTIVE:
                continue  # retired (or not ours to tell): nothing the plan needs to know
            held = {n: "" if values.get(n) is None else str(values[n]) for n in names}
            out.contacts[email_] = SyncState.entry(
                properties_hash(held),
                status,
                str(values.get(USER_ID_PROPERTY) or ""),
                str(item.get("id") or ""),
            )
        if not results or not (body.get("paging") or {}).get("next"):
            return out
        after_id = int(results[-1].get("id") or values.get(OBJECT_ID) or after_id)


def rebuild(state: SyncState, held: ReadBack, persist: bool) -> int:
    """Make what HubSpot holds the state (a snapshot, unless ``persist`` is False: a dry run);
    the number of contacts the old state held that HubSpot does not."""
    forgotten = len(set(state.contacts) - set(held.contacts))
    state.contacts = dict(held.contacts)
    state.lists = {}
    if persist:
        state.mark_changed()
        state.compact()
    return forgotten
