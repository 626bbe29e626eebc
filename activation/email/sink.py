"""The email sink: a run (read the mart, plan, send or write the outbox) and template deployment.

Sending. SES v2 ``SendBulkEmail``, one campaign's template per call and at most 50 entries a
call, each e-mail with its one-click unsubscribe headers (:mod:`activation.email.messages`),
paced under the account's ``MaxSendRate`` (``GetAccount``'s ``SendQuota``, messages per second,
optionally capped lower by ``PEAK_EMAIL_MAX_SEND_RATE``;
:class:`activation.pacing.SendPacer`): a call of ``n`` destinations that finished at ``t`` lets
the next call start at ``t + n / rate``. The daily quota (``Max24HourSend - SentLast24Hours``,
``-1`` = unlimited) is read once at the start and counted down; the run sends exactly up to it
and stops. Throttling is retried (:mod:`activation.email.ses`); "Daily message quota exceeded",
or throttling after every retry, stops the run cleanly: the batch in flight and every later one
are left due (counted ``failed`` with the reason, status ``failed``) and the stop is recorded in
the ledger (``last_stop``); the next run simply continues, in the same order.

Every batch is journalled ``sending`` in the send ledger before its call and ``sent``/``failed``
after it (:mod:`activation.email.ledger`: at most once per period, even across a crash).
Failpoints ``email.before_send`` (after the ``sending`` journal, before the call) and
``email.after_send`` (after the call, before its outcome is journalled) are the two crash sites
the tests use.

Pacing note: a call carries up to 50 destinations at once, so on a sandbox account (1 message a
second) each call is a burst of 50 followed by 50 s of quiet; ``PEAK_EMAIL_BATCH`` makes calls
smaller if SES objects to the bursts.

Credentials. Without AWS credentials (``boto3.Session().get_credentials()`` is None) or without
``PEAK_EMAIL_SENDER`` the sink runs dry, like ``ctx.dry_run``: the rendered emails and the exact
bulk requests go to the outbox, nothing is sent and no AWS call is made (so the suppression list
is not checked).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from activation.audience import AudienceConfigError, load_audience
from activation.base import (
    RecordError,
    SinkContext,
    SinkResult,
    batches,
    short_text,
    write_outbox,
)
from activation.email.campaigns import Campaign, load_campaigns
from activation.email.errors import EmailConfigError, InDoubt, SesError, Stop
from activation.email.ledger import SENDING, Ledger
from activation.email.mart import MART, MART_COLUMNS, REQUIRED_COLUMNS, row_key
from activation.email.messages import bulk_request, write_dry_run
from activation.email.plan import SendPlan, by_campaign, not_opted_in, plan_sends
from activation.email.preflight import prepare
from activation.email.reconcile import (
    failed_entry,
    not_sent,
    settle,
    stop,
    stop_in_doubt,
    stop_record,
)
from activation.email.ses import Ses
from activation.email.settings import SINK, campaigns_file, templates_dir
from activation.email.templates import SINK_FIELDS, Template, load_templates
from activation.pacing import Deadline, DeadlineExceeded, Retry, SendPacer
from activation.unsubscribe.register import unsubscribed
from peak.core.failpoints import failpoint
from peak.core.layout import outbox_prefix
from peak.core.settings import EmailSettings, Settings

log = logging.getLogger(__name__)


#: Why a run stops when SES's daily quota is used up.
DAILY_QUOTA = "SES daily sending quota reached"


@dataclass
class _Run:
    """One run's working state."""

    ctx: SinkContext | None
    result: SinkResult
    today: dt.date
    ledger: Ledger

    @property
    def run_id(self) -> str | None:
        return self.ctx.run_id if self.ctx else None


