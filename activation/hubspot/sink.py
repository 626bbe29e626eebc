"""The HubSpot sink: churned and at-risk members to HubSpot contacts, and one list per gym.

It reads ``mart_hubspot_contacts`` (one row per churned or at-risk member) and, through
hubspot-api-client:

1. makes sure the ``peak_fitness`` property group and every property of :data:`PROPERTIES` exist
   on contacts (created when missing, patched when their label, group or options drifted);
2. upserts the contacts whose properties changed since the last successful sync, keyed by email,
   100 a call (``POST /crm/v3/objects/contacts/batch/upsert``, ``idProperty=email``). A member
   in the sync state who is no longer in the mart has returned to active: their contact gets
   ``peak_churn_status=active`` once and is then forgotten. A member whose email changed is
   synced under the new address, and the contact of the old one is retired the same way, its
   ``peak_home_location`` cleared too so that it leaves the location's list;
3. makes sure there is one DYNAMIC contact list per home location (``Peak Fitness - <location>``,
   members: ``peak_home_location`` equal to the location), found by the ids kept in the state or
   by name, created when missing, its name and filter repaired in place when they drifted.

:data:`PROPERTIES` is the one declaration of the contact properties: their definitions in
HubSpot, the mart column each comes from, and how a value is formatted all derive from it.

Limits. Every API call goes through :meth:`HubSpotSink._call`, which paces calls under the
private app's limit (``PEAK_HUBSPOT_RATE_LIMIT`` calls per rolling 10 s; :class:`RateLimiter`),
retries 429 (after ``Retry-After``), 5xx and network errors with exponential backoff and jitter
(at most ``max_attempts`` tries), and counts calls and repeats; a 429 for the daily limit stops
the run instead.

Invalid values. An email that does not match the members contract's pattern
(``contracts/members.yml``, the one definition of its shape) fails in the plan and is never sent.
HubSpot's batch endpoints are all or nothing: one input it finds invalid (an address it refuses
although it has the right shape, say) gets the whole batch a 400 ``VALIDATION_ERROR`` and
nothing in it is written. Such a batch is split in halves, each sent again (and split again if
refused), until the contacts HubSpot refuses are alone in their call; they fail with HubSpot's
reason, every other contact is sent in the same run. The extra calls count as repeated
(``retried``; ``details.batches_split``). A batch answered 207 has its failed rows recorded
with HubSpot's reason; the rest of the batch counts as sent. Every contact ends sent, unchanged
or failed with its reason (``records == sent + unchanged + failed``); a failed contact is not
marked synced, so the next run sends it again.

Sync state (``_state/activation/hubspot/``): ``state.json`` maps each synced email to the hash
of the properties last sent (plus its churn status and user id), and each location to its list
id. After every successful batch a small journal file records what it synced, so a crash re-sends
at most the batch in flight (upsert is idempotent anyway); journals fold into ``state.json`` at
the start and the end of a run (rewriting the whole state after every batch would write ~6 MB
per 100 contacts at 100k members).

Status: ``failed`` when a call failed for good (rejected token, HubSpot unavailable after every
retry, a batch rejected whole for another reason than its values, or contact after contact
refused for the same reason: a problem with the request, not the contacts); contacts HubSpot
refused one by one leave it ``ok`` and are listed in ``errors``. ``HUBSPOT_ACCESS_TOKEN`` is
never logged and never in an error or report: without it the sink runs dry (the outbox gets what
would be sent).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import hashlib
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

import contracts
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
from activation.config import (
    HUBSPOT_BASE_URL,
    HUBSPOT_RATE_LIMIT,
    HUBSPOT_RATE_WINDOW_S,
    ActivationSettings,
)
from activation.pacing import backoff_seconds
from peak.core.failpoints import failpoint
from peak.core.lake import Lake
from peak.core.layout import activation_state_key, outbox_prefix

log = logging.getLogger(__name__)

SINK = "hubspot"
MART = "mart_hubspot_contacts"
OBJECT_TYPE = "contacts"
CONTACTS_OBJECT_TYPE_ID = "0-1"  # the Lists API names object types by id
BATCH_LIMIT = 100  # HubSpot's cap on inputs per batch call

GROUP_NAME = "peak_fitness"
GROUP = {"name": GROUP_NAME, "label": "Peak Fitness", "displayOrder": -1}
LIST_PREFIX = "Peak Fitness - "

#: The statuses the mart holds (the "to watch" set), and the one a member who left it gets.
WATCHED = ("at_risk", "churned")
ACTIVE = "active"


# ---------------------------------------------------------------------------------------------
# The contact properties, declared once.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prop:
    """One custom contact property: its HubSpot definition and the mart column it comes from."""

    name: str
    label: str
    type: str  # HubSpot property type: string | number | date | enumeration | bool
    field_type: str  # HubSpot field type: text | number | date | select | booleancheckbox
    column: str  # the mart column holding its value
    description: str
    options: tuple[tuple[str, str], ...] = ()  # (value, label), for enumeration and bool

    def definition(self) -> dict[str, Any]:
        """The body of ``POST /crm/v3/properties/contacts``."""
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": GROUP_NAME,
            "description": self.description,
        }
        if self.options:
            body["options"] = [
                {"value": value, "label": label, "displayOrder": i, "hidden": False}
                for i, (value, label) in enumerate(self.options)
            ]
        return body

    def drift(self, existing: Mapping[str, Any]) -> dict[str, Any]:
        """The ``PATCH`` body that brings HubSpot's copy back to this definition ({} if none)."""
        want = self.definition()
        patch = {
            key: want[key]
            for key in ("label", "type", "fieldType", "groupName")
            if existing.get(key) != want[key]
        }
        if self.options:
            have = {(o.get("value"), o.get("label")) for o in existing.get("options") or []}
            if have != set(self.options):
                patch["options"] = want["options"]
        return patch

    def format(self, value: Any) -> str:
        """A mart value as HubSpot wants it; ``""`` clears the property. ValueError if invalid."""
        if value is None:
            return ""
        if self.type == "date":
            if isinstance(value, dt.datetime):
                value = value.date()
            if isinstance(value, dt.date):
                return value.isoformat()
            return dt.date.fromisoformat(str(value)).isoformat()
        if self.type == "number":
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"{self.name}: {value!r} is not a finite number")
            return str(int(number)) if number.is_integer() else repr(number)
        if self.type == "bool":
            if isinstance(value, str):
                value = value.strip().lower() in ("true", "1", "yes")
            return "true" if value else "false"
        text = str(value).strip()
        if self.options and text not in self.values:
            allowed = ", ".join(v for v, _ in self.options)
            raise ValueError(f"{self.name}: {text!r} is not one of {allowed}")
        return text

    @functools.cached_property
    def values(self) -> frozenset[str]:
        """The option values (empty if the property has no options)."""
        return frozenset(v for v, _ in self.options)


