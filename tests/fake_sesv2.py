"""A faithful fake of the Amazon SES API v2 endpoints the e-mail sink uses, over real HTTP.

moto implements SES v1 and a little of v2, but not ``SendBulkEmail``: the only bulk send that
carries headers (``List-Unsubscribe``). :class:`FakeSesV2` runs a ``ThreadingHTTPServer`` on
127.0.0.1 in a thread that the real boto3 ``sesv2`` client talks to (``endpoint_url`` =
:attr:`FakeSesV2.base_url`), speaking SES v2's REST-JSON protocol:

- ``POST /v2/email/outbound-bulk-emails`` (SendBulkEmail): 1 to 50 entries and at most 50
  recipients a call; a verified ``FromEmailAddress`` (an address or its domain; else
  ``MessageRejected``); the template, the configuration set, the data of each entry (per-entry
  ``BulkEmailEntryResults``: ``SUCCESS`` with a message id, ``TEMPLATE_NOT_FOUND``,
  ``CONFIGURATION_SET_NOT_FOUND``, ``INVALID_PARAMETER``, ``MESSAGE_REJECTED`` in the sandbox for
  an unverified recipient, ``ACCOUNT_DAILY_QUOTA_EXCEEDED`` past the quota); headers as SES
  takes them (at most 15 a list, names of printable ASCII but ``:`` up to 126 characters, values
  of printable ASCII up to 870, none SES sets itself), the template's ``Headers`` merged with each
  entry's ``ReplacementHeaders`` (the entry's win); the account's sending rate
  (``TooManyRequestsException`` "Maximum sending rate exceeded." when a call comes before the
  last one's recipients were allowed for) and daily quota (``LimitExceededException`` "Daily
  message quota exceeded." when none is left). Each accepted message is rendered (the template's
  ``{{x}}``, ``{{{x}}}`` and ``{{#if}}…{{else}}…{{/if}}``; SES escapes no HTML) and kept in
  :attr:`FakeSesV2.messages`; one to a suppressed address is accepted and not delivered, as SES
  does; one whose data lacks a field is a rendering failure (accepted, not delivered);
- templates: ``POST /v2/email/templates`` (``AlreadyExistsException``), ``GET|PUT|DELETE
  /v2/email/templates/{name}`` (``NotFoundException``);
- ``GET /v2/email/account`` (GetAccount: ``SendQuota``, ``SendingEnabled``, …);
- the account suppression list: ``GET|PUT /v2/email/suppression/addresses`` (pages of
  ``PageSize`` up to 1,000, an opaque ``NextToken``, ``InvalidNextTokenException``);
- identities and configuration sets: ``POST /v2/email/identities``, ``GET
  /v2/email/identities/{identity}``, ``POST /v2/email/configuration-sets``.

Like SES it checks every request's Signature Version 4 (service ``ses``, the fake's region and
keys; ``UnrecognizedClientException``, ``SignatureDoesNotMatch``, ``InvalidSignatureException``
for a stale date), throttles the calls other than sends at ``api_rate`` a second when set
(``TooManyRequestsException``), and answers errors the REST-JSON way (the status, an
``x-amzn-ErrorType`` header, ``{"message": …}``). Time is :attr:`clock` (tests pass the sink's
fake clock, so pacing is checked without waiting). Tests inject faults (:meth:`fail_next`: an
error answer, or a send SES takes and whose answer is lost), reject single recipients
(:meth:`reject`), and read :attr:`requests`, :attr:`messages` and :attr:`templates`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest

REGION = "eu-west-1"
ACCESS_KEY = "AKIAFAKESESV2TESTING"
SECRET_KEY = "fake-sesv2-secret-key"
#: SES's limits.
MAX_RECIPIENTS = 50  # per call, To + Cc + Bcc of every entry
MAX_HEADERS = 15
HEADER_NAME = re.compile(r"^[!-9;-~]{1,126}$")
HEADER_VALUE = re.compile(r"^[ -~]{1,870}$")
#: Headers SES writes itself: a request may not set them.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Reply-To",
        "Return-Path",
        "Sender",
        "Message-ID",
        "Date",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "DKIM-Signature",
    )
)
MAX_TEMPLATES = 10_000
MAX_TEMPLATE_BYTES = 500 * 1024
SUPPRESSION_REASONS = ("BOUNCE", "COMPLAINT")
_ADDRESS = re.compile(r"^[^@\s<>]+@([^@\s<>]+\.[^@\s<>]+)$")


@dataclass(frozen=True)
class Fault:
    status: int  # 0: take the request, then drop the connection without an answer
    code: str = "InternalFailure"
    message: str = "An internal error occurred."
    operation: str | None = None  # only this operation (SendBulkEmail, GetAccount, …)
    retry_after: float | None = None
    spare: bool = False  # let this matching request through (fail_next's ``after``)


@dataclass
class LoggedRequest:
    operation: str
    method: str
    path: str
    query: str
    status: int
    body: Any
    t: float


@dataclass
class Message:
    """One message SES accepted."""

    message_id: str
    sender: str
    to: list[str]
    template: str
    data: dict[str, Any]
    headers: list[tuple[str, str]]
    tags: dict[str, str]
    configuration_set: str | None
    subject: str = ""
    html: str = ""
    text: str = ""
    delivered: bool = True
    why_not: str = ""  # suppressed, or the rendering failure

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None


class SesReply(Exception):
    """Raised inside a handler to answer with an SES error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = {}


