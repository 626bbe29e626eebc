"""The email sink: retention campaigns from ``mart_email_targets`` through Amazon SES.

What goes to whom is declared in the repository: ``activation/campaigns.yml`` maps each segment
of the mart (``at_risk``, ``churned``) to a template and a cadence (``every_days``), and each
template is a folder ``activation/templates/<template>/`` of ``subject.txt``, ``body.html`` and
``body.txt``. :meth:`EmailSink.deploy_templates` (``peak activate email --deploy-templates``)
creates or updates them in SES (v1 ``CreateTemplate``/``UpdateTemplate``; a template whose
content is unchanged is left alone, compared through ``GetTemplate``). A run refuses to send a
campaign whose template in SES differs from the repository's.

Templates. The files use ``{{field}}`` for a mart column (or ``{{unsubscribe_url}}``, added by
the sink) and ``{{#if field}} … {{else}} … {{/if}}``; nothing else (no triple braces, helpers or
paths). Every field a template names is checked against the mart's columns before anything is
sent, and every body must carry ``{{unsubscribe_url}}``.

Escaping. SES does not HTML-escape template data ("SES doesn't escape HTML content when
rendering the HTML template", SES developer guide, advanced personalization), and it is
Handlebars, where ``{{x}}`` would escape and ``{{{x}}}`` would not. So the template deployed to
SES is *compiled* from the files: in the subject and text part ``{{field}}`` becomes
``{{{field}}}`` (the raw value), in the HTML part ``{{{field__html}}}``, and the sink sends both
``field`` (raw) and ``field__html`` (``html.escape``d) in each destination's template data, for
exactly the fields each part uses. Triple braces never escape, so the result is the same whether
or not SES escapes ``{{ }}``: HTML gets the value escaped once, the text part and subject never.
A template author cannot forget to escape a value, and cannot inject raw HTML.

Sending. ``SendBulkTemplatedEmail`` (SES v1), one campaign's template per call and at most 50
destinations a call, paced under the account's ``MaxSendRate`` (``GetSendQuota``, messages per
second, optionally capped lower by ``PEAK_EMAIL_MAX_SEND_RATE``): a call of ``n`` destinations
that finished at ``t`` lets the next call start at ``t + n / rate``. The daily quota
(``Max24HourSend - SentLast24Hours``, ``-1`` = unlimited) is read once at the start and counted
down; the run sends exactly up to it and stops. ``Throttling`` ("Maximum sending rate exceeded")
is retried with exponential backoff and jitter (``max_attempts`` tries); "Daily message quota
exceeded", or throttling after every retry, stops the run cleanly: the batch in flight and every
later one are left due (counted ``failed`` with the reason, status ``failed``) and the stop is
recorded in the ledger (``last_stop``); the next run simply continues, in the same order.

Who is skipped (``unchanged``, broken down in ``details["skipped"]``): members already sent this
campaign in its current period (``already_sent``), or in doubt after a crash (``in_doubt``, see
below); on the SES account-level suppression list (``suppressed``: SES v2
``ListSuppressedDestinations``, read once per run, all pages); on our own unsubscribe list
(``unsubscribed``: ``_state/activation/email/unsubscribes.json``, see :func:`unsubscribe`);
members ``dim_users`` says have not opted in to marketing (``opted_out``: the mart already
filters them; the double-check is skipped, and said so, when ``dim_users`` is not readable); and
rows whose segment has no campaign (``no_campaign``).

Unsubscribe links. Every email carries ``{{unsubscribe_url}}``: ``PEAK_EMAIL_UNSUBSCRIBE_URL``
plus ``?e=<base64url(email)>&t=<HMAC-SHA256>`` keyed by ``PEAK_EMAIL_UNSUBSCRIBE_SECRET``
(:func:`unsubscribe_url`, checked by :func:`verify_unsubscribe`). Without a secret a public
development default is used; a real send refuses it unless ``AWS_ENDPOINT_URL`` points at an
emulator. **No ``List-Unsubscribe`` header is set**: SES v1 ``SendBulkTemplatedEmail`` takes no
custom headers. SES v2 ``SendBulkEmail`` does (``ReplacementHeaders`` in the installed botocore),
but moto does not implement it, so it cannot be tested here; moving to v2 is the way to add the
one-click header bulk senders now need.

The send ledger (``_state/activation/email/``) makes each (campaign, member, period) go out at
most once. A period starts on the day a campaign goes to a member and lasts ``every_days`` (UTC
days): sent on day D, due again on D + ``every_days``. Each batch is journalled as ``sending``
*before* its call and ``sent``/``failed`` after it (one small journal file each, folded into
``ledger.json`` at the start and end of a run). A crash between the two leaves the batch
``sending``: SES may or may not have taken it and has no idempotency key to ask, so it is treated
as sent (``in_doubt``) until its period ends. That is the at-most-once choice: a crash can lose a
batch's emails for one period, never send them twice. The same holds for an answer lost on the
way back (a read timeout, a 5xx other than 503): the run stops with the batch in doubt, and
botocore's own retries are off (``client_config()``) so nothing is re-sent behind our back.
Per-destination failures in a bulk answer (``Status`` other than ``Success``) and calls SES
refused are recorded ``failed`` with SES's error and go again next run. Failpoints
``email.before_send`` (after the ``sending`` journal, before the call) and ``email.after_send``
(after the call, before its outcome is journalled) are the two crash sites the tests use. Entries
whose period ended more than ``ledger_keep_days`` (90) ago are dropped at the end of a run.

Pacing note: a call carries up to 50 destinations at once, so on a sandbox account (1 message a
second) each call is a burst of 50 followed by 50 s of quiet; ``PEAK_EMAIL_BATCH`` makes calls
smaller if SES objects to the bursts.

Credentials. Without AWS credentials (``boto3.Session().get_credentials()`` is None) the sink
runs dry, like ``ctx.dry_run``: the rendered emails and the exact bulk requests go to the outbox,
nothing is sent and no AWS call is made (so the suppression list is not checked). ``AWS_REGION``
(else ``AWS_DEFAULT_REGION``; botocore itself reads only the latter, so the sink passes it),
``PEAK_EMAIL_SENDER`` and ``PEAK_EMAIL_CONFIGURATION_SET`` configure the sender; boto3's own
``AWS_ENDPOINT_URL`` points every client at an emulator. Runs must not overlap (nothing locks
the ledger).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import html
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activation.base import (
    RecordError,
    SinkContext,
    SinkError,
    SinkResult,
    load_state,
    normalise_email,
    save_state,
    short_text,
    write_outbox,
)
from activation.config import read_settings
from activation.pacing import backoff_seconds
from peak.core.failpoints import failpoint
from peak.core.lake import Lake
from peak.core.layout import activation_state_key, outbox_prefix

log = logging.getLogger(__name__)

SINK = "email"
MART = "mart_email_targets"
#: The mart's columns (dbt_project/models/marts/mart_email_targets.sql): what templates may use.
MART_COLUMNS = (
    "user_id",
    "email",
    "segment",
    "churn_reason",
    "churn_date",
    "home_location",
    "plan",
    "join_date",
    "last_visit_date",
    "days_since_last_visit",
    "visits_30d",
    "visits_90d",
    "longest_streak_weeks",
    "favourite_class",
    "favourite_instructor",
)
REQUIRED_COLUMNS = ("user_id", "email", "segment")
SEGMENTS = ("at_risk", "churned")
#: Template fields the sink adds to the mart's.
SINK_FIELDS = ("unsubscribe_url",)
#: Every body (HTML and text) must link to the unsubscribe page.
REQUIRED_FIELDS = ("unsubscribe_url",)
TEMPLATE_PARTS = {"subject": "subject.txt", "html": "body.html", "text": "body.txt"}
#: The suffix of the HTML-escaped copy of a field in the template data.
HTML_SUFFIX = "__html"

BULK_LIMIT = 50  # SES: at most 50 destinations per SendBulkTemplatedEmail
HERE = Path(__file__).resolve().parent
DEFAULT_CAMPAIGNS = HERE / "campaigns.yml"
DEFAULT_TEMPLATES = HERE / "templates"
DEFAULT_UNSUBSCRIBE_URL = "http://localhost:8000/unsubscribe"
#: Used when PEAK_EMAIL_UNSUBSCRIBE_SECRET is unset: public, for dry runs and emulators only.
DEV_UNSUBSCRIBE_SECRET = "peak-dev-unsubscribe-secret-NOT-FOR-PRODUCTION"

LEDGER = "ledger.json"
JOURNAL = "journal/"
UNSUBSCRIBES = "unsubscribes.json"

SENDING, SENT, FAILED = "sending", "sent", "failed"

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


# ---------------------------------------------------------------------------------------------
# Settings.
# ---------------------------------------------------------------------------------------------


class EmailSettings(BaseSettings):
    """The email sink's settings, from the environment (or given by name in code and tests)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    sender: str | None = Field(
        None,
        validation_alias="PEAK_EMAIL_SENDER",
        description="The From address, a verified SES identity: 'Peak Fitness <hi@peak.example>'.",
    )
    configuration_set: str | None = Field(
        None,
        validation_alias="PEAK_EMAIL_CONFIGURATION_SET",
        description="SES configuration set for every send (event publishing, IP pool).",
    )
    region: str | None = Field(
        None,
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="The SES region (boto3's default chain when unset).",
    )
    endpoint_url: str | None = Field(
        None,
        validation_alias="AWS_ENDPOINT_URL",
        description="boto3's own emulator endpoint; read here only to allow the dev secret.",
    )
    unsubscribe_url: str = Field(
        DEFAULT_UNSUBSCRIBE_URL,
        validation_alias="PEAK_EMAIL_UNSUBSCRIBE_URL",
        description="The unsubscribe page; the sink appends ?e=…&t=… (signed).",
    )
    unsubscribe_secret: SecretStr | None = Field(
        None,
        validation_alias="PEAK_EMAIL_UNSUBSCRIBE_SECRET",
        description="HMAC key of unsubscribe links (secret; required for real sends).",
    )
    campaigns_file: Path = Field(DEFAULT_CAMPAIGNS, validation_alias="PEAK_EMAIL_CAMPAIGNS")
    templates_dir: Path = Field(DEFAULT_TEMPLATES, validation_alias="PEAK_EMAIL_TEMPLATES")
    template_prefix: str = Field(
        "peak-",
        pattern=r"^[A-Za-z0-9_-]*$",
        validation_alias="PEAK_EMAIL_TEMPLATE_PREFIX",
        description="Prefix of the SES template names (staging and tests use their own).",
    )
    max_send_rate: float | None = Field(
        None,
        gt=0,
        validation_alias="PEAK_EMAIL_MAX_SEND_RATE",
        description="Messages per second at most, below the account's MaxSendRate (leave room "
        "for transactional mail).",
    )
    check_suppression: bool = Field(
        True,
        validation_alias="PEAK_EMAIL_CHECK_SUPPRESSION",
        description="Read the SES v2 account suppression list before sending.",
    )
    batch_size: int = Field(BULK_LIMIT, ge=1, le=BULK_LIMIT, validation_alias="PEAK_EMAIL_BATCH")
    max_attempts: int = Field(5, ge=1, validation_alias="PEAK_EMAIL_MAX_ATTEMPTS")
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    #: Consecutive batches SES refused whole after which the run stops.
    max_failed_batches: int = Field(3, ge=1)
    #: Ledger entries are kept this many days after their period ended.
    ledger_keep_days: int = Field(90, ge=0)

    @field_validator(
        "sender", "configuration_set", "region", "endpoint_url", "unsubscribe_secret", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @classmethod
    def from_env(cls) -> EmailSettings:
        return read_settings(cls)

    @property
    def secret(self) -> str:
        if self.unsubscribe_secret is None:
            return DEV_UNSUBSCRIBE_SECRET
        return self.unsubscribe_secret.get_secret_value()

    @property
    def dev_secret(self) -> bool:
        return self.unsubscribe_secret is None


def client_config() -> Any:
    """The botocore config of every client the sink builds: botocore never retries on its own
    (a send it repeated after a lost answer could go out twice); the sink's loop retries what
    is safe to retry."""
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )


