"""Erased members in the email sink's state: the send ledger and our unsubscribe list.

``peak forget`` (:mod:`peak.ops.forget`) calls :func:`erase`: the members' send ledger entries
(``<campaign>|<user_id>``, and a ``last_stop`` naming one of them as the next to send) and their
addresses on the unsubscribe list are removed, the ledger's journals folded into its snapshot
and deleted, so no file of the sink's state names them any more. What keeps them from being
e-mailed again is not a copy of their address but the erasure register's salted hashes
(:class:`peak.core.erasure.Register`): ingestion drops their rows from every later export, and
:func:`erased_members` tells a sink which rows of a mart belong to an erased member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from activation.base import load_state, save_state
from activation.email.ledger import Ledger
from activation.email.settings import SINK
from activation.email.unsubscribe import UNSUBSCRIBES
from peak.core.erasure import Register, Subject, mentions
from peak.core.lake import Lake


def _named(subject: Subject, key: str, entry: Any) -> bool:
    return subject.found_in(key) or mentions(entry, subject)


def found(lake: Lake, subject: Subject) -> dict[str, int]:
    """How many ledger entries and unsubscribe-list addresses name a member."""
    ledger = Ledger.load(lake)
    entries = sum(1 for key, entry in ledger.entries.items() if _named(subject, key, entry))
    if ledger.last_stop and mentions(ledger.last_stop, subject):
        entries += 1
    emails = load_state(lake, SINK, UNSUBSCRIBES).get("emails") or {}
    listed = sum(1 for address, info in emails.items() if _named(subject, address, info))
    return {"send ledger": entries, "unsubscribe list": listed}


def erase(lake: Lake, subject: Subject) -> dict[str, int]:
    """Remove the members from the send ledger and the unsubscribe list; what was removed.
    Idempotent; runs under the lake's activation lock (the ledger has none of its own)."""
    ledger = Ledger.load(lake)
    gone = [key for key, entry in ledger.entries.items() if _named(subject, key, entry)]
    for key in gone:
        del ledger.entries[key]
    stop_named = bool(ledger.last_stop and mentions(ledger.last_stop, subject))
    if stop_named and ledger.last_stop is not None:
        ledger.last_stop = {**ledger.last_stop, "next": None}
    if gone or stop_named:
        ledger.mark_changed()
        ledger.compact()  # the snapshot without them; the journals that named them deleted
    state = load_state(lake, SINK, UNSUBSCRIBES)
    emails = dict(state.get("emails") or {})
    listed = [address for address, info in emails.items() if _named(subject, address, info)]
    if listed:
        for address in listed:
            del emails[address]
        save_state(lake, SINK, {**state, "emails": emails}, UNSUBSCRIBES)
    return {"send ledger": len(gone) + int(stop_named), "unsubscribe list": len(listed)}


def erased_members(lake: Lake, rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """The user ids of mart rows that belong to an erased member (by id or address): a sink
    skips them whatever the mart says."""
    register = Register.load(lake)
    if register.empty:
        return set()
    return {
        str(row.get("user_id"))
        for row in rows
        if register.is_erased(row.get("user_id"), row.get("email"))
    }
