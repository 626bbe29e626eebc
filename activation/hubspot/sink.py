"""The HubSpot sink: churned and at-risk members to HubSpot contacts, and one list per gym.

A run reads ``mart_hubspot_contacts`` (one row per churned or at-risk member; the audience of the
activation config, :mod:`activation.audience`, says which statuses and properties are synced and
names the consent column), and the do-not-market register
(:mod:`activation.unsubscribe.register`), plans what changed since the last sync
(:mod:`activation.hubspot.plan`) and, through hubspot-api-client:

1. makes sure the ``peak_fitness`` property group and every contact property it sends exist
   (:func:`activation.hubspot.properties.ensure_properties`);
2. upserts the contacts whose properties changed, keyed by email, 100 a call
   (``POST /crm/v3/objects/contacts/batch/upsert``, ``idProperty=email``), journalling each
   batch in the sync state (:mod:`activation.hubspot.state`) once HubSpot took it;
3. makes sure there is one contact list per home location
   (:func:`activation.hubspot.lists.ensure_lists`).

Invalid values. HubSpot's batch endpoints are all or nothing: one input it finds invalid (an
address it refuses although it has the right shape, say) gets the whole batch a 400
``VALIDATION_ERROR`` and nothing in it is written. Such a batch is split in halves, each sent
again (and split again if refused), until the contacts HubSpot refuses are alone in their call;
they fail with HubSpot's reason, every other contact is sent in the same run. The extra calls
count as repeated (``retried``; ``details.batches_split``). Every contact ends sent, unchanged
or failed with its reason (``records == sent + unchanged + failed``); a failed contact is not
marked synced, so the next run sends it again (:mod:`activation.hubspot.reconcile`).

Status: ``failed`` when a call failed for good (rejected token, HubSpot unavailable after every
retry, a batch rejected whole for another reason than its values, or contact after contact
refused for the same reason: a problem with the request, not the contacts); contacts HubSpot
refused one by one leave it ``ok`` and are listed in ``errors``. Without
``HUBSPOT_ACCESS_TOKEN`` the sink runs dry (the outbox gets what would be sent). The failpoint
``hubspot.after_batch`` (after HubSpot took a batch, before it is journalled) is the crash site
the tests use.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from activation.audience import DEFAULT_CONFIG, Audience, load_audience
from activation.base import (
    RecordError,
    SinkContext,
    SinkError,
    SinkResult,
    batches,
    short_text,
    write_outbox,
)
from activation.hubspot.client import HubSpotClient
from activation.hubspot.errors import HubSpotError
from activation.hubspot.lists import ensure_lists, list_body
from activation.hubspot.plan import Selection, SyncPlan, Upsert, plan_sync
from activation.hubspot.properties import (
    GROUP,
    MART,
    Prop,
    ensure_properties,
    mart_columns,
    select_properties,
)
from activation.hubspot.reconcile import contact_ids, settle
from activation.hubspot.resync import read_back, rebuild
from activation.hubspot.settings import SINK
from activation.hubspot.state import SyncState
from activation.pacing import Deadline, RateLimiter, Retry
from activation.unsubscribe.register import DoNotMarket
from peak.core.failpoints import failpoint
from peak.core.layout import outbox_prefix
from peak.core.settings import HUBSPOT_SEARCH_PAGE, HubSpotSettings, Settings

log = logging.getLogger(__name__)


def _yes_first(item: tuple[str, int]) -> tuple[bool, str]:
    return (item[0] != "yes", item[0])


class HubSpotSink:
    name = SINK

    def __init__(
        self,
        config: HubSpotSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        settings: Settings | None = None,
        audience: Audience | None = None,
    ) -> None:
        """``config`` wins; else the ``hubspot`` section of ``settings`` (how
        ``activation.runner`` builds sinks); else the environment. ``audience`` is the
        activation config's (by default read at each run from ``PEAK_EMAIL_CAMPAIGNS``, the one
        file both marketing sinks read, else ``activation/campaigns.yml``)."""
        if config is None and settings is not None:
            config = settings.hubspot
        self.config = config or HubSpotSettings.load()
        self.audience = audience
        self.config_file = (settings.email.campaigns_file if settings else None) or DEFAULT_CONFIG
        self.sleep = sleep
        self.clock = clock
        deadline = Deadline(self.config.deadline_s, clock)  # started by each run
        limiter = RateLimiter(
            self.config.rate_limit, self.config.rate_window_s, clock, sleep, deadline
        )
        retry = Retry(
            self.config.max_attempts,
            self.config.backoff_base_s,
            self.config.backoff_max_s,
            clock,
            sleep,
            deadline,
        )
        self.client = HubSpotClient(self.config, limiter, retry)
        #: HubSpot's CRM search has a limit of its own (a full resync's read-back).
        self.search_limiter = RateLimiter(self.config.search_rate_limit, 1.0, clock, sleep)

    def apis(self) -> dict[str, Any]:
        """The API objects, built once: every one points at ``config.base_url``."""
        return self.client.apis()

    def close(self) -> None:
        self.client.close()

    # -- run ----------------------------------------------------------------------------------

    def run(self, ctx: SinkContext) -> SinkResult:
        dry = ctx.dry_run or self.config.token is None
        result = SinkResult(sink=SINK, dry_run=dry)
        self.client.start(result)
        started = self.clock()
        try:
            try:
                audience = self.audience or load_audience(self.config_file)
                props = select_properties(audience.hubspot_properties)
            except SinkError as exc:
                result.status, result.error = "failed", str(exc)
                return result
            columns = mart_columns(props, audience.consent_column)
            try:
                rows = ctx.warehouse.read(MART, columns=columns).to_pylist()
            except Exception as exc:  # the warehouse reader's errors, DuckDB's, Athena's
                result.status, result.error = "failed", short_text(f"cannot read {MART}: {exc}")
                return result
            state = SyncState.load(ctx.lake)
            if self.config.full_resync and not self._resync(state, props, dry, result):
                return result
            selection = Selection(
                props,
                audience.hubspot_statuses,
                audience.consent_column,
                DoNotMarket.load(ctx.lake),
            )
            todo = plan_sync(rows, state, selection)
            result.records = todo.records
            result.unchanged = todo.unchanged
            result.fail_records(todo.failed)
            result.details.update(
                {
                    "audience": {
                        "statuses": list(audience.hubspot_statuses),
                        "consent_column": audience.consent_column,
                    },
                    "outside_audience": todo.outside_audience,
                    "left_audience": todo.left_audience,
                    "marketing_consent": dict(sorted(todo.consent.items(), key=_yes_first)),
                    "returned_to_active": todo.returning,
                    "email_changed": todo.email_changed,
                    "locations": len(todo.locations),
                    "batches": math.ceil(len(todo.upserts) / self.config.batch_size),
                    "rate_limit": f"{self.config.rate_limit} per {self.config.rate_window_s:g}s",
                }
            )
            if dry:
                self._dry_run(ctx, todo, props, result)
            else:
                state.compact()
                self._sync(todo, props, state, result)
                state.compact()
        finally:
            self.client.stop()
            result.details["throttle_wait_s"] = round(self.client.throttle_wait_s, 3)
            result.details["retry_wait_s"] = round(self.client.retry_wait_s, 3)
            result.details["rate_limited_responses"] = self.client.rate_limited
            result.details["seconds"] = round(self.clock() - started, 3)
        result.log(log)
        return result

    def _resync(
        self, state: SyncState, props: tuple[Prop, ...], dry: bool, result: SinkResult
    ) -> bool:
        """Rebuild the state from what HubSpot holds (:mod:`activation.hubspot.resync`); in a
        dry run in memory only. False (the run failed) when HubSpot could not be read."""
        if self.config.token is None:
            result.details["full_resync"] = "skipped: HUBSPOT_ACCESS_TOKEN is not set"
            return True
        try:
            if not dry:
                state.compact()
            held = read_back(self.client, props, self.search_limiter, HUBSPOT_SEARCH_PAGE)
        except HubSpotError as exc:
            result.status, result.error = "failed", f"full resync: {exc}"
            return False
        forgotten = rebuild(state, held, persist=not dry)
        result.details["full_resync"] = {
            "found": held.found,
            "search_calls": held.search_calls,
            "forgotten": forgotten,
        }
        return True

    def _portal(self, state: SyncState, result: SinkResult) -> None:
        """The portal's id and UI domain, once (the dashboard's links to contacts need them); a
        failure costs the links, not the run."""
        try:
            body = self.client.account_details().body
        except HubSpotError as exc:
            result.details["portal_error"] = str(exc)
            return
        portal = body.get("portalId") if isinstance(body, dict) else None
        if portal:
            state.record(portal={"id": str(portal), "ui_domain": str(body.get("uiDomain") or "")})

    def _fail_upserts(self, result: SinkResult, upserts: Iterable[Upsert], reason: str) -> None:
        result.fail_records(RecordError(u.user_id or u.email, reason) for u in upserts)

    def _dry_run(
        self, ctx: SinkContext, todo: SyncPlan, props: tuple[Prop, ...], result: SinkResult
    ) -> None:
        bodies = [
            {"inputs": [u.input() for u in batch]}
            for batch in batches(todo.upserts, self.config.batch_size)
        ]
        write_outbox(ctx, SINK, "contacts_batch_upsert", bodies)
        write_outbox(ctx, SINK, "property_groups", [GROUP])
        write_outbox(ctx, SINK, "properties", [p.definition() for p in props])
        write_outbox(ctx, SINK, "lists", [list_body(loc) for loc in sorted(todo.locations)])
        result.sent = len(todo.upserts)
        result.outbox = ctx.lake.uri(outbox_prefix(SINK, ctx.run_id))
        result.details["note"] = (
            "dry run: HUBSPOT_ACCESS_TOKEN is not set, nothing was sent"
            if self.config.token is None
            else "dry run: nothing was sent"
        ) + "; 'sent' counts the contacts the outbox holds"

    def _sync(
        self, todo: SyncPlan, props: tuple[Prop, ...], state: SyncState, result: SinkResult
    ) -> None:
        upserts = todo.upserts
        # Contacts HubSpot already has as active: nothing to send, dropped from the state.
        state.record(contacts=dict.fromkeys(todo.forget))
        result.details["forgotten"] = len(todo.forget)
        try:
            self.apis()
            result.details.update(ensure_properties(self.client, props))
        except HubSpotError as exc:
            result.status, result.error = "failed", str(exc)
            self._fail_upserts(result, upserts, f"not sent: {exc}")
            return

        failed_in_a_row = 0
        refused_for = ""  # HubSpot's reason for refusing the last contact sent alone
        result.details["batches_split"] = 0
        # (batch, is a half of a refused batch): halves go first, in order, so the run stays
        # in mart order and a crash re-sends at most the call in flight.
        pending: deque[tuple[list[Upsert], bool]] = deque(
            (batch, False) for batch in batches(upserts, self.config.batch_size)
        )
        while pending:
            batch, half = pending.popleft()
            if half:
                result.retried += 1  # a repeated call: its contacts were in one HubSpot refused
            body = {"inputs": [u.input() for u in batch]}
            try:
                response = self.client.call(self.apis()["batch"].upsert, body)
            except HubSpotError as exc:
                if exc.invalid_input and len(batch) > 1:
                    # All or nothing: a value HubSpot refuses fails the whole batch. Halve it
                    # until the contacts at fault are alone; the others go in this run.
                    middle = (len(batch) + 1) // 2
                    pending.extendleft([(batch[middle:], True), (batch[:middle], True)])
                    result.details["batches_split"] += 1
                    continue
                if exc.invalid_input:  # one contact, refused: HubSpot's reason is its own
                    self._fail_upserts(result, batch, f"rejected by HubSpot: {exc.reason}")
                    # One contact refused after another for the same reason: the request, not
                    # the contacts (halving would cost ~2 calls a contact). Else: their data.
                    failed_in_a_row = failed_in_a_row + 1 if exc.reason == refused_for else 1
                    refused_for = exc.reason
                    if failed_in_a_row < self.config.max_failed_batches:
                        continue
                else:
                    failed_in_a_row += 1
                    self._fail_upserts(result, batch, str(exc))
                result.status, result.error = "failed", str(exc)
                if exc.fatal or exc.transient or failed_in_a_row >= self.config.max_failed_batches:
                    # HubSpot refuses us, or is down after every retry: stop rather than spend
                    # the rate limit on calls that will fail too. The rest go next run.
                    rest = [u for b, _ in pending for u in b]
                    self._fail_upserts(result, rest, f"not sent: {exc}")
                    return
                continue
            failed_in_a_row, refused_for = 0, ""
            failpoint("hubspot.after_batch")
            synced, rejected = settle(batch, response)
            ids = contact_ids(response)
            state.record(
                contacts={
                    u.email: None
                    if u.returning
                    else SyncState.entry(u.hash, u.status, u.user_id, ids.get(u.email, ""))
                    for u in synced
                }
            )
            result.sent += len(synced)
            result.fail_records(rejected)

        if state.portal is None and result.sent:
            self._portal(state, result)
        try:
            result.details.update(ensure_lists(self.client, todo.locations, state))
        except HubSpotError as exc:
            result.status = "failed"
            result.error = result.error or str(exc)
            result.details["lists_error"] = str(exc)