PROPERTIES: tuple[Prop, ...] = (
    Prop(
        "peak_churn_status",
        "Churn status",
        "enumeration",
        "select",
        "churn_status",
        "Peak Fitness churn status: at risk, churned, or active again.",
        options=(("at_risk", "At risk"), ("churned", "Churned"), (ACTIVE, "Active")),
    ),
    Prop(
        "peak_churn_reason",
        "Churn reason",
        "string",
        "text",
        "churn_reason",
        "Why the member is at risk or churned (from the churn model).",
    ),
    Prop(
        "peak_churn_date",
        "Churn date",
        "date",
        "date",
        "churn_date",
        "When the member became at risk or churned.",
    ),
    Prop(
        "peak_last_visit_date",
        "Last visit date",
        "date",
        "date",
        "last_visit_date",
        "The member's last check-in (empty if never).",
    ),
    Prop(
        "peak_visits_30d",
        "Visits in the last 30 days",
        "number",
        "number",
        "visits_30d",
        "Check-ins in the 30 days before the churn date.",
    ),
    Prop(
        "peak_home_location",
        "Home gym",
        "string",
        "text",
        "home_location",
        "The member's home location (one HubSpot list per location).",
    ),
    Prop("peak_plan", "Membership plan", "string", "text", "plan", "The member's plan."),
    Prop("peak_join_date", "Join date", "date", "date", "join_date", "When the member joined."),
    Prop(
        "peak_user_id",
        "Peak member id",
        "string",
        "text",
        "user_id",
        "The member's id in the booking system.",
    ),
    Prop(
        "peak_marketing_opt_in",
        "Marketing opt-in (booking system)",
        "bool",
        "booleancheckbox",
        "marketing_opt_in",
        "Whether the member opted in to marketing in the booking system.",
        options=(("true", "Yes"), ("false", "No")),
    ),
)

PROPERTY_BY_NAME = {p.name: p for p in PROPERTIES}
STATUS_PROPERTY = "peak_churn_status"
LOCATION_PROPERTY = "peak_home_location"
MART_COLUMNS = ("user_id", "email", *(p.column for p in PROPERTIES if p.column != "user_id"))