class _Drop(Exception):
    pass


@dataclass
class _Route:
    operation: str
    method: str
    pattern: re.Pattern[str]


_ROUTES = [
    _Route("SendBulkEmail", "POST", re.compile(r"^/v2/email/outbound-bulk-emails$")),
    _Route("CreateEmailTemplate", "POST", re.compile(r"^/v2/email/templates$")),
    _Route("GetEmailTemplate", "GET", re.compile(r"^/v2/email/templates/(?P<name>[^/]+)$")),
    _Route("UpdateEmailTemplate", "PUT", re.compile(r"^/v2/email/templates/(?P<name>[^/]+)$")),
    _Route("DeleteEmailTemplate", "DELETE", re.compile(r"^/v2/email/templates/(?P<name>[^/]+)$")),
    _Route("GetAccount", "GET", re.compile(r"^/v2/email/account$")),
    _Route("ListSuppressedDestinations", "GET", re.compile(r"^/v2/email/suppression/addresses$")),
    _Route("PutSuppressedDestination", "PUT", re.compile(r"^/v2/email/suppression/addresses$")),
    _Route("CreateEmailIdentity", "POST", re.compile(r"^/v2/email/identities$")),
    _Route("GetEmailIdentity", "GET", re.compile(r"^/v2/email/identities/(?P<name>[^/]+)$")),
    _Route("CreateConfigurationSet", "POST", re.compile(r"^/v2/email/configuration-sets$")),
]