class EmailSink:
    name = SINK

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        email_settings: EmailSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        sesv2_client: Any = None,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """``email_settings`` wins; else the ``email`` section of ``settings`` (how
        ``activation.runner`` builds sinks); else the environment. ``sesv2_client`` replaces the
        SES v2 client the sink would build (build it with
        :func:`~activation.email.settings.client_config`); ``now`` is the wall clock (UTC) that
        dates periods."""
        if email_settings is None:
            email_settings = settings.email if settings is not None else EmailSettings.load()
        self.config = email_settings
        self.sleep = sleep
        self.clock = clock
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        #: The run's overall deadline (PEAK_EMAIL_DEADLINE_S), started by each run.
        self.deadline = Deadline(self.config.deadline_s, clock)
        retry = Retry(
            self.config.max_attempts,
            self.config.backoff_base_s,
            self.config.backoff_max_s,
            clock,
            sleep,
            self.deadline,
        )
        self.api = Ses(self.config, retry, sesv2_client=sesv2_client)

    # -- AWS clients ----------------------------------------------------------------------------

    def has_credentials(self) -> bool:
        return self.api.has_credentials()

    def sesv2(self) -> Any:
        return self.api.sesv2()

    # -- templates ------------------------------------------------------------------------------

    def campaigns(self) -> tuple[list[Campaign], dict[str, Template]]:
        campaigns = load_campaigns(campaigns_file(self.config))
        return campaigns, load_templates(campaigns, templates_dir(self.config))

    def deploy_templates(self, ctx: SinkContext | None = None) -> SinkResult:
        """Create or update the campaigns' templates in SES (``--deploy-templates``).

        Idempotent: a template whose subject, HTML and text are what SES holds is not touched.
        ``records`` = templates, ``sent`` = created + updated, ``unchanged`` = the others;
        ``details["templates"]`` names them. Dry (``ctx.dry_run`` or no credentials): the
        compiled templates go to the outbox (``templates.jsonl``) and SES is not called.
        Templates are checked against the mart's declared columns (:data:`MART_COLUMNS`) first.
        """
        dry = bool(ctx and ctx.dry_run) or not self.has_credentials()
        result = SinkResult(sink=SINK, dry_run=dry)
        self.api.start(result)
        prefix = self.config.template_prefix
        done: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
        result.details["templates"] = done
        try:
            try:
                _, templates = self.campaigns()
                for template in templates.values():
                    template.check_fields(
                        (*MART_COLUMNS, *SINK_FIELDS), f"{MART} ({', '.join(MART_COLUMNS)})"
                    )
            except EmailConfigError as exc:
                result.status, result.error = "failed", str(exc)
                return result
            result.records = len(templates)
            wanted = [t.ses_template(prefix) for t in templates.values()]
            if dry:
                if ctx is None:
                    result.status, result.error = "failed", "dry run without a context: no outbox"
                    return result
                write_outbox(ctx, SINK, "templates", wanted)
                result.outbox = ctx.lake.uri(outbox_prefix(SINK, ctx.run_id))
                result.sent = len(wanted)
                result.details["note"] = (
                    "dry run: no AWS credentials, nothing was deployed"
                    if not ctx.dry_run
                    else "dry run: nothing was deployed"
                )
                return result
            for want in wanted:
                name = want["TemplateName"]
                try:
                    done[self.api.put_template(want)].append(name)
                except SesError as exc:
                    result.failed += 1
                    result.errors.append(RecordError(name, str(exc)))
                    result.status, result.error = "failed", str(exc)
            result.sent = len(done["created"]) + len(done["updated"])
            result.unchanged = len(done["unchanged"])
            log.info("email templates: %s", {k: len(v) for k, v in done.items()})
            return result
        finally:
            self.api.stop()

    # -- run ------------------------------------------------------------------------------------

    def run(self, ctx: SinkContext) -> SinkResult:
        # Not configured for sending (no AWS credentials, no sender): a dry run that says why.
        no_credentials = not self.has_credentials() or not self.config.sender
        dry = ctx.dry_run or no_credentials
        result = SinkResult(sink=SINK, dry_run=dry)
        today = self.now().date()
        self.api.start(result)
        started = self.clock()
        pacer: SendPacer | None = None
        try:
            try:
                campaigns, templates = self.campaigns()
                audience = load_audience(campaigns_file(self.config))
            except (EmailConfigError, AudienceConfigError) as exc:
                result.status, result.error = "failed", str(exc)
                return result
            try:
                table = ctx.warehouse.read(MART)
            except Exception as exc:  # the warehouse reader's errors, DuckDB's, Athena's
                result.status, result.error = "failed", short_text(f"cannot read {MART}: {exc}")
                return result
            columns = list(table.column_names)
            rows = table.to_pylist()
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            try:
                if missing:
                    raise EmailConfigError(f"{MART} has no column {', '.join(missing)}")
                for campaign in campaigns:  # a template naming a missing field fails here
                    templates[campaign.template].check_fields((*columns, *SINK_FIELDS), MART)
            except EmailConfigError as exc:
                result.status, result.error = "failed", str(exc)
                result.records = len(rows)
                reason = f"not sent: {exc}"
                result.fail_records(RecordError(row_key(r), reason) for r in rows)
                return result

            ledger = Ledger.load(ctx.lake)
            run = _Run(ctx, result, today, ledger)
            opted_out, opt_in_check = not_opted_in(
                ctx.warehouse, columns, rows, audience.consent_column
            )
            result.details["opt_in_check"] = opt_in_check
            todo = plan_sends(
                rows,
                campaigns,
                ledger,
                today,
                unsubscribed=unsubscribed(ctx.lake),
                opted_out=opted_out,
            )
            result.records = todo.records
            result.fail_records(todo.failed)
            result.details.update(
                {
                    "today": today.isoformat(),
                    "campaigns": {
                        c.name: {
                            "segment": c.segment,
                            "template": c.template,
                            "every_days": c.every_days,
                            "due": sum(1 for t in todo.due if t.campaign == c),
                            "sent": 0,
                        }
                        for c in campaigns
                    },
                    "retrying_failed": sum(1 for t in todo.due if t.retry),
                    "list_unsubscribe": "one-click (RFC 8058): List-Unsubscribe and "
                    "List-Unsubscribe-Post on every e-mail",
                }
            )
            if self.config.dev_secret:
                result.details["unsubscribe_secret"] = (
                    "development default (PEAK_EMAIL_UNSUBSCRIBE_SECRET is not set)"
                )
            if ledger.last_stop:
                result.details["previous_stop"] = ledger.last_stop

            if dry:
                self._dry_run(ctx, todo, templates, result, no_credentials, today)
            else:
                ledger.compact()
                pacer = self._send(todo, templates, run)
                every = {c.name: c.every_days for c in campaigns}
                pruned = ledger.prune(today, every, self.config.ledger_keep_days)
                if pruned:
                    result.details["ledger_pruned"] = pruned
                ledger.compact()
            skipped = dict(sorted(todo.skipped.items()))
            result.unchanged = sum(skipped.values())
            result.details["skipped"] = skipped
        finally:
            self.api.stop()
            if pacer is not None:
                result.details["pace_wait_s"] = round(pacer.waited_s, 3)
            result.details["retry_wait_s"] = round(self.api.retry_wait_s, 3)
            result.details["throttled_responses"] = self.api.throttled
            result.details["seconds"] = round(self.clock() - started, 3)
        result.log(log)
        return result

    def _dry_run(
        self,
        ctx: SinkContext,
        todo: SendPlan,
        templates: Mapping[str, Template],
        result: SinkResult,
        no_credentials: bool,
        today: dt.date,
    ) -> None:
        result.details["batches"] = write_dry_run(ctx, self.config, todo.due, templates, today)
        result.sent = len(todo.due)
        result.outbox = ctx.lake.uri(outbox_prefix(SINK, ctx.run_id))
        result.details["note"] = (
            (
                "dry run: no AWS credentials, nothing was sent"
                if not self.has_credentials()
                else "dry run: PEAK_EMAIL_SENDER is not set, nothing was sent"
            )
            if no_credentials
            else "dry run: nothing was sent"
        ) + ("; 'sent' counts the emails the outbox holds; the SES suppression list was not read")

    # -- sending --------------------------------------------------------------------------------

    def _send(
        self, todo: SendPlan, templates: Mapping[str, Template], run: _Run
    ) -> SendPacer | None:
        """Send every due target, batch by batch, journalled before and after each call;
        stop cleanly when SES stops taking them. The pacer, or None if nothing was sent."""
        result, ledger, run_id = run.result, run.ledger, run.run_id
        prepared = prepare(self.api, self.config, todo, templates, result, ledger)
        if prepared is None:
            return None
        due, quota = prepared
        remaining = quota.remaining
        result.details["quota"] = quota.details()
        pacer = SendPacer(quota.send_rate, self.clock, self.sleep, self.deadline)
        stats = result.details["campaigns"]
        pending = list(batches(due, self.config.batch_size, by_campaign))
        result.details["batches"] = len(pending)
        failed_in_a_row = 0
        seq = 0
        while pending:
            batch = pending.pop(0)
            if remaining <= 0:
                pending.insert(0, batch)
                stop(ledger, result, run_id, "daily_quota", DAILY_QUOTA, pending, seq)
                return pacer
            if len(batch) > remaining:  # send exactly up to the quota
                cut = int(remaining)
                pending.insert(0, batch[cut:])
                batch = batch[:cut]
            try:
                pacer.wait()
            except DeadlineExceeded as exc:  # nothing of the batch was recorded yet
                pending.insert(0, batch)
                why = f"stopped, {exc} (PEAK_EMAIL_DEADLINE_S)"
                stop(ledger, result, run_id, "deadline", why, pending, seq)
                return pacer
            campaign = batch[0].campaign
            template = templates[campaign.template]
            request = bulk_request(self.config, batch, template)
            seq += 1
            stamp = self.now().astimezone(dt.UTC).isoformat(timespec="seconds")
            batch_id = f"{run_id or ''}#{seq}"
            start = run.today.isoformat()
            ledger.record({t.key: {"p": start, "s": SENDING, "b": batch_id} for t in batch})
            failpoint("email.before_send")
            try:
                response = self.api.call(
                    "SendBulkEmail", self.sesv2().send_bulk_email, send=True, **request
                )
            except Stop as exc:
                # SES did not take the batch: back to due (failed, with why), then stop.
                ledger.record({t.key: failed_entry(start, stamp, str(exc)) for t in batch})
                pending.insert(0, batch)
                stop(ledger, result, run_id, exc.reason, str(exc), pending, seq - 1)
                return pacer
            except InDoubt as exc:
                # SES may have taken it: it stays "sending" (at most once), and the run stops.
                stop_in_doubt(ledger, result, run_id, exc, batch, batch_id, pending, seq)
                return pacer
            except SesError as exc:
                failed_in_a_row += 1
                ledger.record({t.key: failed_entry(start, stamp, str(exc)) for t in batch})
                result.fail_records(RecordError(t.user_id, str(exc)) for t in batch)
                result.status, result.error = "failed", str(exc)
                if exc.fatal or failed_in_a_row >= self.config.max_failed_batches:
                    result.fail_records(not_sent(pending, f"stopped after: {exc}"))
                    record = stop_record(run_id, result.sent, "failed", str(exc), pending, seq)
                    ledger.record(last_stop=record)
                    return pacer
                continue
            failpoint("email.after_send")
            failed_in_a_row = 0
            settled = settle(batch, response, start, stamp, batch_id)
            result.sent += settled.sent
            stats[campaign.name]["sent"] += settled.sent
            result.fail_records(settled.errors)
            ledger.record(settled.entries)
            remaining -= len(batch)
            pacer.sent(len(batch))
            if settled.daily_quota_hit:
                stop(ledger, result, run_id, "daily_quota", DAILY_QUOTA, pending, seq)
                return pacer
            if settled.account_problem:  # the account, sender, template or configuration set
                stop(ledger, result, run_id, "rejected", settled.account_problem, pending, seq)
                return pacer
        if ledger.last_stop:
            ledger.record(last_stop=None)
        return pacer


def deploy_templates(
    ctx: SinkContext | None = None,
    *,
    email_settings: EmailSettings | None = None,
    sesv2_client: Any = None,
) -> SinkResult:
    """``peak activate email --deploy-templates``: :meth:`EmailSink.deploy_templates`."""
    sink = EmailSink(email_settings=email_settings, sesv2_client=sesv2_client)
    return sink.deploy_templates(ctx)
