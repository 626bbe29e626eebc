"""HubSpot as the sink calls it: hubspot-api-client's API objects, and one call loop that paces,
retries, counts and explains every call.

Every API call goes through :meth:`HubSpotClient.call`, which paces calls under the private
app's limit (``PEAK_HUBSPOT_RATE_LIMIT`` calls per rolling 10 s;
:class:`activation.pacing.RateLimiter`), retries 429 (after ``Retry-After``), 5xx and network
errors with exponential backoff and jitter (:class:`activation.pacing.Retry`, at most
``max_attempts`` tries), and counts calls and repeats; a 429 for the daily limit stops the run
instead. ``Retry-After`` is honoured on every call, reads included: urllib3 never retries an
answer itself (it would swallow a 429 or 503 into a ``MaxRetryError``), so the loop sees the
real status. The run's overall deadline (``PEAK_HUBSPOT_DEADLINE_S``) bounds every call's
timeout and every wait; past it the run stops with the last answer's status. The access token
is scrubbed from every message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.util.retry import Retry as ConnectionRetry

from activation.base import SinkError, SinkResult
from activation.hubspot.errors import HubSpotError, error_text
from activation.pacing import DeadlineExceeded, RateLimiter, Retry, retry_after_seconds
from peak.core.settings import HubSpotSettings

log = logging.getLogger(__name__)


@dataclass
class Response:
    status: int
    body: Any


def _api_exception_types() -> tuple[type[BaseException], ...]:
    """The exceptions of the three hubspot-api-client packages the sink calls."""
    from hubspot.crm import contacts, lists, properties  # deferred: hubspot-api-client

    return (contacts.ApiException, lists.ApiException, properties.ApiException)


def _parse_json(data: bytes | str | None) -> Any:
    if not data:
        return {}
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {"message": (data.decode("utf-8", "replace") if isinstance(data, bytes) else data)}


class HubSpotClient:
    """The sink's HubSpot API objects (built on first use, all pointed at
    ``config.base_url``) and the calls made with them.

    Between :meth:`start` and :meth:`stop`, calls are counted in that run's result
    (``api_calls``, ``retried``), 429 answers in :attr:`rate_limited`, and the time spent
    waiting in :attr:`throttle_wait_s` (the rate limit) and :attr:`retry_wait_s` (retries).
    """

    def __init__(self, config: HubSpotSettings, limiter: RateLimiter, retry: Retry) -> None:
        self.config = config
        self.limiter = limiter
        self.retry = retry
        self._api_errors = _api_exception_types()
        self._apis: dict[str, Any] | None = None
        self.result: SinkResult | None = None
        self.rate_limited = 0
        self._throttled_before = 0.0
        self._retried_before = 0.0

    def start(self, result: SinkResult) -> None:
        """Count the calls of a run in ``result`` from now on."""
        self.result = result
        self.rate_limited = 0
        self._throttled_before = self.limiter.waited_s
        self._retried_before = self.retry.waited_s
        if self.retry.deadline is not None:
            self.retry.deadline.start()

    def stop(self) -> None:
        """Stop counting and close the connections (the counts of the run stay readable)."""
        self.result = None
        self.close()

    @property
    def throttle_wait_s(self) -> float:
        return self.limiter.waited_s - self._throttled_before

    @property
    def retry_wait_s(self) -> float:
        return self.retry.waited_s - self._retried_before

    def apis(self) -> dict[str, Any]:
        """The API objects, built once: every one points at ``config.base_url``."""
        if self._apis is None:
            from hubspot import HubSpot  # deferred: hubspot-api-client

            client = HubSpot(
                access_token=self.config.token,
                host=self.config.base_url,
                # Our loop retries what reached HubSpot; urllib3 only re-opens refused connections,
                # and never retries an answer (by default it retries a 429/503 with Retry-After
                # on a GET, and with status=0 raises MaxRetryError: the status was lost).
                retry=ConnectionRetry(
                    total=2,
                    connect=2,
                    read=0,
                    status=0,
                    redirect=0,
                    other=0,
                    respect_retry_after_header=False,
                    raise_on_status=False,
                ),
            )
            self._apis = {
                "batch": client.crm.contacts.batch_api,
                "search": client.crm.contacts.search_api,
                "properties": client.crm.properties.core_api,
                "groups": client.crm.properties.groups_api,
                "lists": client.crm.lists.lists_api,
            }
            for api in self._apis.values():  # the override must reach every API
                if api.api_client.configuration.host != self.config.base_url:
                    raise SinkError(f"{type(api).__name__} ignores HUBSPOT_BASE_URL")
        return self._apis

    def close(self) -> None:
        for api in (self._apis or {}).values():
            api.api_client.close()
            api.api_client.rest_client.pool_manager.clear()
        self._apis = None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
        """One API call: paced, retried on 429/5xx/network errors, counted; raw JSON back.

        Responses are read raw (``_preload_content=False``) so the status (200 or 207) and the
        body come back as HubSpot sent them; the generated models add nothing here and cannot
        build list filter branches. Raises :class:`HubSpotError` when the call fails for good.
        """
        result = self.result
        owner = getattr(fn, "__self__", None)  # a bound method of one of the generated APIs
        what = f"{type(owner).__module__.split('.')[2]}.{fn.__name__}" if owner else fn.__name__
        deadline = self.retry.deadline
        status: int | None = None
        detail = "not called"
        attempt = 0
        while True:
            attempt += 1
            try:
                if deadline is not None:
                    deadline.check()
                self.limiter.acquire()
            except DeadlineExceeded as exc:
                raise self._past_deadline(what, exc, attempt - 1, status, detail) from None
            timeout = (self.config.connect_timeout_s, self.config.read_timeout_s)
            if deadline is not None:
                timeout = (deadline.timeout(timeout[0]), deadline.timeout(timeout[1]))
            if result is not None:
                result.api_calls += 1
                if attempt > 1:
                    result.retried += 1
            headers: Mapping[str, str] | None = None
            body: Any = None
            reason = ""
            try:
                raw = fn(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
                try:
                    return Response(raw.status, _parse_json(raw.data))
                finally:
                    raw.release_conn()
            except self._api_errors as exc:
                status = getattr(exc, "status", None) or None
                headers = getattr(exc, "headers", None)
                body = _parse_json(getattr(exc, "body", None))
                detail = error_text(body)
                reason = error_text(body, correlation=False)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                status, detail = None, f"network error: {type(exc).__name__}"
            finally:
                self.limiter.release()

            detail = self.scrub(detail)
            if status == 429 and "DAILY" in str((body or {}).get("policyName", "")).upper():
                raise HubSpotError(
                    f"{what}: HubSpot's daily API limit is used up (HTTP 429: {detail})",
                    status=status,
                    fatal=True,
                )
            if status in (401, 403):
                hint = (
                    "HubSpot rejected the access token (HTTP 401): check HUBSPOT_ACCESS_TOKEN"
                    if status == 401
                    else "the access token lacks a scope (HTTP 403): the private app needs "
                    "crm.objects.contacts.write, crm.schemas.contacts.write and crm.lists.write"
                )
                raise HubSpotError(f"{what}: {hint}", status=status, fatal=True)
            transient = status is None or status == 429 or status >= 500
            if not transient:
                raise HubSpotError(
                    f"{what}: HTTP {status}: {detail}",
                    status=status,
                    category=str(body.get("category") or "") if isinstance(body, Mapping) else "",
                    reason=self.scrub(reason),
                )
            if status == 429:
                self.rate_limited += 1
            if self.retry.exhausted(attempt):
                code = f"HTTP {status}" if status else "no response"
                raise HubSpotError(
                    f"{what}: gave up after {attempt} attempts ({code}: {detail})",
                    status=status,
                    transient=True,
                )
            # Retry-After (429s, some 503s) is a floor; the backoff adds to a server's bad day.
            delay = self.retry.delay(attempt, retry_after_seconds(headers))
            log.warning(
                "hubspot %s: %s, retry %d in %.2fs", what, status or "network error", attempt, delay
            )
            try:
                self.retry.pause(delay)
            except DeadlineExceeded as exc:
                raise self._past_deadline(what, exc, attempt, status, detail) from None

    def _past_deadline(
        self, what: str, exc: DeadlineExceeded, attempts: int, status: int | None, detail: str
    ) -> HubSpotError:
        """The run stops at its deadline; the message names the last answer's real status."""
        last = f"; last answer HTTP {status}: {detail}" if status else ""
        if attempts and not status:
            last = f"; last answer: {detail}"
        return HubSpotError(
            f"{what}: stopped, {exc} (PEAK_HUBSPOT_DEADLINE_S) after {attempts} attempts{last}",
            status=status,
            transient=True,
            fatal=True,
        )

    def account_details(self) -> Response:
        """``GET /account-info/v3/details`` (the portal's id and UI domain). hubspot-api-client
        has no account-info API: the call goes through a generated API's client, paced and
        retried like any other."""
        api_client = self.apis()["batch"].api_client

        def account_info_details(**kwargs: Any) -> Any:
            return api_client.call_api(
                "/account-info/v3/details",
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["oauth2"],
                _return_http_data_only=True,
                **kwargs,
            )

        return self.call(account_info_details)

    def create(self, fn: Callable[..., Any], *args: Any) -> None:
        """A create call that may find its object there already (409: created meanwhile)."""
        try:
            self.call(fn, *args)
        except HubSpotError as exc:
            if exc.status != 409:  # 409: it exists already (created meanwhile): fine
                raise

    def scrub(self, text: str) -> str:
        token = self.config.token
        return text.replace(token, "[redacted]") if token else text