class FakeSesV2:
    def __init__(
        self,
        *,
        region: str = REGION,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        max_send_rate: float = 14.0,
        max_24h: float = 50_000.0,
        sandbox: bool = False,
        verified: tuple[str, ...] = (),
        api_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.max_send_rate = max_send_rate
        self.max_24h = max_24h  # -1: unlimited
        self.sent_last_24h = 0.0
        self.sandbox = sandbox
        self.sending_enabled = True
        self.api_rate = api_rate
        self.clock = clock
        self.lock = threading.RLock()
        self.templates: dict[str, dict[str, str]] = {}
        self.identities: dict[str, bool] = {v: True for v in verified}  # identity -> verified
        self.configuration_sets: set[str] = set()
        self.suppressed: dict[str, dict[str, Any]] = {}
        self.messages: list[Message] = []
        self.requests: list[LoggedRequest] = []
        self.rejects: dict[str, tuple[str, str]] = {}  # address -> (status, error)
        self.throttled = 0  # calls refused for the sending rate
        self._faults: list[Fault] = []
        self._free_at = float("-inf")  # when the sending rate allows the next call
        self._api_at = float("-inf")  # when the API rate allows the next non-send call
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeSesV2:
        fake = self

        class Handler(_Handler):
            ses = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSesV2:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def client(self, **config: Any) -> Any:
        """A real boto3 ``sesv2`` client pointed at the fake, with its keys."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "sesv2",
            endpoint_url=self.base_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(**{"retries": {"total_max_attempts": 1}, **config}),
        )

    # -- test controls --------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        code: str = "InternalFailure",
        message: str = "An internal error occurred.",
        operation: str | None = None,
        retry_after: float | None = None,
        after: int = 0,
    ) -> None:
        """Answer ``n`` requests (of ``operation``, if given) with an error, once ``after`` such
        requests have been served normally; status ``0`` takes the request (a send is sent)
        and drops the connection without an answer."""
        fault = Fault(status, code, message, operation, retry_after)
        with self.lock:
            self._faults.extend([Fault(0, operation=operation, spare=True)] * after)
            self._faults.extend([fault] * n)

    def reject(self, address: str, status: str = "MESSAGE_REJECTED", error: str = "") -> None:
        """Refuse one recipient in every bulk send (a per-entry status)."""
        self.rejects[address.lower()] = (status, error)

    def verify(self, identity: str) -> None:
        self.identities[identity.lower()] = True

    def suppress(self, address: str, reason: str = "BOUNCE") -> None:
        self.suppressed[address.lower()] = {
            "EmailAddress": address.lower(),
            "Reason": reason,
            "LastUpdateTime": time.time(),
        }

    def calls(self, operation: str, ok: bool = True) -> list[LoggedRequest]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.operation == operation and (not ok or 200 <= r.status < 300)
            ]

    def delivered(self) -> list[Message]:
        return [m for m in self.messages if m.delivered]

    # -- request handling -----------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Any, raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(target)
        path = parts.path
        operation, match = "?", None
        for route in _ROUTES:
            found = route.pattern.match(path)
            if found and route.method == method:
                operation, match = route.operation, found
                break
        status: int
        out: Any
        extra: dict[str, str] = {}
        body: Any = None
        try:
            self._check_signature(method, path, parts.query, headers, raw)
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise SesReply(400, "BadRequestException", "Invalid JSON body") from None
            if match is None:
                raise SesReply(404, "NotFoundException", f"No such operation: {method} {path}")
            with self.lock:
                fault = self._take_fault(operation)
                if fault is not None and fault.status != 0:
                    reply = SesReply(fault.status, fault.code, fault.message)
                    if fault.retry_after is not None:
                        reply.headers["Retry-After"] = f"{fault.retry_after:g}"
                    raise reply
                if operation != "SendBulkEmail":
                    self._api_rate_check()
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                status, out = getattr(self, "_" + _snake(operation))(body or {}, params, query)
                if fault is not None:  # taken, and the answer lost
                    raise _Drop
        except SesReply as reply:
            status, out, extra = (
                reply.status,
                {"message": reply.message},
                {"x-amzn-ErrorType": reply.code, **reply.headers},
            )
        except _Drop:
            status, out = 0, _Drop
        with self.lock:
            self.requests.append(
                LoggedRequest(operation, method, path, parts.query, status, body, self.clock())
            )
        return status, extra, out

    def _take_fault(self, operation: str) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.operation is None or fault.operation == operation:
                del self._faults[i]
                return None if fault.spare else fault
        return None

    def _api_rate_check(self) -> None:
        if not self.api_rate:
            return
        now = self.clock()
        if now < self._api_at:
            raise SesReply(429, "TooManyRequestsException", "Too Many Requests")
        self._api_at = now + 1.0 / self.api_rate

    def _check_signature(
        self, method: str, path: str, query: str, headers: Any, raw: bytes
    ) -> None:
        """Signature Version 4, as AWS checks it (service ``ses``)."""
        auth = headers.get("Authorization") or ""
        found = re.match(
            r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$",
            auth,
        )
        if not found:
            raise SesReply(403, "MissingAuthenticationTokenException", "Missing Authentication")
        key, day, region, service, signed, signature = found.groups()
        if key != self.access_key:
            raise SesReply(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        stamp = headers.get("X-Amz-Date") or ""
        try:
            when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            raise SesReply(403, "IncompleteSignatureException", "No X-Amz-Date") from None
        if abs((dt.datetime.now(dt.UTC) - when).total_seconds()) > 300:
            raise SesReply(403, "InvalidSignatureException", "Signature expired")
        if region != self.region or service != "ses" or day != stamp[:8]:
            raise SesReply(403, "InvalidSignatureException", "Credential should be scoped")
        names = signed.split(";")
        canonical_headers = "".join(
            f"{n}:{' '.join(str(headers.get(n) or '').split())}\n" for n in names
        )
        pairs = sorted(
            (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
            for k, v in parse_qsl(query, keep_blank_values=True)
        )
        payload = headers.get("X-Amz-Content-SHA256") or hashlib.sha256(raw).hexdigest()
        canonical = "\n".join(
            [
                method,
                quote(path, safe="/~"),
                "&".join(f"{k}={v}" for k, v in pairs),
                canonical_headers,
                signed,
                payload,
            ]
        )
        scope = f"{day}/{region}/{service}/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signing = f"AWS4{self.secret_key}".encode()
        for part in (day, region, service, "aws4_request"):
            signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
        want = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, signature):
            raise SesReply(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )

    # -- templates ------------------------------------------------------------------------------

    @staticmethod
    def _content(body: dict[str, Any]) -> dict[str, str]:
        content = body.get("TemplateContent")
        if not isinstance(content, dict) or not content.get("Subject"):
            raise SesReply(400, "BadRequestException", "TemplateContent needs a Subject")
        if not (content.get("Html") or content.get("Text")):
            raise SesReply(400, "BadRequestException", "TemplateContent needs Html or Text")
        kept = {k: str(content[k]) for k in ("Subject", "Html", "Text") if content.get(k)}
        if len(json.dumps(kept).encode()) > MAX_TEMPLATE_BYTES:
            raise SesReply(400, "BadRequestException", "The template is larger than 500 KB")
        return kept

    def _create_email_template(self, body: dict[str, Any], params: Any, query: Any):
        name = str(body.get("TemplateName") or "")
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", name):
            raise SesReply(400, "BadRequestException", f"Invalid template name {name!r}")
        if name in self.templates:
            raise SesReply(400, "AlreadyExistsException", f"Template {name} already exists.")
        if len(self.templates) >= MAX_TEMPLATES:
            raise SesReply(400, "LimitExceededException", "Maximum number of templates reached")
        self.templates[name] = self._content(body)
        return 200, {}

    def _template(self, name: str) -> dict[str, str]:
        if name not in self.templates:
            raise SesReply(404, "NotFoundException", f"Template {name} does not exist.")
        return self.templates[name]

    def _get_email_template(self, body: Any, params: dict[str, str], query: Any):
        return 200, {
            "TemplateName": params["name"],
            "TemplateContent": dict(self._template(params["name"])),
        }

    def _update_email_template(self, body: dict[str, Any], params: dict[str, str], query: Any):
        self._template(params["name"])
        self.templates[params["name"]] = self._content(body)
        return 200, {}

    def _delete_email_template(self, body: Any, params: dict[str, str], query: Any):
        self._template(params["name"])
        del self.templates[params["name"]]
        return 200, {}

    # -- account, identities, configuration sets, suppression ------------------------------------

    def _get_account(self, body: Any, params: Any, query: Any):
        return 200, {
            "SendQuota": {
                "Max24HourSend": self.max_24h,
                "MaxSendRate": self.max_send_rate,
                "SentLast24Hours": self.sent_last_24h,
            },
            "SendingEnabled": self.sending_enabled,
            "ProductionAccessEnabled": not self.sandbox,
            "EnforcementStatus": "HEALTHY",
            "DedicatedIpAutoWarmupEnabled": False,
        }

    def _create_email_identity(self, body: dict[str, Any], params: Any, query: Any):
        identity = str(body.get("EmailIdentity") or "").lower()
        if not identity:
            raise SesReply(400, "BadRequestException", "EmailIdentity is required")
        if identity in self.identities:
            raise SesReply(400, "AlreadyExistsException", f"{identity} already exists.")
        self.identities[identity] = False  # verified by a click (a test calls verify())
        kind = "EMAIL_ADDRESS" if "@" in identity else "DOMAIN"
        return 200, {"IdentityType": kind, "VerifiedForSendingStatus": False}

    def _get_email_identity(self, body: Any, params: dict[str, str], query: Any):
        identity = params["name"].lower()
        if identity not in self.identities:
            raise SesReply(404, "NotFoundException", f"Identity {identity} does not exist.")
        kind = "EMAIL_ADDRESS" if "@" in identity else "DOMAIN"
        return 200, {"IdentityType": kind, "VerifiedForSendingStatus": self.identities[identity]}

    def _create_configuration_set(self, body: dict[str, Any], params: Any, query: Any):
        name = str(body.get("ConfigurationSetName") or "")
        if name in self.configuration_sets:
            raise SesReply(400, "AlreadyExistsException", f"{name} already exists.")
        self.configuration_sets.add(name)
        return 200, {}

    def _put_suppressed_destination(self, body: dict[str, Any], params: Any, query: Any):
        if body.get("Reason") not in SUPPRESSION_REASONS:
            raise SesReply(400, "BadRequestException", "Reason must be BOUNCE or COMPLAINT")
        self.suppress(str(body.get("EmailAddress") or ""), body["Reason"])
        return 200, {}

    def _list_suppressed_destinations(self, body: Any, params: Any, query: dict[str, str]):
        size = int(query.get("PageSize") or 100)
        if not 1 <= size <= 1000:
            raise SesReply(400, "BadRequestException", "PageSize must be between 1 and 1000")
        ordered = sorted(self.suppressed)
        start = 0
        if query.get("NextToken"):
            try:
                start = int(json.loads(bytes.fromhex(query["NextToken"]))["offset"])
            except (ValueError, KeyError, TypeError):
                raise SesReply(400, "InvalidNextTokenException", "Invalid NextToken") from None
        page = ordered[start : start + size]
        out: dict[str, Any] = {"SuppressedDestinationSummaries": [self.suppressed[a] for a in page]}
        if start + size < len(ordered):
            out["NextToken"] = json.dumps({"offset": start + size}).encode().hex()
        return 200, out

    # -- sending --------------------------------------------------------------------------------

    def _verified_sender(self, sender: str) -> bool:
        address = _bare_address(sender)
        found = _ADDRESS.match(address)
        return bool(found) and (
            self.identities.get(address, False) or self.identities.get(found.group(1), False)
        )

    @staticmethod
    def _headers(items: Any, where: str) -> list[tuple[str, str]]:
        if items is None:
            return []
        if not isinstance(items, list) or len(items) > MAX_HEADERS:
            raise SesReply(400, "BadRequestException", f"{where}: at most {MAX_HEADERS} headers")
        out = []
        for item in items:
            name, value = str(item.get("Name") or ""), str(item.get("Value") or "")
            if not HEADER_NAME.match(name) or not HEADER_VALUE.match(value):
                raise SesReply(400, "BadRequestException", f"{where}: invalid header {name!r}")
            if name.lower() in RESERVED_HEADERS:
                raise SesReply(400, "BadRequestException", f"{where}: SES sets {name} itself")
            out.append((name, value))
        names = [n.lower() for n, _ in out]
        if len(set(names)) != len(names):
            raise SesReply(400, "BadRequestException", f"{where}: a header appears twice")
        return out

    def _send_bulk_email(self, body: dict[str, Any], params: Any, query: Any):
        sender = str(body.get("FromEmailAddress") or "")
        template = ((body.get("DefaultContent") or {}).get("Template")) or {}
        entries = body.get("BulkEmailEntries")
        if not sender:
            raise SesReply(400, "BadRequestException", "FromEmailAddress is required")
        if not template.get("TemplateName"):
            raise SesReply(400, "BadRequestException", "DefaultContent needs a TemplateName")
        if not isinstance(entries, list) or not entries:
            raise SesReply(400, "BadRequestException", "BulkEmailEntries is required")
        recipients = sum(
            len(d.get(k) or [])
            for e in entries
            for d in [e.get("Destination") or {}]
            for k in ("ToAddresses", "CcAddresses", "BccAddresses")
        )
        if len(entries) > MAX_RECIPIENTS or recipients > MAX_RECIPIENTS:
            raise SesReply(
                400,
                "BadRequestException",
                f"Recipient count exceeds {MAX_RECIPIENTS}: {recipients}",
            )
        if not self.sending_enabled:
            raise SesReply(400, "SendingPausedException", "Sending is paused for this account.")
        if not self._verified_sender(sender):
            raise SesReply(
                400,
                "MessageRejected",
                "Email address is not verified. The following identities failed the check in "
                f"region {self.region.upper()}: {_bare_address(sender)}",
            )
        default_headers = self._headers(template.get("Headers"), "Template.Headers")
        try:
            default_data = json.loads(template.get("TemplateData") or "{}")
        except ValueError:
            raise SesReply(400, "BadRequestException", "Invalid TemplateData") from None
        now = self.clock()
        if now < self._free_at:
            self.throttled += 1
            raise SesReply(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        left = float("inf") if self.max_24h < 0 else self.max_24h - self.sent_last_24h
        if left <= 0:
            raise SesReply(400, "LimitExceededException", "Daily message quota exceeded.")
        config_set = body.get("ConfigurationSetName")
        tags = {t["Name"]: t["Value"] for t in body.get("DefaultEmailTags") or []}
        results: list[dict[str, Any]] = []
        counted = 0
        for entry in entries:
            headers = self._merge(default_headers, entry.get("ReplacementHeaders"))
            to = list((entry.get("Destination") or {}).get("ToAddresses") or [])
            replacement = (
                (entry.get("ReplacementEmailContent") or {}).get("ReplacementTemplate") or {}
            ).get("ReplacementTemplateData")
            status, error = self._entry_problem(template["TemplateName"], config_set, to)
            data: dict[str, Any] = {}
            if status is None:
                try:
                    data = {**default_data, **json.loads(replacement or "{}")}
                except ValueError:
                    status, error = "INVALID_PARAMETER", "Invalid ReplacementTemplateData"
            if status is None and counted + len(to) > left:
                status, error = "ACCOUNT_DAILY_QUOTA_EXCEEDED", "Daily message quota exceeded."
            if status is not None:
                results.append({"Status": status, "Error": error})
                continue
            counted += len(to)
            message = Message(
                message_id=f"0102{next(self._ids):016x}-{uuid.uuid4()}-000000",
                sender=sender,
                to=to,
                template=template["TemplateName"],
                data=data,
                headers=headers,
                tags={
                    **tags,
                    **{t["Name"]: t["Value"] for t in entry.get("ReplacementTags") or []},
                },
                configuration_set=config_set,
            )
            self._render(message)
            self.messages.append(message)
            results.append({"Status": "SUCCESS", "MessageId": message.message_id})
        self.sent_last_24h += counted
        self._free_at = now + counted / self.max_send_rate
        return 200, {"BulkEmailEntryResults": results}

    def _merge(self, default: list[tuple[str, str]], items: Any) -> list[tuple[str, str]]:
        """The template's headers, each replaced by the entry's of the same name, plus the
        entry's others (SES's rule for ``ReplacementHeaders``)."""
        replacing = self._headers(items, "ReplacementHeaders")
        names = {n.lower() for n, _ in replacing}
        return [(n, v) for n, v in default if n.lower() not in names] + replacing

    def _entry_problem(
        self, template: str, config_set: str | None, to: list[str]
    ) -> tuple[str | None, str]:
        if template not in self.templates:
            return "TEMPLATE_NOT_FOUND", f"Template {template} does not exist."
        if config_set and config_set not in self.configuration_sets:
            return "CONFIGURATION_SET_NOT_FOUND", f"Configuration set {config_set} does not exist."
        if not to:
            return "INVALID_PARAMETER", "An entry needs a recipient"
        for address in to:
            if address.lower() in self.rejects:
                return self.rejects[address.lower()]
            if not _ADDRESS.match(address):
                return "INVALID_PARAMETER", f"Invalid address {address!r}"
            if self.sandbox and not self.identities.get(address.lower()):
                return "MESSAGE_REJECTED", f"Email address is not verified: {address}"
        return None, ""

    def _render(self, message: Message) -> None:
        content = self.templates[message.template]
        try:
            message.subject = render_handlebars(content.get("Subject", ""), message.data)
            message.html = render_handlebars(content.get("Html", ""), message.data)
            message.text = render_handlebars(content.get("Text", ""), message.data)
        except KeyError as exc:
            message.delivered, message.why_not = False, f"rendering failure: {exc}"
            return
        if any(a.lower() in self.suppressed for a in message.to):
            message.delivered, message.why_not = False, "suppressed"


def _bare_address(sender: str) -> str:
    found = re.search(r"<([^<>]+)>\s*$", sender)
    return (found.group(1) if found else sender).strip().lower()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_TAG = re.compile(r"\{\{\{\s*(\w+)\s*\}\}\}|\{\{\s*([#/]?)(\w+)(?:\s+(\w+))?\s*\}\}")


def render_handlebars(source: str, data: dict[str, Any]) -> str:
    """What SES makes of a template: ``{{x}}`` and ``{{{x}}}`` (SES escapes no HTML),
    ``{{#if x}}…{{else}}…{{/if}}`` (a block tag alone on its line takes the line); a value the
    data lacks is a rendering failure (``KeyError``), as in SES."""
    source = re.sub(r"^[ \t]*(\{\{(?:#if \w+|else|/if)\}\})[ \t]*\n", r"\1", source, flags=re.M)
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []
    on = True
    pos = 0
    for tag in _TAG.finditer(source):
        if on:
            out.append(source[pos : tag.start()])
        pos = tag.end()
        raw, sigil, word, arg = tag.groups()
        if raw is not None or (not sigil and word != "else"):
            name = raw or word
            if name not in data:
                raise KeyError(name)
            if on:
                out.append(str(data[name]))
        elif sigil == "#" and word == "if":
            if arg not in data:
                raise KeyError(arg)
            stack.append((on, bool(data[arg])))
            on = on and bool(data[arg])
        elif word == "else":
            parent, truth = stack[-1]
            on = parent and not truth
        elif sigil == "/" and word == "if":
            on, _ = stack.pop()
        else:
            raise KeyError(f"unsupported tag {tag.group(0)}")
    if on:
        out.append(source[pos:])
    return "".join(out)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1
    ses: FakeSesV2

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, out = self.ses.handle(self.command, self.path, self.headers, raw)
        if out is _Drop:
            self.close_connection = True
            return
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


@pytest.fixture
def fake_sesv2() -> Iterator[Callable[..., FakeSesV2]]:
    """A factory of started fake SES v2 servers, stopped after the test."""
    started: list[FakeSesV2] = []

    def make(**kwargs: Any) -> FakeSesV2:
        fake = FakeSesV2(**kwargs).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()
