"""``peak forget``: erase members everywhere, then prove it.

The order of a run, each step idempotent (running it again changes nothing more):

1. take the transform's and activation's lake locks (nothing lands in the processed zone, and no
   sink sends, meanwhile);
2. resolve the members: the ids and addresses asked for, their closure
   (:mod:`peak.ops.forget.subject`), and any erasure a killed run left pending;
3. note the erasure: the subject in plain under ``_state/erasure/pending/`` (only until step 8,
   so that a killed run can be finished by the next one), and its salted hashes in the register
   (:class:`peak.core.erasure.Register`): from here on ingestion drops their rows from anything
   it lands;
4. the sinks' state: the e-mail send ledger and unsubscribe list, the HubSpot sync state
   (:mod:`activation.email.erase`, :mod:`activation.hubspot.erase`);
5. every file of the lake, and of Athena's data and query-result folders when configured
   (:mod:`peak.ops.forget.stores`): raw zone, raw Parquet and the ingest ledger, processed zone,
   quarantine, warehouse files, outboxes, run reports, everything;
6. Redis: every key under the leaderboard's prefix (:mod:`activation.leaderboard.erase`);
7. HubSpot: its GDPR delete for every address and every contact with their id
   (:class:`activation.hubspot.erase.Remote`);
8. the proof: every place searched again for every id and address; when nothing is left the
   pending note is removed, and the report (counts and salted hashes, never a value) says so.

Failpoints ``forget.register``, ``forget.file`` (after each file rewritten), ``forget.stores``,
``forget.remote`` and ``forget.verify`` are the crash sites the tests use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from activation.email import erase as email_erase
from activation.hubspot import erase as hubspot_erase
from activation.hubspot.sink import HubSpotSink
from activation.leaderboard import erase as leaderboard_erase
from activation.leaderboard.boards import connect
from activation.runner import STALE_LOCK
from peak.core import layout
from peak.core.erasure import Register, Subject
from peak.core.errors import OpsError
from peak.core.failpoints import failpoint
from peak.core.lake import Lake
from peak.core.layout import ERASURE_PENDING_PREFIX as PENDING_PREFIX
from peak.core.locks import lake_lock, transform_lock
from peak.core.settings import Settings
from peak.ops.forget import stores
from peak.ops.forget.stores import Findings, Place
from peak.ops.forget.subject import all_pairs, resolve

#: Remote systems a run can be told to skip (a deployment without them).
SYSTEMS = ("redis", "hubspot")
#: ``remaining`` of a place that could not be searched.
NOT_SEARCHED = -1


@dataclass
class ForgetResult:
    run_id: str
    dry_run: bool
    asked: dict[str, int]
    subject: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, list[str]] = field(default_factory=dict)
    resumed: int = 0
    places: list[Place] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return sum(p.remaining for p in self.places if p.remaining > 0)

    @property
    def clean(self) -> bool:
        """Nothing of the members found anywhere searched, and every place searched."""
        return all(p.remaining == 0 for p in self.places)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "asked": self.asked,
            "subject": self.subject,
            "register_hashes": self.hashes,
            "resumed": self.resumed,
            "clean": self.clean,
            "remaining": self.remaining,
            "places": [asdict(p) for p in self.places],
        }


def _pending(lake: Lake) -> tuple[Subject, list[str]]:
    subject, keys = Subject(), []
    for key in lake.list(PENDING_PREFIX):
        data = lake.read_json(key, default=None) or {}
        subject = subject | Subject.of(data.get("ids") or (), data.get("emails") or ())
        keys.append(key)
    return subject, keys


def _extra_stores(settings: Settings) -> list[tuple[Lake, str]]:
    """Athena's folders: the tables dbt writes, and query results (sinks' reads included)."""
    found = []
    for uri, label in (
        (settings.athena.s3_data_dir, "athena data"),
        (settings.athena.s3_staging_dir, "athena results"),
    ):
        if uri and uri.startswith("s3://"):
            found.append((Lake.from_uri(uri), label))
    return found


def forget(
    lake: Lake,
    asked: Subject,
    *,
    settings: Settings,
    run_id: str,
    dry_run: bool = False,
    skip: Iterable[str] = (),
) -> ForgetResult:
    """Erase the members ``asked`` (and their closure) everywhere; the erasure report."""
    skipped = set(skip)
    for name in skipped - set(SYSTEMS):
        raise OpsError(f"unknown system {name!r} to skip (known: {', '.join(SYSTEMS)})")
    result = ForgetResult(
        run_id, dry_run, asked={"ids": len(asked.ids), "emails": len(asked.emails)}
    )
    with (
        transform_lock(lake, run_id),
        lake_lock(
            lake,
            layout.ACTIVATION_LOCK_KEY,
            run_id,
            what="activation",
            stale_after=STALE_LOCK,
        ),
    ):
        pending, pending_keys = _pending(lake)
        if not asked and not pending:
            raise OpsError("nothing to forget: give --user-id, --email or --from-file")
        extra = _extra_stores(settings)
        subject = resolve(asked | pending, all_pairs(lake, [s for s, _ in extra]))
        result.resumed = len(pending_keys)
        result.subject = {
            "ids": len(subject.ids),
            "emails": len(subject.emails),
            "ids_added": len(subject.ids - asked.ids),
            "emails_added": len(subject.emails - asked.emails),
        }
        if dry_run:
            result.places = _verify(lake, extra, subject, settings, skipped, Findings())
            return result
        _note(lake, subject, run_id, result)
        findings = Findings()
        _erase(lake, extra, subject, settings, skipped, findings)
        failpoint("forget.verify")
        result.places = _verify(lake, extra, subject, settings, skipped, findings)
        if result.clean:
            for key in [*pending_keys, _pending_key(run_id)]:
                lake.delete(key)
    return result


def _pending_key(run_id: str) -> str:
    return f"{PENDING_PREFIX}{run_id}.json"


def _note(lake: Lake, subject: Subject, run_id: str, result: ForgetResult) -> None:
    """Step 3: the pending note (plain, until proven), then the register (hashes, for good)."""
    body = {"run_id": run_id, "ids": sorted(subject.ids), "emails": sorted(subject.emails)}
    lake.write_bytes(_pending_key(run_id), json.dumps(body, indent=2).encode())
    register = Register.load(lake)
    ids, emails = register.add(lake, subject, run_id)
    result.hashes = {"ids": ids, "emails": emails}
    failpoint("forget.register")


def _erase(
    lake: Lake,
    extra: list[tuple[Lake, str]],
    subject: Subject,
    settings: Settings,
    skipped: set[str],
    findings: Findings,
) -> None:
    for name, removed in email_erase.erase(lake, subject).items():
        findings.place(f"email: {name}", "state").erased += removed
    findings.place("hubspot: sync state", "state").erased += hubspot_erase.erase_state(
        lake, subject
    )
    for store, label in [(lake, "lake"), *extra]:
        stores.clean(store, label, subject, findings)
    failpoint("forget.stores")
    if "redis" not in skipped:
        client = _redis(settings)
        try:
            removed = leaderboard_erase.erase(client, settings.leaderboard.prefix, subject)
        finally:
            client.close()
        findings.place(_redis_place(settings), "keys").erased += removed
    if "hubspot" not in skipped and settings.hubspot.token:
        sink = _hubspot(settings)
        try:
            deleted = hubspot_erase.Remote(sink.client).erase(subject)
        finally:
            sink.close()
        findings.place("hubspot: contacts", "remote").erased += deleted
    failpoint("forget.remote")


def _verify(
    lake: Lake,
    extra: list[tuple[Lake, str]],
    subject: Subject,
    settings: Settings,
    skipped: set[str],
    findings: Findings,
) -> list[Place]:
    """Step 8: search every place again; the places, each with what is left."""
    for name, left in email_erase.found(lake, subject).items():
        place = findings.place(f"email: {name}", "state")
        place.searched, place.remaining = 1, left
    place = findings.place("hubspot: sync state", "state")
    place.searched, place.remaining = 1, hubspot_erase.found_in_state(lake, subject)
    for p in findings.places.values():
        if p.kind == "zone":
            p.searched = p.remaining = 0
            p.tables = {}
    for store, label in [(lake, "lake"), *extra]:
        stores.search(store, label, subject, findings)
    place = findings.place(_redis_place(settings), "keys")
    if "redis" in skipped:
        place.note = "skipped (--skip redis)"
    else:
        try:
            client = _redis(settings)
        except Exception as exc:  # unreachable: the place is not proven clean
            place.remaining, place.note = NOT_SEARCHED, str(exc)
        else:
            try:
                place.searched, place.remaining = leaderboard_erase.search(
                    client, settings.leaderboard.prefix, subject
                )
            finally:
                client.close()
    place = findings.place("hubspot: contacts", "remote")
    if "hubspot" in skipped:
        place.note = "skipped (--skip hubspot)"
    elif not settings.hubspot.token:
        place.note = "not configured: HUBSPOT_ACCESS_TOKEN is not set (the sink runs dry)"
    else:
        sink = _hubspot(settings)
        try:
            place.searched = len(subject.ids) + len(subject.emails)
            place.remaining = hubspot_erase.Remote(sink.client).search(subject)
        except Exception as exc:
            place.remaining, place.note = NOT_SEARCHED, str(exc)
        finally:
            sink.close()
    return list(findings.places.values())


def _redis_place(settings: Settings) -> str:
    return f"redis: {settings.leaderboard.prefix}:*"


def _redis(settings: Settings) -> Any:
    return connect(settings.redis)


def _hubspot(settings: Settings) -> HubSpotSink:
    return HubSpotSink(settings.hubspot)
