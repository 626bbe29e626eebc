"""The plan of a sync: which contacts to upsert, which are unchanged, which cannot be sent.

Each mart row whose churn status the audience syncs (``hubspot.statuses``,
:mod:`activation.audience`; the others are counted ``outside_audience``, not records) becomes a
contact keyed by its (normalised) email, with the properties the audience names and
``peak_marketing_consent``: true when the row's consent column is true and the address is not on
the do-not-market register, otherwise false with the reason counted in ``consent``. An email that
does not match the members contract's pattern (``contracts/members.yml``, the one definition of
its shape) fails here and is never sent; so does an email two members share (the first one is
synced). A contact whose properties hash to what the sync state holds is unchanged.

A contact the sink stops syncing leaves every marketing list (its consent can no longer be kept
current): a member in the sync state who is no longer in the mart has returned to active (their
contact gets ``peak_churn_status=active`` and ``peak_marketing_consent=false`` once and is then
forgotten); one whose status the audience no longer syncs gets ``peak_marketing_consent=false``
once. A member whose email changed is synced under the new address, and the contact of the old
one is retired like a returning member, its ``peak_home_location`` cleared too.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import contracts
from activation.audience import CHURN_STATUSES, consented
from activation.base import RecordError, normalise_email, short_text
from activation.hubspot.properties import (
    ACTIVE,
    CONSENT_PROPERTY,
    LOCATION_PROPERTY,
    STATUS_PROPERTY,
    WATCHED,
    Prop,
    contact_properties,
    properties_hash,
)
from activation.hubspot.state import SyncState
from activation.unsubscribe.register import DoNotMarket

#: Why a row's consent column says no.
NOT_OPTED_IN = "not opted in"


@functools.cache
def email_shape() -> tuple[re.Pattern[str] | None, int | None]:
    """The members contract's email pattern and maximum length (``contracts/members.yml``): the
    one definition of an email's shape, matched against the normalised (lower-case) address."""
    column = contracts.get("members").column("email")
    return (re.compile(column.pattern) if column.pattern else None), column.max_length


def email_problem(email_: str) -> str | None:
    """Why a normalised email cannot be a contact's, by the members contract (None if it can)."""
    pattern, max_length = email_shape()
    if max_length is not None and len(email_) > max_length:
        return f"invalid email: longer than {max_length} characters (the members contract)"
    if pattern is not None and not pattern.match(email_):
        return "invalid email: does not match the members contract's email pattern"
    return None


@dataclass
class Upsert:
    email: str
    user_id: str
    properties: dict[str, str]
    hash: str
    status: str
    returning: bool = False  # back to active (or an old email): forget after a successful send

    def input(self) -> dict[str, Any]:
        return {"idProperty": "email", "id": self.email, "properties": self.properties}


@dataclass
class SyncPlan:
    """Every mart row (and every contact the state holds that left the mart) sorted: upserts,
    unchanged, or failed (why); plus the locations whose lists must exist."""

    records: int = 0
    unchanged: int = 0
    upserts: list[Upsert] = field(default_factory=list)
    failed: list[RecordError] = field(default_factory=list)
    locations: set[str] = field(default_factory=set)
    returning: int = 0
    email_changed: int = 0  # old emails of members synced under a new one, to retire
    forget: list[str] = field(default_factory=list)  # emails to drop from the state, unsent
    outside_audience: int = 0  # mart rows of a status the audience does not sync
    left_audience: int = 0  # synced contacts whose status the audience no longer syncs
    consent: Counter[str] = field(default_factory=Counter)  # "yes", or why not


@dataclass(frozen=True)
class Selection:
    """What a sync sends: the audience's properties and statuses, the consent column, and who
    may not be marketed to."""

    props: tuple[Prop, ...]
    statuses: tuple[str, ...]
    consent_column: str
    do_not_market: DoNotMarket = field(default_factory=DoNotMarket)


def plan_sync(
    rows: Iterable[Mapping[str, Any]], state: SyncState, selection: Selection
) -> SyncPlan:
    """What a sync must send, given the mart's rows and what was last synced."""
    out = SyncPlan()
    seen: dict[str, str] = {}  # email -> user_id that claimed it
    mart_users: set[str] = set()
    outside: set[str] = set()  # members in the mart whose status the audience does not sync
    placed: set[str] = set()  # members whose contact is synced (or sent) this run
    for row in sorted(rows, key=lambda r: str(r.get("user_id") or "")):
        user_id = str(row.get("user_id") or "")
        status = str(row.get("churn_status") or "")
        if status in (ACTIVE, *CHURN_STATUSES) and status not in selection.statuses:
            # The mart holds every current member; the audience syncs some statuses only. One
            # at risk or churned but not synced leaves the lists (below); one active, if it was
            # synced, is told it is active again.
            out.outside_audience += 1
            if status in CHURN_STATUSES:
                outside.add(user_id)
            continue
        out.records += 1
        mart_users.add(user_id)
        email_ = normalise_email(row.get("email"))
        key = user_id or email_ or f"row {out.records}"
        if not email_:
            out.failed.append(RecordError(key, "no email: HubSpot contacts are keyed by email"))
            continue
        problem = email_problem(email_)
        if problem:
            out.failed.append(RecordError(key, problem))
            continue
        if email_ in seen:
            out.failed.append(
                RecordError(key, f"email shared with member {seen[email_]}, who is synced instead")
            )
            continue
        seen[email_] = user_id
        if consented(row.get(selection.consent_column)):
            why_not = selection.do_not_market.why(email_)
        else:
            why_not = NOT_OPTED_IN
        try:
            props = contact_properties(row, selection.props, consent=why_not is None)
        except (TypeError, ValueError) as exc:
            out.failed.append(RecordError(key, f"invalid value: {short_text(str(exc))}"))
            continue
        out.consent[why_not or "yes"] += 1
        if props[LOCATION_PROPERTY]:
            out.locations.add(props[LOCATION_PROPERTY])
        placed.add(user_id)
        hash_ = properties_hash(props)
        known = state.contacts.get(email_)
        if known is not None and SyncState.split(known)[0] == hash_:
            out.unchanged += 1
            continue
        out.upserts.append(Upsert(email_, user_id, props, hash_, props[STATUS_PROPERTY]))

    for email_, entry in sorted(state.contacts.items()):
        if email_ in seen:
            continue
        _, status, user_id = SyncState.split(entry)
        moved = bool(user_id) and user_id in placed  # synced under their new email
        if not moved and user_id and user_id in mart_users:
            continue  # the new email cannot be synced (yet): the old contact stays as it is
        if not moved and user_id and user_id in outside:
            # Still at risk or churned, but the audience no longer syncs that status: the
            # contact leaves the marketing lists once, then is forgotten.
            out.records += 1
            out.left_audience += 1
            props = {CONSENT_PROPERTY: "false"}
            out.upserts.append(
                Upsert(email_, user_id, props, properties_hash(props), status, returning=True)
            )
            continue
        if not moved and status not in WATCHED:
            out.forget.append(email_)  # already active in HubSpot: nothing to tell it
            continue
        # Back to active, or an email the member no longer has: its contact says active and
        # leaves the marketing lists once (an old address its location too), then is forgotten.
        out.records += 1
        props = {STATUS_PROPERTY: ACTIVE, CONSENT_PROPERTY: "false"}
        if moved:
            out.email_changed += 1
            props[LOCATION_PROPERTY] = ""  # "" clears the property
        else:
            out.returning += 1
        out.upserts.append(
            Upsert(email_, user_id, props, properties_hash(props), ACTIVE, returning=True)
        )
    return out
