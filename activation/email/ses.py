"""SES as the email sink calls it: the SES API v2 client, and one call loop that counts, retries
and classifies every error.

Everything goes through SES v2: templates (``GetEmailTemplate``, ``CreateEmailTemplate``,
``UpdateEmailTemplate``), the account (``GetAccount``: the send quota, whether sending is
enabled), the suppression list (``ListSuppressedDestinations``) and the sends
(``SendBulkEmail``, the only bulk send that carries headers). v1 and v2 share the templates, the
quota and the suppression list of an account.

Every call goes through :meth:`Ses.call`: counted in the run's result, retried with exponential
backoff and jitter (:class:`activation.pacing.Retry`, ``max_attempts`` tries) when SES is
throttling us (``Throttling``, "Maximum sending rate exceeded"), unreachable, or (for reads)
failing on its side. "Daily message quota exceeded", or throttling after every retry, raises
:class:`~activation.email.errors.Stop`; a send whose answer may have been lost (a read timeout, a
5xx other than 503) raises :class:`~activation.email.errors.InDoubt` and is never retried, and
botocore's own retries are off (:func:`~activation.email.settings.client_config`) so nothing is
re-sent behind our back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from activation.base import SinkResult, normalise_email, short_text
from activation.email.errors import InDoubt, SesError, Stop
from activation.email.settings import client_config
from activation.pacing import DeadlineExceeded, Retry, retry_after_seconds
from peak.core.settings import EmailSettings

log = logging.getLogger(__name__)

#: Error codes SES (v1 and v2) and the AWS SDKs use for "slow down".
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "MaxSendingRateExceeded",
        "MaxSendingRateExceededException",
        "RequestLimitExceeded",
    }
)
#: Errors after which no other call can succeed: stop at once.
FATAL_CODES = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "NotFoundException",  # SendBulkEmail: the configuration set does not exist
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccountSendingPausedException",
        "ConfigurationSetDoesNotExist",
        "ConfigurationSetSendingPausedException",
        "MailFromDomainNotVerifiedException",
        "TemplateDoesNotExist",
    }
)


def error_parts(exc: Any) -> tuple[str, str, int | None]:
    """A botocore ``ClientError``'s code, message (one short line) and HTTP status."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(error.get("Code") or ""), short_text(error.get("Message") or str(exc)), status


def is_daily_quota(code: str, message: str) -> bool:
    text = message.lower()
    return code in ("DailyQuotaExceeded", "AccountDailyQuotaExceeded") or (
        "daily" in text and "quota" in text
    )


def same_template(have: Mapping[str, Any] | None, want: Mapping[str, Any]) -> bool:
    """Whether the template content SES holds (``have``, None if none) is the one to deploy
    (``want``: a ``CreateEmailTemplate`` request)."""
    if have is None:
        return False

    def norm(value: Any) -> str:
        return str(value or "").replace("\r\n", "\n").strip()

    content = want["TemplateContent"]
    return all(norm(have.get(k)) == norm(content.get(k)) for k in ("Subject", "Html", "Text"))