@functools.cache
def email_shape() -> tuple[re.Pattern[str] | None, int | None]:
    """The members contract's email pattern and maximum length (``contracts/members.yml``): the
    one definition of an email's shape, matched against the normalised (lower-case) address."""
    column = contracts.get("members").column("email")
    return (re.compile(column.pattern) if column.pattern else None), column.max_length


def email_problem(email_: str) -> str | None:
    """Why a normalised email cannot be a contact's, by the members contract (None if it can)."""
    pattern, max_length = email_shape()
    if max_length is not None and len(email_) > max_length:
        return f"invalid email: longer than {max_length} characters (the members contract)"
    if pattern is not None and not pattern.match(email_):
        return "invalid email: does not match the members contract's email pattern"
    return None


def contact_properties(row: Mapping[str, Any]) -> dict[str, str]:
    """A mart row as HubSpot contact properties (ValueError names the first invalid one)."""
    return {p.name: p.format(row.get(p.column)) for p in PROPERTIES}


def properties_hash(properties: Mapping[str, str]) -> str:
    """A short digest of the properties sent (names and values; order does not matter)."""
    canonical = "\x1e".join(f"{k}\x1f{v}" for k, v in sorted(properties.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def list_name(location: str) -> str:
    return f"{LIST_PREFIX}{location}"


def list_filter(location: str) -> dict[str, Any]:
    """A list's filter: contacts whose home location is ``location`` (root OR, one AND branch)."""
    return {
        "filterBranchType": "OR",
        "filterBranchOperator": "OR",
        "filters": [],
        "filterBranches": [
            {
                "filterBranchType": "AND",
                "filterBranchOperator": "AND",
                "filterBranches": [],
                "filters": [
                    {
                        "filterType": "PROPERTY",
                        "property": LOCATION_PROPERTY,
                        "operation": {
                            "operationType": "MULTISTRING",
                            "operator": "IS_EQUAL_TO",
                            "values": [location],
                            "includeObjectsWithNoValueSet": False,
                        },
                    }
                ],
            }
        ],
    }


def filter_signature(branch: Mapping[str, Any] | None) -> Any:
    """What a filter branch selects, ignoring the fields HubSpot adds or reorders."""
    if not branch:
        return None
    filters = []
    for f in branch.get("filters") or []:
        op = f.get("operation") or {}
        values = op.get("values")
        if values is None and "value" in op:
            values = [op["value"]]
        filters.append(
            (
                f.get("filterType"),
                f.get("property"),
                op.get("operator"),
                tuple(sorted(str(v) for v in values or ())),
                bool(op.get("includeObjectsWithNoValueSet", False)),
            )
        )
    children = [filter_signature(b) for b in branch.get("filterBranches") or []]
    return (
        branch.get("filterBranchType"),
        tuple(sorted(filters)),
        tuple(sorted(children, key=repr)),
    )


# ---------------------------------------------------------------------------------------------
# Configuration.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSpotConfig:
    """The sink's settings, from ``activation.config.ActivationSettings`` plus tuning knobs."""

    access_token: SecretStr | None = None
    base_url: str = HUBSPOT_BASE_URL
    rate_limit: int = HUBSPOT_RATE_LIMIT  # calls per rate_window_s
    rate_window_s: float = HUBSPOT_RATE_WINDOW_S
    max_attempts: int = 6  # tries per call (1 + 5 retries)
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    batch_size: int = BATCH_LIMIT
    #: Consecutive batches rejected whole (4xx) after which the run stops sending. A batch
    #: refused for invalid values is split instead and does not count; a single contact refused
    #: does, when the one before was refused for the same reason (the request is at fault).
    max_failed_batches: int = 3

    def __post_init__(self) -> None:
        token = self.access_token
        if isinstance(token, str):
            token = SecretStr(token)
        if token is not None and not token.get_secret_value().strip():
            token = None
        object.__setattr__(self, "access_token", token)
        object.__setattr__(self, "base_url", (self.base_url or HUBSPOT_BASE_URL).rstrip("/"))
        if self.rate_limit < 1:
            raise ValueError("PEAK_HUBSPOT_RATE_LIMIT must be at least 1")
        if self.rate_window_s <= 0:
            raise ValueError("the rate window must be positive")
        if not 1 <= self.batch_size <= BATCH_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {BATCH_LIMIT}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def from_env(cls, **overrides: Any) -> HubSpotConfig:
        """From the environment, through :class:`activation.config.ActivationSettings`."""
        return cls.from_settings(ActivationSettings.from_env(), **overrides)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> HubSpotConfig:
        """From ``activation.config.ActivationSettings`` (its ``hubspot_*`` fields)."""
        values: dict[str, Any] = {
            "access_token": settings.hubspot_access_token,
            "base_url": settings.hubspot_base_url,
            "rate_limit": settings.hubspot_rate_limit,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def token(self) -> str | None:
        return self.access_token.get_secret_value() if self.access_token else None


# ---------------------------------------------------------------------------------------------
# Pacing and errors.
# ---------------------------------------------------------------------------------------------


class RateLimiter:
    """At most ``limit`` calls in any rolling ``window_s``, as the server counts them.

    It remembers when each of the last ``limit`` calls *finished* and starts a call only once
    the call ``limit`` places back finished ``window_s`` ago. The server received that call
    before it finished and receives this one after it starts, so any server-side window of
    ``window_s`` holds at most ``limit`` calls, whatever the latency. (A token bucket of
    ``limit`` refilled over the window would allow up to twice that in one rolling window.)
    The sink makes one call at a time, which this reasoning assumes.
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.sleep = sleep
        self.waited_s = 0.0
        self._finished: deque[float] = deque(maxlen=limit)

    def acquire(self) -> None:
        if len(self._finished) < self.limit:
            return
        wait = self._finished[0] + self.window_s - self.clock()
        if wait > 0:
            wait += min(0.002, self.window_s / 1000)  # clear the boundary, not land on it
            self.waited_s += wait
            self.sleep(wait)

    def release(self) -> None:
        self._finished.append(self.clock())


class HubSpotError(SinkError):
    """A call failed for good. ``fatal`` ones (a rejected token) stop the whole run."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        fatal: bool = False,
        category: str | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient  # 429/5xx/network, retries exhausted
        self.fatal = fatal
        self.category = category  # HubSpot's error category (VALIDATION_ERROR, …)
        self.reason = reason  # HubSpot's explanation, without the correlation id

    @property
    def invalid_input(self) -> bool:
        """HubSpot refused the call for its inputs' values (400 ``VALIDATION_ERROR``)."""
        return self.status == 400 and self.category == "VALIDATION_ERROR"


@dataclass
class Response:
    status: int
    body: Any


def _api_exception_types() -> tuple[type[BaseException], ...]:
    from hubspot.crm.contacts import ApiException as ContactsApiException
    from hubspot.crm.lists import ApiException as ListsApiException
    from hubspot.crm.properties import ApiException as PropertiesApiException

    return (ContactsApiException, ListsApiException, PropertiesApiException)


def _parse_json(data: bytes | str | None) -> Any:
    if not data:
        return {}
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {"message": (data.decode("utf-8", "replace") if isinstance(data, bytes) else data)}


def _retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _error_text(body: Any, correlation: bool = True) -> str:
    """HubSpot's error JSON (or whatever came back) as one short line.

    A body listing its ``errors`` (a 400 ``VALIDATION_ERROR``: "Email address … is invalid",
    ``INVALID_EMAIL``) is told by those, which say more than the summary ``message``."""
    if not isinstance(body, Mapping):
        return short_text(str(body))
    category = body.get("category") or body.get("errorType") or ""
    message = body.get("message") or body.get("error") or ""
    details = [
        ": ".join(str(p) for p in (e.get("code"), e.get("message")) if p)
        for e in body.get("errors") or []
        if isinstance(e, Mapping) and e.get("message")
    ]
    if details:
        message = "; ".join(details)
    text = ": ".join(str(p) for p in (category, message) if p) or "no details"
    if correlation and body.get("correlationId"):
        text += f" (correlationId {body['correlationId']})"
    return short_text(text)


# ---------------------------------------------------------------------------------------------
# Sync state: state.json plus a journal of what each batch synced since.
# ---------------------------------------------------------------------------------------------

JOURNAL = "journal/"


class SyncState:
    """``contacts``: email -> ``"<hash>|<status>|<user_id>"``; ``lists``: location -> list."""

    def __init__(self, lake: Lake, data: dict[str, Any], journals: list[str]) -> None:
        self.lake = lake
        self.contacts: dict[str, str] = dict(data.get("contacts") or {})
        self.lists: dict[str, dict[str, Any]] = dict(data.get("lists") or {})
        self._journals = journals  # journal names not yet folded into state.json
        self._seq = 1 + max((int(n[len(JOURNAL) :].split(".")[0]) for n in journals), default=-1)

    @classmethod
    def load(cls, lake: Lake) -> SyncState:
        data = load_state(lake, SINK)
        prefix = activation_state_key(SINK, "")
        names = sorted(k[len(prefix) :] for k in lake.list(activation_state_key(SINK, JOURNAL)))
        state = cls(lake, data, names)
        for name in names:
            state._apply(load_state(lake, SINK, name))
        return state

    def _apply(self, delta: Mapping[str, Any]) -> None:
        for email_, entry in (delta.get("contacts") or {}).items():
            if entry is None:
                self.contacts.pop(email_, None)
            else:
                self.contacts[email_] = entry
        for location, entry in (delta.get("lists") or {}).items():
            if entry is None:
                self.lists.pop(location, None)
            else:
                self.lists[location] = entry

    def record(
        self,
        contacts: Mapping[str, str | None] | None = None,
        lists: Mapping[str, dict[str, Any] | None] | None = None,
    ) -> None:
        """Durably note what was just synced (one small journal file), then apply it."""
        delta = {"contacts": dict(contacts or {}), "lists": dict(lists or {})}
        if not delta["contacts"] and not delta["lists"]:
            return
        name = f"{JOURNAL}{self._seq:08d}.json"
        save_state(self.lake, SINK, delta, name)
        self._seq += 1
        self._journals.append(name)
        self._apply(delta)

    def compact(self) -> None:
        """Fold the journals into state.json (replaying a journal twice changes nothing)."""
        if not self._journals:
            return
        save_state(self.lake, SINK, {"version": 1, "contacts": self.contacts, "lists": self.lists})
        self.lake.delete_prefix(activation_state_key(SINK, JOURNAL))
        self._journals = []
        self._seq = 0

    @staticmethod
    def entry(hash_: str, status: str, user_id: str) -> str:
        return f"{hash_}|{status}|{user_id}"

    @staticmethod
    def split(entry: str) -> tuple[str, str, str]:
        hash_, status, user_id = [*entry.split("|", 2), "", ""][:3]
        return hash_, status, user_id


# ---------------------------------------------------------------------------------------------
# The plan: what each record needs.
# ---------------------------------------------------------------------------------------------


@dataclass
class Upsert:
    email: str
    user_id: str
    properties: dict[str, str]
    hash: str
    status: str
    returning: bool = False  # back to active (or an old email): forget after a successful send

    def input(self) -> dict[str, Any]:
        return {"idProperty": "email", "id": self.email, "properties": self.properties}


@dataclass
class Plan:
    records: int = 0
    unchanged: int = 0
    upserts: list[Upsert] = field(default_factory=list)
    failed: list[RecordError] = field(default_factory=list)
    locations: set[str] = field(default_factory=set)
    returning: int = 0
    email_changed: int = 0  # old emails of members synced under a new one, to retire
    forget: list[str] = field(default_factory=list)  # emails to drop from the state, unsent


def plan(rows: Iterable[Mapping[str, Any]], state: SyncState) -> Plan:
    out = Plan()
    seen: dict[str, str] = {}  # email -> user_id that claimed it
    mart_users: set[str] = set()
    placed: set[str] = set()  # members whose contact is synced (or sent) this run
    for row in sorted(rows, key=lambda r: str(r.get("user_id") or "")):
        out.records += 1
        user_id = str(row.get("user_id") or "")
        mart_users.add(user_id)
        email_ = normalise_email(row.get("email"))
        key = user_id or email_ or f"row {out.records}"
        if not email_:
            out.failed.append(RecordError(key, "no email: HubSpot contacts are keyed by email"))
            continue
        problem = email_problem(email_)
        if problem:
            out.failed.append(RecordError(key, problem))
            continue
        if email_ in seen:
            out.failed.append(
                RecordError(key, f"email shared with member {seen[email_]}, who is synced instead")
            )
            continue
        seen[email_] = user_id
        try:
            props = contact_properties(row)
        except (TypeError, ValueError) as exc:
            out.failed.append(RecordError(key, f"invalid value: {short_text(str(exc))}"))
            continue
        if props[LOCATION_PROPERTY]:
            out.locations.add(props[LOCATION_PROPERTY])
        placed.add(user_id)
        hash_ = properties_hash(props)
        known = state.contacts.get(email_)
        if known is not None and SyncState.split(known)[0] == hash_:
            out.unchanged += 1
            continue
        out.upserts.append(Upsert(email_, user_id, props, hash_, props[STATUS_PROPERTY]))

    for email_, entry in sorted(state.contacts.items()):
        if email_ in seen:
            continue
        _, status, user_id = SyncState.split(entry)
        moved = bool(user_id) and user_id in placed  # synced under their new email
        if not moved and user_id and user_id in mart_users:
            continue  # the new email cannot be synced (yet): the old contact stays as it is
        if not moved and status not in WATCHED:
            out.forget.append(email_)  # already active in HubSpot: nothing to tell it
            continue
        # Back to active, or an email the member no longer has: its contact says active once
        # (an old address also leaves its location's list), then is forgotten.
        out.records += 1
        props = {STATUS_PROPERTY: ACTIVE}
        if moved:
            out.email_changed += 1
            props[LOCATION_PROPERTY] = ""  # "" clears the property
        else:
            out.returning += 1
        out.upserts.append(
            Upsert(email_, user_id, props, properties_hash(props), ACTIVE, returning=True)
        )
    return out


def batches(items: Sequence[Upsert], size: int) -> Iterator[list[Upsert]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# ---------------------------------------------------------------------------------------------
# The sink.
# ---------------------------------------------------------------------------------------------


class HubSpotSink:
    name = SINK

    def __init__(
        self,
        config: HubSpotConfig | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        settings: Any = None,
    ) -> None:
        """``config`` wins; else ``settings`` (how ``activation.runner`` builds sinks); else the
        environment."""
        if config is None and settings is not None:
            config = HubSpotConfig.from_settings(settings)
        self.config = config or HubSpotConfig.from_env()
        self.sleep = sleep
        self.clock = clock
        self.limiter = RateLimiter(self.config.rate_limit, self.config.rate_window_s, clock, sleep)
        self._api_errors = _api_exception_types()
        self._apis: dict[str, Any] | None = None
        self._result: SinkResult | None = None
        self._rate_limited = 0
        self._retry_wait_s = 0.0

    # -- the HubSpot client -------------------------------------------------------------------

    def apis(self) -> dict[str, Any]:
        """The API objects, built once: every one points at ``config.base_url``."""
        if self._apis is None:
            from hubspot import HubSpot
            from urllib3.util.retry import Retry

            client = HubSpot(
                access_token=self.config.token,
                host=self.config.base_url,
                # Our loop retries what reached HubSpot; urllib3 only re-opens refused connections.
                retry=Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0),
            )
            self._apis = {
                "batch": client.crm.contacts.batch_api,
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

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
        """One API call: paced, retried on 429/5xx/network errors, counted; raw JSON back.

        Responses are read raw (``_preload_content=False``) so the status (200 or 207) and the
        body come back as HubSpot sent them; the generated models add nothing here and cannot
        build list filter branches. Raises :class:`HubSpotError` when the call fails for good.
        """
        import urllib3

        result = self._result
        what = f"{type(fn.__self__).__module__.split('.')[2]}.{fn.__name__}"
        timeout = (self.config.connect_timeout_s, self.config.read_timeout_s)
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire()
            if result is not None:
                result.api_calls += 1
                if attempt > 1:
                    result.retried += 1
            status: int | None
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
                detail = _error_text(body)
                reason = _error_text(body, correlation=False)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                status, detail = None, f"network error: {type(exc).__name__}"
            finally:
                self.limiter.release()

            detail = self._scrub(detail)
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
                    reason=self._scrub(reason),
                )
            if status == 429:
                self._rate_limited += 1
            if attempt >= self.config.max_attempts:
                code = f"HTTP {status}" if status else "no response"
                raise HubSpotError(
                    f"{what}: gave up after {attempt} attempts ({code}: {detail})",
                    status=status,
                    transient=True,
                )
            # Retry-After (429s, some 503s) is a floor; the backoff adds to a server's bad day.
            delay = max(self._backoff(attempt), _retry_after(headers) or 0.0)
            log.warning(
                "hubspot %s: %s, retry %d in %.2fs", what, status or "network error", attempt, delay
            )
            self._retry_wait_s += delay
            self.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return backoff_seconds(attempt, self.config.backoff_base_s, self.config.backoff_max_s)

    def _scrub(self, text: str) -> str:
        token = self.config.token
        return text.replace(token, "[redacted]") if token else text

    # -- run ----------------------------------------------------------------------------------

    def run(self, ctx: SinkContext) -> SinkResult:
        dry = ctx.dry_run or self.config.token is None
        result = SinkResult(sink=SINK, dry_run=dry)
        self._result = result
        self._rate_limited = 0
        self._retry_wait_s = 0.0
        waited_before = self.limiter.waited_s
        started = self.clock()
        try:
            try:
                rows = ctx.warehouse.read(MART, columns=list(MART_COLUMNS)).to_pylist()
            except Exception as exc:  # the warehouse reader's errors, DuckDB's, Athena's
                result.status, result.error = "failed", short_text(f"cannot read {MART}: {exc}")
                return result
            state = SyncState.load(ctx.lake)
            todo = plan(rows, state)
            result.records = todo.records
            result.unchanged = todo.unchanged
            result.fail_records(todo.failed)
            result.details.update(
                {
                    "returned_to_active": todo.returning,
                    "email_changed": todo.email_changed,
                    "locations": len(todo.locations),
                    "batches": math.ceil(len(todo.upserts) / self.config.batch_size),
                    "rate_limit": f"{self.config.rate_limit} per {self.config.rate_window_s:g}s",
                }
            )
            if dry:
                self._dry_run(ctx, todo, result)
            else:
                state.compact()
                self._sync(todo, state, result)
                state.compact()
        finally:
            self._result = None
            self.close()
            result.details["throttle_wait_s"] = round(self.limiter.waited_s - waited_before, 3)
            result.details["retry_wait_s"] = round(self._retry_wait_s, 3)
            result.details["rate_limited_responses"] = self._rate_limited
            result.details["seconds"] = round(self.clock() - started, 3)
        result.log(log)
        return result

    def _fail_upserts(self, result: SinkResult, upserts: Iterable[Upsert], reason: str) -> None:
        result.fail_records(RecordError(u.user_id or u.email, reason) for u in upserts)

    def _dry_run(self, ctx: SinkContext, todo: Plan, result: SinkResult) -> None:
        bodies = [
            {"inputs": [u.input() for u in batch]}
            for batch in batches(todo.upserts, self.config.batch_size)
        ]
        write_outbox(ctx, SINK, "contacts_batch_upsert", bodies)
        write_outbox(ctx, SINK, "property_groups", [GROUP])
        write_outbox(ctx, SINK, "properties", [p.definition() for p in PROPERTIES])
        write_outbox(ctx, SINK, "lists", [self._list_body(loc) for loc in sorted(todo.locations)])
        result.sent = len(todo.upserts)
        result.outbox = ctx.lake.uri(outbox_prefix(SINK, ctx.run_id))
        result.details["note"] = (
            "dry run: HUBSPOT_ACCESS_TOKEN is not set, nothing was sent"
            if self.config.token is None
            else "dry run: nothing was sent"
        ) + "; 'sent' counts the contacts the outbox holds"

    def _sync(self, todo: Plan, state: SyncState, result: SinkResult) -> None:
        upserts = todo.upserts
        try:
            self.apis()
            result.details.update(self._ensure_properties())
        except HubSpotError as exc:
            result.status, result.error = "failed", str(exc)
            self._fail_upserts(result, upserts, f"not sent: {exc}")
            return
        if todo.forget:
            state.record(contacts=dict.fromkeys(todo.forget))
            result.details["forgotten"] = len(todo.forget)

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
                response = self._call(self.apis()["batch"].upsert, body)
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
            synced, rejected = self._settle(batch, response)
            state.record(
                contacts={
                    u.email: None if u.returning else SyncState.entry(u.hash, u.status, u.user_id)
                    for u in synced
                }
            )
            result.sent += len(synced)
            result.fail_records(rejected)

        try:
            result.details.update(self._ensure_lists(todo.locations, state))
        except HubSpotError as exc:
            result.status = "failed"
            result.error = result.error or str(exc)
            result.details["lists_error"] = str(exc)

    def _settle(
        self, batch: list[Upsert], response: Response
    ) -> tuple[list[Upsert], list[RecordError]]:
        """Which contacts of a 200/207 answer HubSpot took, and why it refused the others."""
        body = response.body if isinstance(response.body, Mapping) else {}
        by_email = {u.email: u for u in batch}
        refused: dict[str, str] = {}
        unattributed: list[str] = []
        for error in body.get("errors") or []:
            reason = _error_text(error)
            context = error.get("context") if isinstance(error, Mapping) else None
            named = [
                normalise_email(v)
                for values in (context or {}).values()
                for v in (values if isinstance(values, list) else [values])
            ]
            hits = [e for e in named if e in by_email]
            for e in hits:
                refused.setdefault(e, reason)
            if not hits:
                unattributed.append(reason)
        results = body.get("results") or []
        rest = [u for u in batch if u.email not in refused]
        if len(results) < len(rest):
            # HubSpot confirmed fewer contacts than it did not refuse: trust only those it names.
            confirmed = {
                normalise_email((r.get("properties") or {}).get("email"))
                for r in results
                if isinstance(r, Mapping)
            }
            why = "; ".join(unattributed) or f"HTTP {response.status} without a result for it"
            for u in rest:
                if u.email not in confirmed:
                    refused[u.email] = f"not confirmed by HubSpot: {why}"
            rest = [u for u in batch if u.email not in refused]
        errors = [
            RecordError(u.user_id or u.email, f"rejected by HubSpot: {refused[u.email]}")
            for u in batch
            if u.email in refused
        ]
        return rest, errors

    # -- properties ---------------------------------------------------------------------------

    def _ensure_properties(self) -> dict[str, Any]:
        apis = self.apis()
        response = self._call(apis["properties"].get_all, OBJECT_TYPE, archived=False)
        existing = {p["name"]: p for p in response.body.get("results", [])}
        missing = [p for p in PROPERTIES if p.name not in existing]
        drifted = {p.name: p.drift(existing[p.name]) for p in PROPERTIES if p.name in existing}
        drifted = {name: patch for name, patch in drifted.items() if patch}
        details: dict[str, Any] = {"group_created": False}
        if missing or any("groupName" in patch for patch in drifted.values()):
            groups = self._call(apis["groups"].get_all, OBJECT_TYPE).body.get("results", [])
            if GROUP_NAME not in {g.get("name") for g in groups}:
                self._create(apis["groups"].create, OBJECT_TYPE, GROUP)
                details["group_created"] = True
        for prop in missing:
            self._create(apis["properties"].create, OBJECT_TYPE, prop.definition())
        for name, patch in drifted.items():
            self._call(apis["properties"].update, OBJECT_TYPE, name, patch)
        details["properties_created"] = [p.name for p in missing]
        details["properties_updated"] = sorted(drifted)
        return details

    def _create(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._call(fn, *args)
        except HubSpotError as exc:
            if exc.status != 409:  # 409: it exists already (created meanwhile): fine
                raise

    # -- lists --------------------------------------------------------------------------------

    def _list_body(self, location: str) -> dict[str, Any]:
        return {
            "name": list_name(location),
            "objectTypeId": CONTACTS_OBJECT_TYPE_ID,
            "processingType": "DYNAMIC",
            "filterBranch": list_filter(location),
        }

    def _fetch_lists(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            chunk = list(ids[start : start + 100])
            body = self._call(
                self.apis()["lists"].get_all, list_ids=chunk, include_filters=True
            ).body
            for item in body.get("lists") or []:
                if not item.get("deletedAt"):
                    found[str(item.get("listId"))] = item
        return found

    def _search_lists(self) -> dict[str, dict[str, Any]]:
        """Our lists by lower-cased name (HubSpot's list names are unique, ignoring case)."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            request = {"query": LIST_PREFIX.strip(), "offset": offset, "count": 500}
            body = self._call(self.apis()["lists"].do_search, request).body
            for item in body.get("lists") or []:
                if str(item.get("name", "")).startswith(LIST_PREFIX):
                    found[str(item["name"]).lower()] = item
            if not body.get("hasMore") or not body.get("lists"):
                return found
            offset = int(body.get("offset") or offset + len(body["lists"]))

    def _ensure_lists(self, locations: set[str], state: SyncState) -> dict[str, Any]:
        api = self.apis()["lists"]
        wanted = sorted(locations)
        known = {loc: str(state.lists[loc]["id"]) for loc in wanted if loc in state.lists}
        fetched = self._fetch_lists(sorted(set(known.values()))) if known else {}
        current = {loc: fetched[list_id] for loc, list_id in known.items() if list_id in fetched}
        missing = [loc for loc in wanted if loc not in current]
        if missing:  # lost from the state, or made by hand: find them by name
            by_name = self._search_lists()
            adopted = {
                loc: by_name[list_name(loc).lower()]
                for loc in missing
                if list_name(loc).lower() in by_name
            }
            if adopted:
                ids = sorted({str(item["listId"]) for item in adopted.values()})
                with_filters = self._fetch_lists(ids)
                for loc, item in adopted.items():
                    current[loc] = with_filters.get(str(item["listId"]), item)
        created, repaired, changes = [], [], {}
        for loc in wanted:
            item = current.get(loc)
            name, want = list_name(loc), list_filter(loc)
            if item is None:
                item = self._call(api.create, self._list_body(loc)).body.get("list") or {}
                created.append(loc)
            else:  # campaigns hold on to the list's id: repair the list in place
                list_id = str(item["listId"])
                renamed = item.get("name") != name
                refiltered = filter_signature(item.get("filterBranch")) != filter_signature(want)
                if renamed:
                    self._call(api.update_name, list_id, list_name=name)
                if refiltered:
                    self._call(api.update_list_filters, list_id, {"filterBranch": want})
                if renamed or refiltered:
                    repaired.append(loc)
            entry = {"id": str(item.get("listId")), "name": name}
            if state.lists.get(loc) != entry:
                changes[loc] = entry
        state.record(lists=changes)
        return {"lists": len(wanted), "lists_created": created, "lists_repaired": repaired}
