"""Before the first send: whether the settings allow a real send, who is on the SES suppression
list, whether SES holds the repository's templates, and how much the send quota allows.

Any of them failing fails every due target with the reason (nothing is sent); a run whose
targets are all suppressed sends nothing and clears the ledger's ``last_stop``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from activation.base import RecordError, SinkResult, short_text
from activation.email.errors import SesError
from activation.email.ledger import Ledger
from activation.email.plan import SendPlan, Target
from activation.email.ses import Ses, same_template
from activation.email.templates import Template
from activation.unsubscribe.register import record_suppressed
from peak.core.settings import EmailSettings


def send_problem(config: EmailSettings) -> str | None:
    """Why a real send cannot start, or None."""
    if not config.sender:
        return "PEAK_EMAIL_SENDER is not set: SES needs a verified From address"
    if not config.endpoint_url and not config.unsubscribe_url.startswith("https://"):
        return (
            "PEAK_EMAIL_UNSUBSCRIBE_URL must be an https:// URL for real sends (mail clients "
            "make a one-click unsubscribe only to https); emulators (AWS_ENDPOINT_URL) allow "
            "any"
        )
    if config.dev_secret and not config.endpoint_url:
        return (
            "PEAK_EMAIL_UNSUBSCRIBE_SECRET is not set: real sends need it (the development "
            "default is public, so anyone could forge unsubscribe links); dry runs and "
            "emulators (AWS_ENDPOINT_URL) use the default"
        )
    return None


@dataclass(frozen=True)
class SendQuota:
    """What the account's ``SendQuota`` (``GetAccount``) allows this run: the send rate (capped
    by ``PEAK_EMAIL_MAX_SEND_RATE``) and the messages left in the last 24 hours."""

    max_24h: float
    sent_last_24h: float
    max_send_rate: float
    send_rate: float

    @classmethod
    def of(cls, quota: Mapping[str, Any], max_send_rate: float | None) -> SendQuota:
        account_rate = float(quota.get("MaxSendRate") or 1.0)
        return cls(
            max_24h=float(quota.get("Max24HourSend", -1)),
            sent_last_24h=float(quota.get("SentLast24Hours") or 0),
            max_send_rate=account_rate,
            send_rate=min(account_rate, max_send_rate or account_rate),
        )

    @property
    def remaining(self) -> float:
        """Messages SES takes before the daily quota is used up (``inf``: unlimited)."""
        if self.max_24h < 0:
            return math.inf
        return max(0, math.floor(self.max_24h - self.sent_last_24h))

    def details(self) -> dict[str, Any]:
        remaining = self.remaining
        return {
            "max_24h": self.max_24h,
            "sent_last_24h": self.sent_last_24h,
            "remaining": None if math.isinf(remaining) else remaining,
            "max_send_rate": self.max_send_rate,
            "send_rate": self.send_rate,
        }


def prepare(
    api: Ses,
    config: EmailSettings,
    todo: SendPlan,
    templates: Mapping[str, Template],
    result: SinkResult,
    ledger: Ledger,
) -> tuple[list[Target], SendQuota] | None:
    """The targets still due once the suppression list is applied, and the send quota; or None
    when there is nothing to send or the run cannot send (every due target failed with why)."""
    due = todo.due

    def give_up(message: str, targets: Iterable[Target]) -> None:
        result.status, result.error = "failed", message
        result.fail_records(RecordError(t.user_id, f"not sent: {message}") for t in targets)

    problem = send_problem(config)
    if problem:
        give_up(problem, due)
        return None
    if not due:
        if ledger.last_stop:
            ledger.record(last_stop=None)
        return None
    from botocore.exceptions import BotoCoreError  # deferred: botocore

    try:
        api.sesv2()
        if config.check_suppression:
            suppressed = api.suppressed()
            # The audience's suppressed addresses, for the HubSpot sink's marketing lists.
            ours = {a: why for a, why in suppressed.items() if a in todo.addresses}
            record_suppressed(ledger.lake, ours)
            kept = [t for t in due if t.email not in suppressed]
            if len(kept) < len(due):
                todo.skipped["suppressed"] += len(due) - len(kept)
            due = kept
            result.details["suppression_list"] = len(suppressed)
        else:
            result.details["suppression_list"] = "not checked (PEAK_EMAIL_CHECK_SUPPRESSION)"
        if not due:
            if ledger.last_stop:
                ledger.record(last_stop=None)
            return None
        for name in sorted({t.campaign.template for t in due}):
            want = templates[name].ses_template(config.template_prefix)
            if not same_template(api.template(want["TemplateName"]), want):
                raise SesError(
                    f"template {want['TemplateName']} in SES is missing or differs from "
                    f"activation/templates/{name}: run `peak activate email "
                    "--deploy-templates` first"
                )
        account = api.account()
        if account.get("SendingEnabled") is False:
            raise SesError("SES sending is paused for the account (GetAccount: SendingEnabled)")
        quota = account.get("SendQuota") or {}
    except SesError as exc:
        give_up(str(exc), due)
        return None
    except BotoCoreError as exc:  # no region, a bad profile, …: the clients cannot be built
        give_up(f"cannot use SES: {short_text(str(exc))}", due)
        return None
    return due, SendQuota.of(quota, config.max_send_rate)
