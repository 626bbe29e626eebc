"""One DYNAMIC contact list per home location: ``Peak Fitness - <location>``, its members the
contacts whose ``peak_home_location`` equals the location and whose ``peak_marketing_consent`` is
true (a marketing list holds only members who may be marketed to; the CRM holds them all).

:func:`ensure_lists` finds each list by the id kept in the sync state or, lost from the state or
made by hand, by name; creates the missing ones; and repairs a list's name and filter in place
when they drifted (campaigns hold on to a list's id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from activation.hubspot.client import HubSpotClient
from activation.hubspot.properties import CONSENT_PROPERTY, LOCATION_PROPERTY
from activation.hubspot.state import SyncState

CONTACTS_OBJECT_TYPE_ID = "0-1"  # the Lists API names object types by id
LIST_PREFIX = "Peak Fitness - "


def list_name(location: str) -> str:
    return f"{LIST_PREFIX}{location}"


def list_filter(location: str) -> dict[str, Any]:
    """A list's filter: contacts whose home location is ``location`` and who may be marketed to
    (root OR, one AND branch)."""
    return {
        "filterBranchType": "OR",
        "filterBranchOperator": "OR",
        "filters": [],
        "filterBranches": [
            {
                "filterBranchType": "AND",
                "filterBranchOperator": "AND",
                "filterBranches": [],
                "filters": [
                    {
                        "filterType": "PROPERTY",
                        "property": LOCATION_PROPERTY,
                        "operation": {
                            "operationType": "MULTISTRING",
                            "operator": "IS_EQUAL_TO",
                            "values": [location],
                            "includeObjectsWithNoValueSet": False,
                        },
                    },
                    {
                        "filterType": "PROPERTY",
                        "property": CONSENT_PROPERTY,
                        "operation": {
                            "operationType": "BOOL",
                            "operator": "IS_EQUAL_TO",
                            "value": True,
                            "includeObjectsWithNoValueSet": False,
                        },
                    },
                ],
            }
        ],
    }


def filter_signature(branch: Mapping[str, Any] | None) -> Any:
    """What a filter branch selects, ignoring the fields HubSpot adds or reorders."""
    if not branch:
        return None
    filters = []
    for f in branch.get("filters") or []:
        op = f.get("operation") or {}
        values = op.get("values")
        if values is None and "value" in op:
            values = [op["value"]]
        filters.append(
            (
                f.get("filterType"),
                f.get("property"),
                op.get("operator"),
                tuple(sorted(str(v) for v in values or ())),
                bool(op.get("includeObjectsWithNoValueSet", False)),
            )
        )
    children = [filter_signature(b) for b in branch.get("filterBranches") or []]
    return (
        branch.get("filterBranchType"),
        tuple(sorted(filters)),
        tuple(sorted(children, key=repr)),
    )


def list_body(location: str) -> dict[str, Any]:
    """The body of ``POST /crm/v3/lists`` for a location's list."""
    return {
        "name": list_name(location),
        "objectTypeId": CONTACTS_OBJECT_TYPE_ID,
        "processingType": "DYNAMIC",
        "filterBranch": list_filter(location),
    }


def fetch_lists(client: HubSpotClient, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The lists of these ids that still exist, with their filters, by id."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        chunk = list(ids[start : start + 100])
        body = client.call(
            client.apis()["lists"].get_all, list_ids=chunk, include_filters=True
        ).body
        for item in body.get("lists") or []:
            if not item.get("deletedAt"):
                found[str(item.get("listId"))] = item
    return found


def search_lists(client: HubSpotClient) -> dict[str, dict[str, Any]]:
    """Our lists by lower-cased name (HubSpot's list names are unique, ignoring case)."""
    found: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        request = {"query": LIST_PREFIX.strip(), "offset": offset, "count": 500}
        body = client.call(client.apis()["lists"].do_search, request).body
        for item in body.get("lists") or []:
            if str(item.get("name", "")).startswith(LIST_PREFIX):
                found[str(item["name"]).lower()] = item
        if not body.get("hasMore") or not body.get("lists"):
            return found
        offset = int(body.get("offset") or offset + len(body["lists"]))


def ensure_lists(client: HubSpotClient, locations: set[str], state: SyncState) -> dict[str, Any]:
    """One list per location, created or repaired; their ids recorded in the state."""
    api = client.apis()["lists"]
    wanted = sorted(locations)
    known = {loc: str(state.lists[loc]["id"]) for loc in wanted if loc in state.lists}
    fetched = fetch_lists(client, sorted(set(known.values()))) if known else {}
    current = {loc: fetched[list_id] for loc, list_id in known.items() if list_id in fetched}
    missing = [loc for loc in wanted if loc not in current]
    if missing:  # lost from the state, or made by hand: find them by name
        by_name = search_lists(client)
        adopted = {
            loc: by_name[list_name(loc).lower()]
            for loc in missing
            if list_name(loc).lower() in by_name
        }
        if adopted:
            ids = sorted({str(item["listId"]) for item in adopted.values()})
            with_filters = fetch_lists(client, ids)
            for loc, found in adopted.items():
                current[loc] = with_filters.get(str(found["listId"]), found)
    created: list[str] = []
    repaired: list[str] = []
    changes: dict[str, dict[str, str]] = {}
    for loc in wanted:
        item = current.get(loc)
        name, want = list_name(loc), list_filter(loc)
        if item is None:
            item = client.call(api.create, list_body(loc)).body.get("list") or {}
            created.append(loc)
        else:  # campaigns hold on to the list's id: repair the list in place
            list_id = str(item["listId"])
            renamed = item.get("name") != name
            refiltered = filter_signature(item.get("filterBranch")) != filter_signature(want)
            if renamed:
                client.call(api.update_name, list_id, list_name=name)
            if refiltered:
                client.call(api.update_list_filters, list_id, {"filterBranch": want})
            if renamed or refiltered:
                repaired.append(loc)
        entry = {"id": str(item.get("listId")), "name": name}
        if state.lists.get(loc) != entry:
            changes[loc] = entry
    state.record(lists=changes)
    return {"lists": len(wanted), "lists_created": created, "lists_repaired": repaired}
