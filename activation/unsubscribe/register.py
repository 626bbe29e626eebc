"""The do-not-market register: who unsubscribed, and who SES suppresses.

Both marketing sinks read it: the e-mail sink skips those addresses, the HubSpot sink sends
them with ``peak_marketing_consent=false`` so that they leave every marketing list. Addresses are
stored under their hash (:func:`activation.addresses.address_key`), never in clear:

- **unsubscribes**: one small object per address under ``UNSUBSCRIBES_PREFIX``
  (:mod:`peak.core.layout`), ``{"at": …, "source": …}``, created once with a conditional write
  (:meth:`peak.core.lake.Lake.create`), so concurrent writers (the Lambda answers many one-click
  POSTs at once) never lose one and a repeat changes nothing. The register's first form, one
  JSON file of addresses (``LEGACY_UNSUBSCRIBES_KEY``), is still read;
- **suppressed**: the e-mail audience's addresses on SES's account-level suppression list
  (bounces, complaints) the last time the e-mail sink read it, with the reason
  (``SUPPRESSED_KEY``), replaced whole each time. The HubSpot sink runs before the e-mail sink
  in ``peak activate all``, so a new suppression reaches the lists one run later.

This module imports only the standard library and :mod:`peak.core` (the Lambda packages it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from activation.addresses import EMAIL_ADDRESS, address_key, normalise_email
from peak.core.lake import Lake
from peak.core.layout import (
    LEGACY_UNSUBSCRIBES_KEY,
    SUPPRESSED_KEY,
    UNSUBSCRIBES_PREFIX,
    unsubscribe_key,
)


def unsubscribe(
    lake: Lake, email: str, *, source: str = "manual", now: dt.datetime | None = None
) -> bool:
    """Put an address on the register; False if it was there already (nothing changes).

    Safe to call concurrently and repeatedly: each address is one object, created only if it
    does not exist (so the writer needs nothing but ``s3:PutObject`` on the register's prefix).
    ``ValueError`` if ``email`` is not an address."""
    address = normalise_email(email)
    if not EMAIL_ADDRESS.match(address):
        raise ValueError("not an email address")
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    record = {"at": when.isoformat(timespec="seconds"), "source": source}
    return lake.create(unsubscribe_key(address_key(address)), json.dumps(record).encode())


def _legacy(lake: Lake) -> set[str]:
    emails = (lake.read_json(LEGACY_UNSUBSCRIBES_KEY, default={}) or {}).get("emails") or {}
    return {address_key(e) for e in emails}


class Unsubscribes:
    """The unsubscribed addresses, by hash: ``address in unsubscribes`` for any spelling."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = frozenset(keys)

    def __contains__(self, email: object) -> bool:
        return isinstance(email, str) and address_key(email) in self.keys

    def __len__(self) -> int:
        return len(self.keys)


def unsubscribed(lake: Lake) -> Unsubscribes:
    """Everyone on the register (one listing of its prefix, plus the legacy file)."""
    names = (k[len(UNSUBSCRIBES_PREFIX) :] for k in lake.list(UNSUBSCRIBES_PREFIX))
    keys = {n.removesuffix(".json") for n in names if n.endswith(".json")}
    return Unsubscribes(keys | _legacy(lake))


def record_suppressed(
    lake: Lake, reasons: Mapping[str, str], *, now: dt.datetime | None = None
) -> None:
    """Replace the suppression snapshot: ``reasons`` maps an address to SES's reason."""
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    snapshot = {
        "version": 1,
        "at": when.isoformat(timespec="seconds"),
        "addresses": {address_key(a): r for a, r in sorted(reasons.items())},
    }
    lake.write_json(SUPPRESSED_KEY, snapshot)


def suppressed(lake: Lake) -> dict[str, str]:
    """The last suppression snapshot: address hash -> SES's reason ({} when there is none)."""
    return dict((lake.read_json(SUPPRESSED_KEY, default={}) or {}).get("addresses") or {})


@dataclass(frozen=True)
class DoNotMarket:
    """Why an address may not be marketed to, from the register (None if it may)."""

    unsubscribes: Unsubscribes = field(default_factory=lambda: Unsubscribes(()))
    suppressions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, lake: Lake) -> DoNotMarket:
        return cls(unsubscribed(lake), suppressed(lake))

    def why(self, email: str) -> str | None:
        if email in self.unsubscribes:
            return "unsubscribed"
        reason = self.suppressions.get(address_key(email))
        return f"suppressed by SES ({reason})" if reason is not None else None
