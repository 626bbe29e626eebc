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

from activation.addresses import address_key
from activation.email.ledger import Ledger
from activation.unsubscribe.register import suppressed
from peak.core.erasure import Register, Subject, mentions
from peak.core.lake import Lake
from peak.core.layout import LEGACY_UNSUBSCRIBES_KEY, SUPPRESSED_KEY, unsubscribe_key


def _named(subject: Subject, key: str, entry: Any) -> bool:
    return subject.found_in(key) or mentions(entry, subject)


def _register_keys(lake: Lake, subject: Subject) -> list[str]:
    """The do-not-market register's records of the members' addresses (named by the address's
    hash, so found by hashing the addresses being erased)."""
    keys = [unsubscribe_key(address_key(email)) for email in sorted(subject.emails)]
    return [key for key in keys if lake.exists(key)]


def _legacy_listed(lake: Lake, subject: Subject) -> tuple[dict[str, Any], list[str]]:
    state = lake.read_json(LEGACY_UNSUBSCRIBES_KEY, default={}) or {}
    emails = dict(state.get("emails") or {})
    return state, [a for a, info in emails.items() if _named(subject, a, info)]


def _suppressed_listed(lake: Lake, subject: Subject) -> list[str]:
    hashes = {address_key(email) for email in subject.emails}
    return [h for h in suppressed(lake) if h in hashes]


def found(lake: Lake, subject: Subject) -> dict[str, int]:
    """How many send-ledger entries and do-not-market records name a member."""
    ledger = Ledger.load(lake)
    entries = sum(1 for key, entry in ledger.entries.items() if _named(subject, key, entry))
    if ledger.last_stop and mentions(ledger.last_stop, subject):
        entries += 1
    listed = len(_register_keys(lake, subject)) + len(_legacy_listed(lake, subject)[1])
    listed += len(_suppressed_listed(lake, subject))
    return {"send ledger": entries, "unsubscribe list": listed}


def erase(lake: Lake, subject: Subject) -> dict[str, int]:
    """Remove the members from the send ledger and the do-not-market register (unsubscribes,
    the legacy list, the suppression snapshot); what was removed. Idempotent; runs under the
    lake's activation lock (the ledger has none of its own). The erasure register's salted
    hashes, not these records, keep the members from being e-mailed again."""
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
    records = _register_keys(lake, subject)
    for key in records:
        lake.delete(key)
    state, legacy = _legacy_listed(lake, subject)
    if legacy:
        emails = {a: i for a, i in (state.get("emails") or {}).items() if a not in legacy}
        lake.write_json(LEGACY_UNSUBSCRIBES_KEY, {**state, "emails": emails})
    hashes = _suppressed_listed(lake, subject)
    if hashes:
        snapshot = lake.read_json(SUPPRESSED_KEY, default={}) or {}
        kept = {h: r for h, r in (snapshot.get("addresses") or {}).items() if h not in hashes}
        lake.write_json(SUPPRESSED_KEY, {**snapshot, "addresses": kept})
    removed = len(records) + len(legacy) + len(hashes)
    return {"send ledger": len(gone) + int(stop_named), "unsubscribe list": removed}


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
