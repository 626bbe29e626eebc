"""The plan of a run: which member is due which campaign, and why the others are not.

Who is skipped (``unchanged``, broken down in ``details["skipped"]``): members already sent this
campaign in its current period (``already_sent``), or in doubt after a crash (``in_doubt``, see
:mod:`activation.email.ledger`); on the SES account-level suppression list (``suppressed``: SES
v2 ``ListSuppressedDestinations``, read once per run, all pages, just before the first send); on
the unsubscribe register (``unsubscribed``, :mod:`activation.unsubscribe.register`); members
without marketing consent (``opted_out``: the consent column the activation config names, in the
mart or else ``dim_users``; the mart already filters them, the double-check is skipped, and said
so, when ``dim_users`` is not readable, :func:`not_opted_in`); and rows whose segment has no
campaign (``no_campaign``). Rows without a member id, without a valid address, or sharing an
address with another member fail.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from activation.addresses import EMAIL_ADDRESS
from activation.audience import consented
from activation.base import RecordError, normalise_email, short_text
from activation.email.campaigns import Campaign
from activation.email.ledger import FAILED, SENDING, SENT, Ledger
from activation.email.mart import MART
from peak.model.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class Target:
    campaign: Campaign
    user_id: str
    email: str
    row: dict[str, Any]
    retry: bool = False  # the last attempt failed

    @property
    def key(self) -> str:
        return Ledger.key(self.campaign.name, self.user_id)


@dataclass
class SendPlan:
    """Every mart row sorted: due (in send order), skipped (counted by why) or failed (why)."""

    records: int = 0
    due: list[Target] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: list[RecordError] = field(default_factory=list)
    #: Every valid address of the mart (the e-mail audience), due or not.
    addresses: set[str] = field(default_factory=set)


def plan_sends(
    rows: Iterable[Mapping[str, Any]],
    campaigns: Sequence[Campaign],
    ledger: Ledger,
    today: dt.date,
    *,
    unsubscribed: Container[str] = (),
    opted_out: Iterable[str] = (),
) -> SendPlan:
    """Sort every mart row into due, skipped (why) or failed (why). Due targets come in
    campaign order, then by user id: a stopped run continues where it stopped."""
    out = SendPlan()
    by_segment = {c.segment: c for c in campaigns}
    order = {c.name: i for i, c in enumerate(campaigns)}
    opted = set(opted_out)
    seen: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: str(r.get("user_id") or "")):
        out.records += 1
        user_id = str(row.get("user_id") or "").strip()
        address = normalise_email(row.get("email"))
        key = user_id or address or f"row {out.records}"
        if not user_id:
            out.failed.append(RecordError(key, "no user_id: the send ledger is keyed by member"))
            continue
        if not EMAIL_ADDRESS.match(address):
            out.failed.append(RecordError(key, "no valid email address"))
            continue
        if address in seen:
            out.failed.append(RecordError(key, f"email shared with member {seen[address]}"))
            continue
        seen[address] = user_id
        out.addresses.add(address)
        campaign = by_segment.get(str(row.get("segment") or ""))
        if campaign is None:
            out.skipped["no_campaign"] += 1
            continue
        if user_id in opted:
            out.skipped["opted_out"] += 1
            continue
        if address in unsubscribed:
            out.skipped["unsubscribed"] += 1
            continue
        entry = ledger.entries.get(Ledger.key(campaign.name, user_id))
        if entry and entry.get("s") in (SENT, SENDING):
            start = dt.date.fromisoformat(entry["p"])
            if today < start + dt.timedelta(days=campaign.every_days):
                out.skipped["already_sent" if entry["s"] == SENT else "in_doubt"] += 1
                continue
        retry = bool(entry and entry.get("s") == FAILED)
        out.due.append(Target(campaign, user_id, address, dict(row), retry))
    out.due.sort(key=lambda t: (order[t.campaign.name], t.user_id))
    return out


def by_campaign(target: Target) -> Campaign:
    """What a batch must share: one SES template, so one campaign."""
    return target.campaign


def not_opted_in(
    warehouse: Warehouse,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    consent_column: str,
) -> tuple[set[str], str]:
    """Members without marketing consent, and where that came from: the mart's own consent
    column (``consent.column`` of the activation config, :mod:`activation.audience`) if it has
    one, else ``dim_users``' (the mart already filters; this is the cheap double-check, skipped
    when ``dim_users`` cannot be read)."""
    if consent_column in columns:
        note = f"{MART}.{consent_column}"
        return {str(r["user_id"]) for r in rows if not consented(r.get(consent_column))}, note
    try:
        users = warehouse.read("dim_users", columns=["user_id", consent_column])
    except Exception as exc:
        note = short_text(f"skipped: dim_users is not readable ({exc})", 200)
        log.warning("email: opt-in double-check %s", note)
        return set(), note
    return {
        str(u["user_id"]) for u in users.to_pylist() if not consented(u.get(consent_column))
    }, f"dim_users.{consent_column}"