class Ses:
    """The sink's SES v2 client, built on first use unless given, and the calls made with it.

    Between :meth:`start` and :meth:`stop`, calls are counted in that run's result
    (``api_calls``, ``retried``), throttled answers in :attr:`throttled` and the time spent
    waiting to retry in :attr:`retry_wait_s`.
    """

    def __init__(
        self,
        config: EmailSettings,
        retry: Retry,
        *,
        sesv2_client: Any = None,
    ) -> None:
        self.config = config
        self.retry = retry
        self._sesv2 = sesv2_client
        self._injected = sesv2_client is not None
        self.result: SinkResult | None = None
        self.throttled = 0
        self._waited_before = 0.0

    def start(self, result: SinkResult) -> None:
        """Count the calls of a run in ``result`` from now on."""
        self.result = result
        self.throttled = 0
        self._waited_before = self.retry.waited_s
        if self.retry.deadline is not None:
            self.retry.deadline.start()

    def stop(self) -> None:
        """Stop counting (the counts of the run stay readable)."""
        self.result = None

    @property
    def retry_wait_s(self) -> float:
        """Seconds the current (or last) run waited to retry a call."""
        return self.retry.waited_s - self._waited_before

    # -- clients --------------------------------------------------------------------------------

    def has_credentials(self) -> bool:
        if self._injected:
            return True
        import boto3  # deferred: boto3

        try:
            return boto3.Session(region_name=self.config.region).get_credentials() is not None
        except Exception:  # a broken profile is no credentials
            return False

    def _client(self, service: str) -> Any:
        import boto3  # deferred: boto3

        session: Any = boto3.Session(region_name=self.config.region)
        return session.client(service, config=client_config(self.config))

    def sesv2(self) -> Any:
        if self._sesv2 is None:
            self._sesv2 = self._client("sesv2")
        return self._sesv2

    # -- calls ----------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., Any], *, send: bool = False, **kwargs: Any) -> Any:
        """One SES call: counted, and retried (backoff with jitter) when SES is throttling us,
        unreachable, or (for reads) failing on its side. A send is never retried after an
        answer that may have been lost (:class:`InDoubt`)."""
        from botocore.exceptions import (  # deferred: botocore
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            ParamValidationError,
            PartialCredentialsError,
        )

        result = self.result
        attempt = 0
        detail = ""
        retry_after: float | None = None
        while True:
            attempt += 1
            if self.retry.deadline is not None:
                try:
                    self.retry.deadline.check()
                except DeadlineExceeded as exc:
                    raise self._past_deadline(what, exc, attempt - 1, detail) from None
            if result is not None:
                result.api_calls += 1
                if attempt > 1:
                    result.retried += 1
            try:
                return fn(**kwargs)
            except ClientError as exc:
                code, message, status = error_parts(exc)
                detail = f"{code}: {message}" if code else message
                if status is not None:
                    detail = f"HTTP {status} {detail}"
                headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                retry_after = retry_after_seconds({"Retry-After": headers.get("retry-after", "")})
                if is_daily_quota(code, message):
                    raise Stop(
                        f"{what}: SES daily sending quota reached ({detail})",
                        reason="daily_quota",
                        code=code,
                    ) from None
                throttled = code in THROTTLE_CODES or status == 429
                server = status is not None and status >= 500
                if throttled:
                    self.throttled += 1
                elif server and send and status != 503:
                    raise InDoubt(f"{what}: SES answered {status} ({detail})", code=code) from None
                elif not server:
                    raise SesError(
                        f"{what}: {detail}", code=code, fatal=code in FATAL_CODES
                    ) from None
                if self.retry.exhausted(attempt):
                    reason = "throttled" if throttled else "unavailable"
                    raise Stop(
                        f"{what}: gave up after {attempt} attempts ({detail})",
                        reason=reason,
                        code=code,
                    ) from None
            except (
                ParamValidationError,
                NoRegionError,
                NoCredentialsError,
                PartialCredentialsError,
            ) as exc:  # raised before anything left the process
                raise SesError(f"{what}: {short_text(str(exc))}", fatal=True) from None
            except (EndpointConnectionError, ConnectTimeoutError) as exc:
                detail = f"cannot reach SES: {type(exc).__name__}"
                if self.retry.exhausted(attempt):
                    raise Stop(
                        f"{what}: {detail} after {attempt} attempts", reason="unreachable"
                    ) from None
            except BotoCoreError as exc:  # a read timeout, a dropped connection, …
                detail = f"{type(exc).__name__}: {short_text(str(exc))}"
                if send:
                    raise InDoubt(f"{what}: no answer from SES ({detail})") from None
                if self.retry.exhausted(attempt):
                    raise Stop(
                        f"{what}: {detail} after {attempt} attempts", reason="unreachable"
                    ) from None
            # Retry-After (a 429 or 503 may carry it) is a floor under the backoff.
            delay = self.retry.delay(attempt, retry_after)
            retry_after = None
            log.warning("email %s: %s, retry %d in %.2fs", what, detail, attempt, delay)
            try:
                self.retry.pause(delay)
            except DeadlineExceeded as exc:
                raise self._past_deadline(what, exc, attempt, detail) from None

    @staticmethod
    def _past_deadline(what: str, exc: DeadlineExceeded, attempts: int, detail: str) -> Stop:
        """The run stops at its deadline; the message names SES's last answer."""
        last = f"; last answer: {detail}" if detail else ""
        return Stop(
            f"{what}: stopped, {exc} (PEAK_EMAIL_DEADLINE_S) after {attempts} attempts{last}",
            reason="deadline",
        )

    def template(self, name: str) -> dict[str, str] | None:
        """The content SES holds under template ``name`` (None if there is none)."""
        try:
            response = self.call(
                "GetEmailTemplate", self.sesv2().get_email_template, TemplateName=name
            )
        except SesError as exc:
            if exc.code == "NotFoundException":
                return None
            raise
        return response.get("TemplateContent") or {}

    def put_template(self, want: Mapping[str, Any]) -> str:
        """Create or update one template (a ``CreateEmailTemplate`` request) unless SES holds it
        already: ``created``, ``updated`` or ``unchanged``."""
        have = self.template(want["TemplateName"])
        if have is None:
            self.call("CreateEmailTemplate", self.sesv2().create_email_template, **want)
            return "created"
        if not same_template(have, want):
            self.call("UpdateEmailTemplate", self.sesv2().update_email_template, **want)
            return "updated"
        return "unchanged"

    def account(self) -> dict[str, Any]:
        """``GetAccount``: the send quota and whether the account may send."""
        return dict(self.call("GetAccount", self.sesv2().get_account))

    def suppressed(self) -> dict[str, str]:
        """Every address on the SES v2 account-level suppression list (all pages), with its
        reason (``BOUNCE``, ``COMPLAINT``)."""
        found: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"PageSize": 1000}
            if token:
                kwargs["NextToken"] = token
            page = self.call(
                "ListSuppressedDestinations", self.sesv2().list_suppressed_destinations, **kwargs
            )
            for item in page.get("SuppressedDestinationSummaries") or []:
                found[normalise_email(item.get("EmailAddress"))] = str(item.get("Reason") or "")
            token = page.get("NextToken")
            if not token:
                return found