# ---------------------------------------------------------------------------------------------
# Campaigns and templates.
# ---------------------------------------------------------------------------------------------


class EmailConfigError(SinkError):
    """campaigns.yml or a template is wrong (nothing was sent)."""


@dataclass(frozen=True)
class Campaign:
    name: str
    segment: str
    template: str
    every_days: int
    description: str = ""

    def period(self, start: dt.date) -> str:
        """The period that starts on ``start``, as ``first..last`` (inclusive)."""
        return f"{start.isoformat()}..{(start + dt.timedelta(days=self.every_days - 1))}"


_CAMPAIGN_NAME = re.compile(r"^[a-z0-9_]{1,48}$")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


def load_campaigns(path: Path = DEFAULT_CAMPAIGNS) -> list[Campaign]:
    """The campaigns of ``campaigns.yml``, checked (:class:`EmailConfigError` says what is
    wrong)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise EmailConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise EmailConfigError(f"{path} is not valid YAML: {exc}") from None
    items = doc.get("campaigns") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise EmailConfigError(f"{path}: expected a non-empty list under 'campaigns'")
    campaigns: list[Campaign] = []
    for i, item in enumerate(items):
        where = f"{path}: campaign {i + 1}"
        if not isinstance(item, dict):
            raise EmailConfigError(f"{where} is not a mapping")
        unknown = set(item) - {"name", "segment", "template", "every_days", "description"}
        if unknown:
            raise EmailConfigError(f"{where}: unknown keys {sorted(unknown)}")
        name, segment, template = item.get("name"), item.get("segment"), item.get("template")
        every = item.get("every_days")
        if not isinstance(name, str) or not _CAMPAIGN_NAME.match(name):
            raise EmailConfigError(f"{where}: name must match {_CAMPAIGN_NAME.pattern}")
        if segment not in SEGMENTS:
            raise EmailConfigError(f"{where} ({name}): segment must be one of {SEGMENTS}")
        if not isinstance(template, str) or not _TEMPLATE_NAME.match(template):
            raise EmailConfigError(f"{where} ({name}): template must match a folder name")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise EmailConfigError(f"{where} ({name}): every_days must be a whole number >= 1")
        campaigns.append(Campaign(name, segment, template, every, str(item.get("description", ""))))
    for attr in ("name", "segment"):
        seen = Counter(getattr(c, attr) for c in campaigns)
        twice = sorted(v for v, n in seen.items() if n > 1)
        if twice:
            raise EmailConfigError(f"{path}: more than one campaign with {attr} {twice}")
    return campaigns


_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Part:
    """One part of a template: its source, what it references, and what SES gets."""

    kind: str  # subject | html | text
    source: str
    fields: frozenset[str]
    compiled: str


def _compile_part(kind: str, source: str, where: str) -> Part:
    """Check one part's tags and compile it for SES (see the module's documentation)."""
    out: list[str] = []
    fields: set[str] = set()
    depth, pos = 0, 0
    suffix = HTML_SUFFIX if kind == "html" else ""

    def bad(message: str) -> EmailConfigError:
        line = source.count("\n", 0, pos) + 1
        return EmailConfigError(f"{where}, line {line}: {message}")

    for match in _TAG.finditer(source):
        out.append(source[pos : match.start()])
        pos = match.start()
        inner = match.group(1)
        tag = match.group(0)
        if inner.startswith("{") or source.startswith("}", match.end()):
            raise bad(f"{tag}…: triple braces are not allowed (the sink escapes every value)")
        body = inner.strip()
        if body.startswith("#if ") or body.startswith("#if\t"):
            name = body[3:].strip()
            if not _FIELD.match(name):
                raise bad(f"{tag}: #if takes one field name")
            depth += 1
            fields.add(name)
            out.append("{{#if " + name + suffix + "}}")
        elif body == "else":
            if depth == 0:
                raise bad("{{else}} outside {{#if}}")
            out.append("{{else}}")
        elif body == "/if":
            if depth == 0:
                raise bad("{{/if}} without {{#if}}")
            depth -= 1
            out.append("{{/if}}")
        elif _FIELD.match(body):
            fields.add(body)
            out.append("{{{" + body + suffix + "}}}")
        else:
            raise bad(f"{tag}: only {{{{field}}}} and {{{{#if field}}}}…{{{{/if}}}} are supported")
        pos = match.end()
    rest = source[pos:]
    if "{{" in rest:
        pos += rest.index("{{")
        raise bad("'{{' is never closed")
    if depth:
        raise bad("{{#if}} is never closed with {{/if}}")
    out.append(rest)
    return Part(kind, source, frozenset(fields), "".join(out))


@dataclass(frozen=True)
class Template:
    """A template of ``activation/templates/<name>/``, checked and compiled."""

    name: str
    subject: Part
    html: Part
    text: Part

    @property
    def parts(self) -> tuple[Part, Part, Part]:
        return (self.subject, self.html, self.text)

    @property
    def fields(self) -> frozenset[str]:
        return self.subject.fields | self.html.fields | self.text.fields

    @property
    def raw_fields(self) -> frozenset[str]:
        """Fields sent as they are (the subject and text part use them)."""
        return self.subject.fields | self.text.fields

    def ses_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    def ses_template(self, prefix: str) -> dict[str, str]:
        """The ``Template`` of CreateTemplate/UpdateTemplate."""
        return {
            "TemplateName": self.ses_name(prefix),
            "SubjectPart": self.subject.compiled,
            "HtmlPart": self.html.compiled,
            "TextPart": self.text.compiled,
        }

    def check_fields(self, available: Iterable[str], where: str = "the mart") -> None:
        """:class:`EmailConfigError` if a part names a field that ``available`` lacks."""
        have = set(available)
        for part in self.parts:
            missing = sorted(part.fields - have)
            if missing:
                names = ", ".join("{{" + m + "}}" for m in missing)
                raise EmailConfigError(
                    f"template {self.name} ({TEMPLATE_PARTS[part.kind]}) uses {names}, "
                    f"which {where} does not have"
                )

    def data(self, values: Mapping[str, str]) -> dict[str, str]:
        """One destination's template data: raw values for the subject and text part, escaped
        copies (``field__html``) for the HTML part; every field present ("" when empty)."""
        data = {name: values.get(name, "") for name in sorted(self.raw_fields)}
        for name in sorted(self.html.fields):
            data[name + HTML_SUFFIX] = html.escape(values.get(name, ""), quote=True)
        return data

    def render(self, values: Mapping[str, str]) -> dict[str, str]:
        """What SES makes of the compiled template and :meth:`data` (subject, html, text)."""
        data = self.data(values)
        return {part.kind: render(part.compiled, data) for part in self.parts}


def load_template(directory: Path, name: str) -> Template:
    folder = Path(directory) / name
    parts: dict[str, Part] = {}
    for kind, filename in TEMPLATE_PARTS.items():
        path = folder / filename
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EmailConfigError(
                f"template {name}: cannot read {path}: {exc.strerror or exc}"
            ) from None
        source = source.replace("\r\n", "\n")
        if kind == "subject":
            source = source.strip()
            if not source or "\n" in source:
                raise EmailConfigError(f"template {name}: {filename} must be one non-empty line")
        parts[kind] = _compile_part(kind, source, f"template {name} ({filename})")
    template = Template(name, parts["subject"], parts["html"], parts["text"])
    for part in (template.html, template.text):
        for required in REQUIRED_FIELDS:
            if required not in part.fields:
                raise EmailConfigError(
                    f"template {name} ({TEMPLATE_PARTS[part.kind]}) must include {{{{{required}}}}}"
                )
    return template


_RENDER = re.compile(r"\{\{\{(\w+)\}\}\}|\{\{#if (\w+)\}\}|\{\{else\}\}|\{\{/if\}\}")
_STANDALONE = re.compile(r"^[ \t]*(\{\{(?:#if \w+|else|/if)\}\})[ \t]*\n", re.M)


def render(compiled: str, data: Mapping[str, Any]) -> str:
    """Render a compiled template the way Handlebars does (the subset the sink emits: triple
    braces, ``#if``/``else``/``/if``, block tags alone on a line taking their line with them).
    A field missing from ``data`` is an error, as in SES (a rendering failure)."""
    compiled = _STANDALONE.sub(r"\1", compiled)
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (parent emits, this branch true)
    emitting = True
    pos = 0
    for match in _RENDER.finditer(compiled):
        if emitting:
            out.append(compiled[pos : match.start()])
        pos = match.end()
        var, cond = match.group(1), match.group(2)
        if var is not None:
            if var not in data:
                raise KeyError(f"template data has no {var!r}")
            if emitting:
                out.append(str(data[var]))
        elif cond is not None:
            if cond not in data:
                raise KeyError(f"template data has no {cond!r}")
            truth = bool(data[cond])
            stack.append((emitting, truth))
            emitting = emitting and truth
        elif match.group(0) == "{{else}}":
            parent, truth = stack[-1]
            emitting = parent and not truth
        else:
            parent, _ = stack.pop()
            emitting = parent
    if emitting:
        out.append(compiled[pos:])
    return "".join(out)


def load_templates(campaigns: Sequence[Campaign], directory: Path) -> dict[str, Template]:
    """The templates the campaigns use, by name."""
    return {c.template: load_template(directory, c.template) for c in campaigns}


# ---------------------------------------------------------------------------------------------
# Template data.
# ---------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_EMAIL = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+\.[^@\s<>\",;]+$")


def format_value(value: Any) -> str:
    """A mart value as template text: dates as ``3 November 2026``, numbers plainly, None as
    ""; control characters (a newline in a class name) become one space."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return f"{value.day} {value:%B %Y}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return _CONTROL.sub(" ", str(value)).strip()


# ---------------------------------------------------------------------------------------------
# Unsubscribes.
# ---------------------------------------------------------------------------------------------

_TOKEN_CONTEXT = b"peak-unsubscribe:v1:"


def unsubscribe_token(email: str, secret: str) -> str:
    """The HMAC-SHA256 of the normalised address (128 bits, hex)."""
    mac = hmac.new(secret.encode(), _TOKEN_CONTEXT + normalise_email(email).encode(), "sha256")
    return mac.hexdigest()[:32]


def unsubscribe_url(base: str, email: str, secret: str) -> str:
    """``base`` plus ``e=<base64url(email)>&t=<token>`` (any query of ``base`` is kept)."""
    address = normalise_email(email)
    encoded = base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")
    parts = urlsplit(base)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("e", encoded), ("t", unsubscribe_token(address, secret))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def verify_unsubscribe(params: Mapping[str, str] | str, secret: str) -> str | None:
    """The address an unsubscribe link (its query string or parameters) names, if its token is
    valid; None otherwise. For the unsubscribe page, which then calls :func:`unsubscribe`."""
    if isinstance(params, str):
        params = dict(parse_qsl(urlsplit(params).query or params))
    encoded, token = params.get("e") or "", params.get("t") or ""
    try:
        address = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    address = normalise_email(address)
    if not address or not hmac.compare_digest(unsubscribe_token(address, secret), token):
        return None
    return address


def unsubscribed(lake: Lake) -> dict[str, dict[str, Any]]:
    """Our unsubscribe list: address -> ``{"at": …, "source": …}``."""
    return dict(load_state(lake, SINK, UNSUBSCRIBES).get("emails") or {})


def unsubscribe(
    lake: Lake, email: str, *, source: str = "manual", now: dt.datetime | None = None
) -> bool:
    """Add an address to the unsubscribe list; False if it was there already.

    One JSON file, read and rewritten: callers must not write it concurrently (one CLI or one
    worker draining the unsubscribe page's queue).
    """
    address = normalise_email(email)
    if not _EMAIL.match(address):
        raise ValueError(f"not an email address: {email!r}")
    state = load_state(lake, SINK, UNSUBSCRIBES)
    emails = dict(state.get("emails") or {})
    if address in emails:
        return False
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    emails[address] = {"at": when.isoformat(timespec="seconds"), "source": source}
    save_state(lake, SINK, {"version": 1, "emails": emails}, UNSUBSCRIBES)
    return True


# ---------------------------------------------------------------------------------------------
# The send ledger.
# ---------------------------------------------------------------------------------------------

_UNSET: Any = object()


class Ledger:
    """``entries``: ``"<campaign>|<user_id>"`` -> ``{"p": period start, "s": sending|sent|failed,
    …}`` (``m`` SES message id, ``e`` error, ``b`` batch, ``at`` time); ``last_stop``: where the
    last run that stopped early stopped (None once a run got through)."""

    def __init__(self, lake: Lake, data: Mapping[str, Any], journals: list[str]) -> None:
        self.lake = lake
        self.entries: dict[str, dict[str, Any]] = dict(data.get("entries") or {})
        self.last_stop: dict[str, Any] | None = data.get("last_stop")
        self._journals = journals
        self._dirty = False
        self._seq = 1 + max((int(n[len(JOURNAL) :].split(".")[0]) for n in journals), default=-1)

    @staticmethod
    def key(campaign: str, user_id: str) -> str:
        return f"{campaign}|{user_id}"

    @classmethod
    def load(cls, lake: Lake) -> Ledger:
        data = load_state(lake, SINK, LEDGER)
        prefix = activation_state_key(SINK, "")
        names = sorted(k[len(prefix) :] for k in lake.list(activation_state_key(SINK, JOURNAL)))
        names = [n for n in names if n.endswith(".json")]
        ledger = cls(lake, data, names)
        for name in names:
            ledger._apply(load_state(lake, SINK, name))
        return ledger

    def _apply(self, delta: Mapping[str, Any]) -> None:
        self.entries.update(delta.get("entries") or {})
        if "last_stop" in delta:
            self.last_stop = delta["last_stop"]

    def record(
        self, entries: Mapping[str, dict[str, Any]] | None = None, last_stop: Any = _UNSET
    ) -> None:
        """Durably note entries (one small journal file), then apply them."""
        delta: dict[str, Any] = {"entries": dict(entries or {})}
        if last_stop is not _UNSET:
            delta["last_stop"] = last_stop
        if not delta["entries"] and "last_stop" not in delta:
            return
        name = f"{JOURNAL}{self._seq:08d}.json"
        save_state(self.lake, SINK, delta, name)
        self._seq += 1
        self._journals.append(name)
        self._apply(delta)

    def prune(self, today: dt.date, every_days: Mapping[str, int], keep_days: int) -> int:
        """Forget entries whose period ended more than ``keep_days`` ago (they decide nothing
        any more; SES's event publishing is the audit trail). Applied by the next compaction."""
        dropped = 0
        for key, entry in list(self.entries.items()):
            days = every_days.get(key.split("|", 1)[0], 0)
            try:
                ended = dt.date.fromisoformat(entry["p"]) + dt.timedelta(days=days)
            except (KeyError, TypeError, ValueError):
                continue
            if (today - ended).days > keep_days:
                del self.entries[key]
                dropped += 1
        self._dirty = self._dirty or dropped > 0
        return dropped

    def compact(self) -> None:
        """Fold the journals into ledger.json (replaying one twice changes nothing)."""
        if not self._journals and not self._dirty:
            return
        self._dirty = False
        data = {"version": 1, "entries": self.entries, "last_stop": self.last_stop}
        save_state(self.lake, SINK, data, LEDGER)
        self.lake.delete_prefix(activation_state_key(SINK, JOURNAL))
        self._journals = []
        self._seq = 0


# ---------------------------------------------------------------------------------------------
# The plan: who is due which campaign.
# ---------------------------------------------------------------------------------------------


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
class Plan:
    records: int = 0
    due: list[Target] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: list[RecordError] = field(default_factory=list)


def plan(
    rows: Iterable[Mapping[str, Any]],
    campaigns: Sequence[Campaign],
    ledger: Ledger,
    today: dt.date,
    *,
    unsubscribed: Iterable[str] = (),
    opted_out: Iterable[str] = (),
) -> Plan:
    """Sort every mart row into due, skipped (why) or failed (why). Due targets come in
    campaign order, then by user id: a stopped run continues where it stopped."""
    out = Plan()
    by_segment = {c.segment: c for c in campaigns}
    order = {c.name: i for i, c in enumerate(campaigns)}
    unsubs = {normalise_email(e) for e in unsubscribed}
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
        if not _EMAIL.match(address):
            out.failed.append(RecordError(key, "no valid email address"))
            continue
        if address in seen:
            out.failed.append(RecordError(key, f"email shared with member {seen[address]}"))
            continue
        seen[address] = user_id
        campaign = by_segment.get(str(row.get("segment") or ""))
        if campaign is None:
            out.skipped["no_campaign"] += 1
            continue
        if user_id in opted:
            out.skipped["opted_out"] += 1
            continue
        if address in unsubs:
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


def batches(targets: Sequence[Target], size: int) -> Iterator[list[Target]]:
    """Consecutive runs of at most ``size`` targets of one campaign each."""
    batch: list[Target] = []
    for target in targets:
        if batch and (len(batch) >= size or batch[0].campaign != target.campaign):
            yield batch
            batch = []
        batch.append(target)
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------
# Pacing and errors.
# ---------------------------------------------------------------------------------------------


class SendPacer:
    """At most ``rate`` messages per second, as SES counts them: a call of ``n`` destinations
    that finished at ``t`` lets the next call start at ``t + n / rate``. SES received that call
    before it finished and receives the next after it starts, so the gap between the two on
    SES's side is at least ``n / rate`` whatever the latency. The sink makes one call at a time.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the send rate must be positive")
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.waited_s = 0.0
        self._next: float | None = None

    def wait(self) -> None:
        if self._next is None:
            return
        delay = self._next - self.clock()
        if delay > 0:
            self.waited_s += delay
            self.sleep(delay)

    def sent(self, messages: int) -> None:
        self._next = self.clock() + messages / self.rate


class SesError(SinkError):
    """An SES call failed for good."""

    def __init__(self, message: str, *, code: str = "", fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal


class Stop(SesError):
    """Stop sending cleanly: SES did not take the call (throttled after every retry, daily
    quota used up, unreachable). Everything not yet sent stays due."""

    def __init__(self, message: str, *, reason: str, code: str = "") -> None:
        super().__init__(message, code=code)
        self.reason = reason  # daily_quota | throttled | unreachable


class InDoubt(SesError):
    """The send's answer was lost: SES may have taken it. The batch stays ``sending``."""


def _error_parts(exc: Any) -> tuple[str, str, int | None]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(error.get("Code") or ""), short_text(error.get("Message") or str(exc)), status


def _is_daily_quota(code: str, message: str) -> bool:
    text = message.lower()
    return code in ("DailyQuotaExceeded", "AccountDailyQuotaExceeded") or (
        "daily" in text and "quota" in text
    )


# ---------------------------------------------------------------------------------------------
# The sink.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """One run's working state."""

    ctx: SinkContext | None
    result: SinkResult
    today: dt.date
    ledger: Ledger | None = None
    throttled: int = 0
    retry_wait_s: float = 0.0


class EmailSink:
    name = SINK

    def __init__(
        self,
        settings: Any = None,
        *,
        email_settings: EmailSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        ses_client: Any = None,
        sesv2_client: Any = None,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """``settings`` is the runner's ``ActivationSettings`` (unused: the email settings are
        :class:`EmailSettings`, from the environment unless given). ``ses_client`` (SES v1) and
        ``sesv2_client`` (the suppression list) replace the clients the sink would build (build
        them with :func:`client_config`); ``now`` is the wall clock (UTC) that dates periods."""
        self.settings = settings
        self.config = email_settings if email_settings is not None else EmailSettings.from_env()
        self.sleep = sleep
        self.clock = clock
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self._ses = ses_client
        self._sesv2 = sesv2_client
        self._injected = ses_client is not None
        self._run: _Run | None = None

    # -- AWS clients ----------------------------------------------------------------------------

    def has_credentials(self) -> bool:
        if self._injected:
            return True
        import boto3

        try:
            return boto3.Session(region_name=self.config.region).get_credentials() is not None
        except Exception:  # a broken profile is no credentials
            return False

    def _client(self, service: str) -> Any:
        import boto3

        session = boto3.Session(region_name=self.config.region)
        return session.client(service, config=client_config())

    def ses(self) -> Any:
        if self._ses is None:
            self._ses = self._client("ses")
        return self._ses

    def sesv2(self) -> Any:
        if self._sesv2 is None:
            self._sesv2 = self._client("sesv2")
        return self._sesv2

    def _call(self, what: str, fn: Callable[..., Any], *, send: bool = False, **kwargs: Any) -> Any:
        """One SES call: counted, and retried (backoff with jitter) when SES is throttling us,
        unreachable, or (for reads) failing on its side. A send is never retried after an
        answer that may have been lost (:class:`InDoubt`)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            ParamValidationError,
            PartialCredentialsError,
        )

        run = self._run
        attempt = 0
        while True:
            attempt += 1
            if run is not None:
                run.result.api_calls += 1
                if attempt > 1:
                    run.result.retried += 1
            try:
                return fn(**kwargs)
            except ClientError as exc:
                code, message, status = _error_parts(exc)
                detail = f"{code}: {message}" if code else message
                if _is_daily_quota(code, message):
                    raise Stop(
                        f"{what}: SES daily sending quota reached ({detail})",
                        reason="daily_quota",
                        code=code,
                    ) from None
                throttled = code in THROTTLE_CODES or status == 429
                server = status is not None and status >= 500
                if throttled:
                    if run is not None:
                        run.throttled += 1
                elif server and send and status != 503:
                    raise InDoubt(f"{what}: SES answered {status} ({detail})", code=code) from None
                elif not server:
                    raise SesError(
                        f"{what}: {detail}", code=code, fatal=code in FATAL_CODES
                    ) from None
                if attempt >= self.config.max_attempts:
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
                if attempt >= self.config.max_attempts:
                    raise Stop(
                        f"{what}: {detail} after {attempt} attempts", reason="unreachable"
                    ) from None
            except BotoCoreError as exc:  # a read timeout, a dropped connection, …
                detail = f"{type(exc).__name__}: {short_text(str(exc))}"
                if send:
                    raise InDoubt(f"{what}: no answer from SES ({detail})") from None
                if attempt >= self.config.max_attempts:
                    raise Stop(
                        f"{what}: {detail} after {attempt} attempts", reason="unreachable"
                    ) from None
            delay = self._backoff(attempt)
            log.warning("email %s: %s, retry %d in %.2fs", what, detail, attempt, delay)
            if run is not None:
                run.retry_wait_s += delay
            self.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return backoff_seconds(attempt, self.config.backoff_base_s, self.config.backoff_max_s)

    # -- templates ------------------------------------------------------------------------------

    def campaigns(self) -> tuple[list[Campaign], dict[str, Template]]:
        campaigns = load_campaigns(self.config.campaigns_file)
        return campaigns, load_templates(campaigns, self.config.templates_dir)

    def _ses_template(self, name: str) -> dict[str, str] | None:
        """The template SES holds under ``name`` (None if none)."""
        try:
            response = self._call("GetTemplate", self.ses().get_template, TemplateName=name)
        except SesError as exc:
            if exc.code == "TemplateDoesNotExist":
                return None
            raise
        return response.get("Template") or {}

    @staticmethod
    def _same(have: Mapping[str, Any] | None, want: Mapping[str, str]) -> bool:
        if have is None:
            return False

        def norm(value: Any) -> str:
            return str(value or "").replace("\r\n", "\n").strip()

        return all(
            norm(have.get(k)) == norm(want[k]) for k in ("SubjectPart", "HtmlPart", "TextPart")
        )

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
        self._run = _Run(ctx, result, self.now().date())
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
                    have = self._ses_template(name)
                    if have is None:
                        self._call("CreateTemplate", self.ses().create_template, Template=want)
                        done["created"].append(name)
                    elif not self._same(have, want):
                        self._call("UpdateTemplate", self.ses().update_template, Template=want)
                        done["updated"].append(name)
                    else:
                        done["unchanged"].append(name)
                except SesError as exc:
                    result.failed += 1
                    result.errors.append(RecordError(name, str(exc)))
                    result.status, result.error = "failed", str(exc)
            result.sent = len(done["created"]) + len(done["updated"])
            result.unchanged = len(done["unchanged"])
            log.info("email templates: %s", {k: len(v) for k, v in done.items()})
            return result
        finally:
            self._run = None

    # -- run ------------------------------------------------------------------------------------

    def run(self, ctx: SinkContext) -> SinkResult:
        # Not configured for sending (no AWS credentials, no sender): a dry run that says why.
        no_credentials = not self.has_credentials() or not self.config.sender
        dry = ctx.dry_run or no_credentials
        result = SinkResult(sink=SINK, dry_run=dry)
        run = _Run(ctx, result, self.now().date())
        self._run = run
        started = self.clock()
        pacer: SendPacer | None = None
        try:
            try:
                campaigns, templates = self.campaigns()
            except EmailConfigError as exc:
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
                result.fail_records(RecordError(_row_key(r), reason) for r in rows)
                return result

            ledger = Ledger.load(ctx.lake)
            run.ledger = ledger
            opted_out = self._opted_out(ctx, columns, rows)
            todo = plan(
                rows,
                campaigns,
                ledger,
                run.today,
                unsubscribed=unsubscribed(ctx.lake),
                opted_out=opted_out,
            )
            result.records = todo.records
            result.fail_records(todo.failed)
            result.details.update(
                {
                    "today": run.today.isoformat(),
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
                    "list_unsubscribe_header": "not set: SES v1 SendBulkTemplatedEmail takes no "
                    "custom headers (SES v2 SendBulkEmail would)",
                }
            )
            if self.config.dev_secret:
                result.details["unsubscribe_secret"] = (
                    "development default (PEAK_EMAIL_UNSUBSCRIBE_SECRET is not set)"
                )
            if ledger.last_stop:
                result.details["previous_stop"] = ledger.last_stop

            if dry:
                self._dry_run(ctx, todo, templates, result, no_credentials)
            else:
                ledger.compact()
                pacer = self._send(todo, templates, run)
                every = {c.name: c.every_days for c in campaigns}
                pruned = ledger.prune(run.today, every, self.config.ledger_keep_days)
                if pruned:
                    result.details["ledger_pruned"] = pruned
                ledger.compact()
            skipped = dict(sorted(todo.skipped.items()))
            result.unchanged = sum(skipped.values())
            result.details["skipped"] = skipped
        finally:
            self._run = None
            if pacer is not None:
                result.details["pace_wait_s"] = round(pacer.waited_s, 3)
            result.details["retry_wait_s"] = round(run.retry_wait_s, 3)
            result.details["throttled_responses"] = run.throttled
            result.details["seconds"] = round(self.clock() - started, 3)
        result.log(log)
        return result

    def _opted_out(self, ctx: SinkContext, columns: list[str], rows: list[dict]) -> set[str]:
        """Members not opted in to marketing: the mart's own ``marketing_opt_in`` if it has one,
        else ``dim_users`` (the mart already filters; this is the cheap double-check)."""
        result = self._run.result if self._run else None
        if "marketing_opt_in" in columns:
            if result is not None:
                result.details["opt_in_check"] = f"{MART}.marketing_opt_in"
            return {str(r["user_id"]) for r in rows if r.get("marketing_opt_in") is not True}
        try:
            users = ctx.warehouse.read("dim_users", columns=["user_id", "marketing_opt_in"])
        except Exception as exc:
            note = short_text(f"skipped: dim_users is not readable ({exc})", 200)
            log.warning("email: opt-in double-check %s", note)
            if result is not None:
                result.details["opt_in_check"] = note
            return set()
        if result is not None:
            result.details["opt_in_check"] = "dim_users.marketing_opt_in"
        return {
            str(u["user_id"]) for u in users.to_pylist() if u.get("marketing_opt_in") is not True
        }

    def _values(self, target: Target, fields: Iterable[str]) -> dict[str, str]:
        """The template values of ``fields`` for one target (mart values, formatted)."""
        row = target.row
        values = {k: format_value(row.get(k)) for k in fields if k not in SINK_FIELDS}
        if "email" in values:
            values["email"] = target.email
        values["unsubscribe_url"] = unsubscribe_url(
            self.config.unsubscribe_url, target.email, self.config.secret
        )
        return values

    def _destination(self, target: Target, template: Template) -> dict[str, Any]:
        data = template.data(self._values(target, template.fields))
        return {
            "Destination": {"ToAddresses": [target.email]},
            "ReplacementTemplateData": json.dumps(data, ensure_ascii=False, sort_keys=True),
        }

    def _request(self, batch: list[Target], template: Template) -> dict[str, Any]:
        """The SendBulkTemplatedEmail request for one batch."""
        campaign = batch[0].campaign
        default = dict.fromkeys(template.data({}), "")
        request: dict[str, Any] = {
            "Source": self.config.sender or "",
            "Template": template.ses_name(self.config.template_prefix),
            "DefaultTemplateData": json.dumps(default, sort_keys=True),
            "DefaultTags": [{"Name": "campaign", "Value": campaign.name}],
            "Destinations": [self._destination(t, template) for t in batch],
        }
        if self.config.configuration_set:
            request["ConfigurationSetName"] = self.config.configuration_set
        return request

    def _dry_run(
        self,
        ctx: SinkContext,
        todo: Plan,
        templates: Mapping[str, Template],
        result: SinkResult,
        no_credentials: bool,
    ) -> None:
        today = self._run.today if self._run else self.now().date()

        def emails() -> Iterator[dict[str, Any]]:
            for target in todo.due:
                template = templates[target.campaign.template]
                values = self._values(target, template.fields)
                yield {
                    "campaign": target.campaign.name,
                    "period": target.campaign.period(today),
                    "template": template.ses_name(self.config.template_prefix),
                    "user_id": target.user_id,
                    "to": target.email,
                    "from": self.config.sender,
                    "unsubscribe_url": values["unsubscribe_url"],
                    **template.render(values),
                }

        requests = (
            self._request(batch, templates[batch[0].campaign.template])
            for batch in batches(todo.due, self.config.batch_size)
        )
        write_outbox(ctx, SINK, "emails", emails())
        write_outbox(ctx, SINK, "send_bulk_templated_email", requests)
        result.sent = len(todo.due)
        result.outbox = ctx.lake.uri(outbox_prefix(SINK, ctx.run_id))
        result.details["batches"] = sum(1 for _ in batches(todo.due, self.config.batch_size))
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

    def _preflight(self) -> str | None:
        """Why a real send cannot start, or None."""
        if not self.config.sender:
            return "PEAK_EMAIL_SENDER is not set: SES needs a verified From address"
        if self.config.dev_secret and not self.config.endpoint_url:
            return (
                "PEAK_EMAIL_UNSUBSCRIBE_SECRET is not set: real sends need it (the development "
                "default is public, so anyone could forge unsubscribe links); dry runs and "
                "emulators (AWS_ENDPOINT_URL) use the default"
            )
        return None

    def _suppressed(self) -> set[str]:
        """Every address on the SES v2 account-level suppression list (all pages)."""
        found: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"PageSize": 1000}
            if token:
                kwargs["NextToken"] = token
            page = self._call(
                "ListSuppressedDestinations", self.sesv2().list_suppressed_destinations, **kwargs
            )
            for item in page.get("SuppressedDestinationSummaries") or []:
                found.add(normalise_email(item.get("EmailAddress")))
            token = page.get("NextToken")
            if not token:
                return found

    def _send(self, todo: Plan, templates: Mapping[str, Template], run: _Run) -> SendPacer | None:
        result, ledger = run.result, run.ledger
        assert ledger is not None
        due = todo.due

        def give_up(message: str, targets: Iterable[Target]) -> None:
            result.status, result.error = "failed", message
            result.fail_records(RecordError(t.user_id, f"not sent: {message}") for t in targets)

        problem = self._preflight()
        if problem:
            give_up(problem, due)
            return None
        if not due:
            if ledger.last_stop:
                ledger.record(last_stop=None)
            return None
        from botocore.exceptions import BotoCoreError

        try:
            self.ses()
            if self.config.check_suppression:
                suppressed = self._suppressed()
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
                want = templates[name].ses_template(self.config.template_prefix)
                if not self._same(self._ses_template(want["TemplateName"]), want):
                    raise SesError(
                        f"template {want['TemplateName']} in SES is missing or differs from "
                        f"activation/templates/{name}: run `peak activate email "
                        "--deploy-templates` first"
                    )
            quota = self._call("GetSendQuota", self.ses().get_send_quota)
        except NotImplementedError as exc:  # moto has no SES v2 suppression list
            give_up(
                f"cannot read the SES suppression list ({exc}); set "
                "PEAK_EMAIL_CHECK_SUPPRESSION=false to rely on SES's own suppression",
                due,
            )
            return None
        except SesError as exc:
            give_up(str(exc), due)
            return None
        except BotoCoreError as exc:  # no region, a bad profile, …: the clients cannot be built
            give_up(f"cannot use SES: {short_text(str(exc))}", due)
            return None

        account_rate = float(quota.get("MaxSendRate") or 1.0)
        rate = min(account_rate, self.config.max_send_rate or account_rate)
        max24 = float(quota.get("Max24HourSend", -1))
        sent24 = float(quota.get("SentLast24Hours") or 0)
        remaining = math.inf if max24 < 0 else max(0, math.floor(max24 - sent24))
        result.details["quota"] = {
            "max_24h": max24,
            "sent_last_24h": sent24,
            "remaining": None if math.isinf(remaining) else remaining,
            "max_send_rate": account_rate,
            "send_rate": rate,
        }
        pacer = SendPacer(rate, self.clock, self.sleep)
        stats = result.details["campaigns"]
        pending = list(batches(due, self.config.batch_size))
        result.details["batches"] = len(pending)
        failed_in_a_row = 0
        seq = 0
        while pending:
            batch = pending.pop(0)
            if remaining <= 0:
                pending.insert(0, batch)
                self._stop(run, "daily_quota", "SES daily sending quota reached", pending, seq)
                return pacer
            if len(batch) > remaining:  # send exactly up to the quota
                cut = int(remaining)
                pending.insert(0, batch[cut:])
                batch = batch[:cut]
            campaign = batch[0].campaign
            template = templates[campaign.template]
            request = self._request(batch, template)
            seq += 1
            stamp = self.now().astimezone(dt.UTC).isoformat(timespec="seconds")
            batch_id = f"{run.ctx.run_id if run.ctx else ''}#{seq}"
            start = run.today.isoformat()
            ledger.record({t.key: {"p": start, "s": SENDING, "b": batch_id} for t in batch})
            failpoint("email.before_send")
            pacer.wait()
            try:
                response = self._call(
                    "SendBulkTemplatedEmail",
                    self.ses().send_bulk_templated_email,
                    send=True,
                    **request,
                )
            except Stop as exc:
                # SES did not take the batch: back to due (failed, with why), then stop.
                ledger.record({t.key: _failed(start, stamp, str(exc)) for t in batch})
                pending.insert(0, batch)
                self._stop(run, exc.reason, str(exc), pending, seq - 1)
                return pacer
            except InDoubt as exc:
                # SES may have taken it: it stays "sending" (at most once), and the run stops.
                record = _stop_record(run, "in_doubt", str(exc), pending, seq)
                ledger.record(last_stop=record)
                result.details["stopped"] = record
                result.details["in_doubt"] = {"batch": batch_id, "members": len(batch)}
                result.status = "failed"
                result.error = f"{exc}; batch {batch_id} ({len(batch)} members) is in doubt"
                reason = f"in doubt (treated as sent this period): {exc}"
                result.fail_records(RecordError(t.user_id, reason) for t in batch)
                result.fail_records(_not_sent(pending, f"deferred: stopped after {exc}"))
                return pacer
            except SesError as exc:
                failed_in_a_row += 1
                ledger.record({t.key: _failed(start, stamp, str(exc)) for t in batch})
                result.fail_records(RecordError(t.user_id, str(exc)) for t in batch)
                result.status, result.error = "failed", str(exc)
                if exc.fatal or failed_in_a_row >= self.config.max_failed_batches:
                    result.fail_records(_not_sent(pending, f"stopped after: {exc}"))
                    ledger.record(last_stop=_stop_record(run, "failed", str(exc), pending, seq))
                    return pacer
                continue
            failpoint("email.after_send")
            failed_in_a_row = 0
            statuses = response.get("Status") or []
            entries: dict[str, dict[str, Any]] = {}
            daily_quota_hit = False
            for i, target in enumerate(batch):
                status = statuses[i] if i < len(statuses) else None
                if status is None:  # no word on it: SES may have sent it
                    entries[target.key] = {"p": start, "s": SENDING, "b": batch_id, "at": stamp}
                    result.fail_records([RecordError(target.user_id, "in doubt: no status")])
                    continue
                state = status.get("Status") or ("Success" if status.get("MessageId") else "")
                if state == "Success":
                    entries[target.key] = {
                        "p": start,
                        "s": SENT,
                        "m": status.get("MessageId"),
                        "at": stamp,
                    }
                    result.sent += 1
                    stats[campaign.name]["sent"] += 1
                else:
                    why = f"rejected by SES: {state or 'no status'}"
                    if status.get("Error"):
                        why += f": {short_text(status['Error'])}"
                    entries[target.key] = _failed(start, stamp, why)
                    result.fail_records([RecordError(target.user_id, why)])
                    daily_quota_hit = daily_quota_hit or state == "AccountDailyQuotaExceeded"
            ledger.record(entries)
            remaining -= len(batch)
            pacer.sent(len(batch))
            if daily_quota_hit:
                self._stop(run, "daily_quota", "SES daily sending quota reached", pending, seq)
                return pacer
        if ledger.last_stop:
            ledger.record(last_stop=None)
        return pacer

    def _stop(
        self, run: _Run, reason: str, message: str, pending: list[list[Target]], seq: int
    ) -> None:
        """Stop cleanly: what is left stays due, the stop is recorded, the run is failed."""
        assert run.ledger is not None
        left = sum(len(b) for b in pending)
        record = _stop_record(run, reason, message, pending, seq)
        run.ledger.record(last_stop=record)
        run.result.details["stopped"] = record
        run.result.status = "failed"
        run.result.error = f"stopped: {message}; {left} left for the next run"
        run.result.fail_records(_not_sent(pending, f"deferred: {message}; next run continues"))
        log.warning("email: %s", run.result.error)


def _failed(start: str, stamp: str, error: str) -> dict[str, Any]:
    return {"p": start, "s": FAILED, "e": short_text(error), "at": stamp}


def _not_sent(pending: Iterable[list[Target]], reason: str) -> Iterator[RecordError]:
    for batch in pending:
        for target in batch:
            yield RecordError(target.user_id, reason)


def _stop_record(
    run: _Run, reason: str, message: str, pending: list[list[Target]], batches_sent: int
) -> dict[str, Any]:
    first = pending[0][0] if pending and pending[0] else None
    return {
        "run_id": run.ctx.run_id if run.ctx else None,
        "reason": reason,
        "message": short_text(message),
        "batches_sent": batches_sent,
        "sent": run.result.sent,
        "left": sum(len(b) for b in pending),
        "next": {"campaign": first.campaign.name, "user_id": first.user_id} if first else None,
    }


def _row_key(row: Mapping[str, Any]) -> str:
    return str(row.get("user_id") or row.get("email") or "?")


def deploy_templates(
    ctx: SinkContext | None = None,
    *,
    email_settings: EmailSettings | None = None,
    ses_client: Any = None,
) -> SinkResult:
    """``peak activate email --deploy-templates``: :meth:`EmailSink.deploy_templates`."""
    sink = EmailSink(email_settings=email_settings, ses_client=ses_client)
    return sink.deploy_templates(ctx)
