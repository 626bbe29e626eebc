"""A faithful fake of the HubSpot endpoints the HubSpot sink uses, over real HTTP.

:class:`FakeHubSpot` runs a ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive) on 127.0.0.1 in a
thread; point hubspot-api-client at :attr:`FakeHubSpot.base_url`. It implements:

- ``GET|POST /crm/v3/properties/contacts/groups``: property groups (409 on a duplicate)
- ``GET|POST /crm/v3/properties/contacts``, ``GET|PATCH /crm/v3/properties/contacts/{name}``:
  properties, validated like HubSpot (known type/fieldType pairs, options for enumerations and
  booleans, an existing group; 409 on a duplicate)
- ``POST /crm/v3/objects/contacts/batch/upsert``: ``inputs`` of ``{"idProperty": "email", "id",
  "properties"}``; like HubSpot's v3 batch endpoints it is all or nothing: more than 100 inputs,
  duplicate ids, an unknown property, or any input with an invalid email or property value
  reject the whole batch (400 ``VALIDATION_ERROR``, one entry in ``errors`` per problem, with
  its ``code``) and nothing in it is written
- ``POST /crm/v3/objects/contacts/gdpr-delete``: ``{"objectId", "idProperty"?}``; by record id
  (404 if unknown) or by ``idProperty: email``: the contact is permanently deleted and its
  address blocklisted (:attr:`FakeHubSpot.gdpr_blocklist`), also when no contact has it, as
  HubSpot does; 204 with no body
- ``POST /crm/v3/objects/contacts/search``: CRM search as HubSpot answers it: ``filterGroups``
  (OR of ANDed filters; EQ, NEQ, LT, LTE, GT, GTE, IN, NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY;
  at most 5 groups, 6 filters a group, 18 in all; a filter on an unknown property is a 400),
  one ``sorts`` entry, ``properties`` (plus ``hs_object_id``, ``createdate``,
  ``lastmodifieddate``; unset ones are null), ``limit`` (default 10, at most 200) and ``after``
  paging (``paging.next.after``), at most 10,000 results per query (paging past them is a 400),
  and its own limit of ``search_rate_limit`` requests a second (429 with ``Retry-After``)
- Lists v3: ``POST /crm/v3/lists/`` (create), ``POST /crm/v3/lists/search``, ``GET /crm/v3/lists/``
  (``listIds``, ``includeFilters``), ``GET|DELETE /crm/v3/lists/{id}``,
  ``GET /crm/v3/lists/object-type-id/{type}/name/{name}``,
  ``PUT /crm/v3/lists/{id}/update-list-filters``. DYNAMIC lists' members are computed from their
  filters over the stored contacts (:meth:`FakeHubSpot.list_members`).
- ``GET /account-info/v3/details``: the account's details as HubSpot answers them
  (``portalId``, ``accountType``, ``timeZone``, ``companyCurrency``, ``additionalCurrencies``,
  ``utcOffset``, ``utcOffsetMilliseconds``, ``uiDomain``, ``dataHostingLocation``); the portal
  is :attr:`FakeHubSpot.portal_id`, its UI domain :attr:`FakeHubSpot.ui_domain`

Like HubSpot it checks the ``Authorization: Bearer`` token (401), enforces a rolling-window rate
limit when ``rate_limit`` is set (429 with ``Retry-After`` and HubSpot's rate-limit JSON; the
window is configurable so tests can scale time), and answers errors with HubSpot's JSON shape
(``status``, ``message``, ``category``, ``correlationId``). Tests inject faults
(:meth:`FakeHubSpot.fail_next`: 5xx, a 502 with an HTML body, 429 with ``Retry-After`` and a
policy, a dropped connection), read the request log (:attr:`FakeHubSpot.requests`) and assert
the end state (:attr:`contacts`, :attr:`properties`, :attr:`groups`, :attr:`lists`). The
``fake_hubspot`` fixture at the bottom starts and stops servers for a test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

BATCH_LIMIT = 100
SEARCH_PAGE_LIMIT = 200  # the most results one search page holds
SEARCH_RESULT_LIMIT = 10_000  # the most results any one search query pages through
SEARCH_LIMITS = {"groups": 5, "per_group": 6, "filters": 18}
#: What a contact search returns besides the properties asked for.
SEARCH_ALWAYS = ("hs_object_id", "createdate", "lastmodifieddate")
SEARCH_DEFAULT = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
CONTACTS_OBJECT_TYPE_ID = "0-1"
FIELD_TYPES = {
    "string": {"text", "textarea", "phonenumber", "html", "file"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"},
    "bool": {"booleancheckbox"},
    "phone_number": {"phonenumber"},
}
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)


def valid_email(email: str) -> bool:
    """HubSpot's verdict on an address: :data:`EMAIL_RE`, and a dot-atom local part (no leading,
    trailing or doubled dot), which a looser shape check (the members contract's) lets through."""
    local = email.rpartition("@")[0]
    return bool(EMAIL_RE.match(email)) and not (
        local.startswith(".") or local.endswith(".") or ".." in local
    )


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _builtin_property(name: str, label: str, type_: str = "string", field_type: str = "text"):
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": "contactinformation",
        "description": "",
        "options": [],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": name == "email",
        "hidden": False,
        "formField": True,
        "archived": False,
        "createdAt": "2019-08-06T02:41:08.029Z",
        "updatedAt": "2019-08-06T02:41:08.029Z",
        "modificationMetadata": {
            "archivable": False,
            "readOnlyDefinition": True,
            "readOnlyValue": name in ("hs_object_id", "createdate", "lastmodifieddate"),
        },
    }


@dataclass(frozen=True)
class Fault:
    status: int  # 0: drop the connection without an answer
    retry_after: float | None = None
    path: str | None = None  # only requests whose path contains this
    policy: str = "SECONDLY"  # a 429's policyName (DAILY: the daily limit)
    category: str | None = None  # a 4xx's category (VALIDATION_ERROR: rejected as invalid)
    spare: bool = False  # let this matching request through (fail_next's ``after``)


@dataclass
class LoggedRequest:
    method: str
    path: str  # without the query string
    query: str
    status: int
    body_size: int
    t: float  # time.monotonic() when it arrived
    body: Any = None  # parsed JSON body, if any


class HubSpotReply(Exception):
    """Raised inside a handler to answer with an error."""

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.headers: dict[str, str] = {}
        self.body = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
            **extra,
        }


class FakeHubSpot:
    def __init__(
        self,
        token: str = "test-token",
        rate_limit: int | None = None,
        window_s: float = 10.0,
        latency_s: float = 0.0,
        keep_bodies: bool = True,
        search_rate_limit: int | None = None,
        portal_id: int = 24681357,
        ui_domain: str = "app.hubspot.com",
    ) -> None:
        self.token = token
        self.portal_id = portal_id
        self.ui_domain = ui_domain
        self.rate_limit = rate_limit
        #: Search requests a second (HubSpot: 5 per account), when set.
        self.search_rate_limit = search_rate_limit
        self._search_arrivals: deque[float] = deque()
        self.window_s = window_s
        self.latency_s = latency_s
        self.keep_bodies = keep_bodies
        self.lock = threading.RLock()
        self.requests: list[LoggedRequest] = []
        self.rate_limited = 0  # 429s served because the rate limit was exceeded
        self.groups: dict[str, dict[str, Any]] = {
            "contactinformation": {
                "name": "contactinformation",
                "label": "Contact information",
                "displayOrder": 0,
                "archived": False,
            }
        }
        self.properties: dict[str, dict[str, Any]] = {
            p["name"]: p
            for p in (
                _builtin_property("email", "Email"),
                _builtin_property("firstname", "First Name"),
                _builtin_property("lastname", "Last Name"),
                _builtin_property("hs_object_id", "Record ID", "number", "number"),
                _builtin_property("createdate", "Create Date", "datetime", "date"),
                _builtin_property("lastmodifieddate", "Last Modified Date", "datetime", "date"),
            )
        }
        self.contacts: dict[str, dict[str, Any]] = {}  # id -> contact
        self.by_email: dict[str, str] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self.gdpr_blocklist: set[str] = set()  # addresses GDPR-deleted (never re-added)
        self._ids = itertools.count(1001)
        self._list_ids = itertools.count(1)
        self._faults: deque[Fault] = deque()
        self._arrivals: deque[float] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeHubSpot:
        fake = self

        class Handler(_Handler):
            hub = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHubSpot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test controls ------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path: str | None = None,
        after: int = 0,
        policy: str = "SECONDLY",
        category: str | None = None,
    ) -> None:
        """Answer ``n`` requests with ``status`` (0: drop the connection without an answer): the
        next ones whose path contains ``path`` (if given), once ``after`` such requests have
        been served normally. A 429 names ``policy`` (``DAILY``: the daily limit); a 4xx with
        ``category="VALIDATION_ERROR"`` says a property does not exist, whatever the inputs."""
        fault = Fault(status, retry_after, path, policy, category)
        with self.lock:
            self._faults.extend([dataclasses.replace(fault, spare=True)] * after)
            self._faults.extend([fault] * n)

    def calls(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests, by method and path (a trailing slash does not matter)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or r.path.rstrip("/") == path.rstrip("/"))
            ]

    def upsert_calls(self) -> list[LoggedRequest]:
        return self.calls("POST", "/crm/v3/objects/contacts/batch/upsert")

    def contact(self, email: str) -> dict[str, Any] | None:
        """A contact's properties by email (None if there is no such contact)."""
        with self.lock:
            cid = self.by_email.get(email.lower())
            return dict(self.contacts[cid]["properties"]) if cid else None

    def list_by_name(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            for item in self.lists.values():
                if item["name"].lower() == name.lower() and not item.get("deletedAt"):
                    return item
        return None

    def list_members(self, list_id: str) -> set[str]:
        """Emails of the contacts a DYNAMIC list's filters select now."""
        with self.lock:
            branch = self.lists[str(list_id)].get("filterBranch")
            return {
                c["properties"]["email"]
                for c in self.contacts.values()
                if branch and _matches(branch, c["properties"])
            }

    def max_in_window(
        self, window_s: float | None = None, requests: list[LoggedRequest] | None = None
    ) -> int:
        """The most requests that arrived within any rolling window (429s included)."""
        window = window_s or self.window_s
        times = sorted(r.t for r in (self.requests if requests is None else requests))
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # -- request handling ---------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Any, raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        arrived = time.monotonic()
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        body: Any = None
        extra_headers: dict[str, str] = {}
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise HubSpotReply(
                        400, "Invalid input JSON on line 1", "VALIDATION_ERROR"
                    ) from None
            with self.lock:
                fault = self._take_fault(path)
            if fault is not None:
                if fault.status == 0:
                    raise _Drop
                if fault.retry_after is not None:
                    extra_headers["Retry-After"] = f"{fault.retry_after:g}"
                if fault.status == 502:
                    raise _RawReply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
                if fault.status == 429:
                    raise HubSpotReply(
                        429,
                        f"You have reached your {fault.policy.lower()} limit.",
                        "RATE_LIMITS",
                        errorType="RATE_LIMIT",
                        policyName=fault.policy,
                    )
                if fault.category == "VALIDATION_ERROR":
                    missing = 'Property "peak_gone" does not exist'
                    raise HubSpotReply(
                        fault.status,
                        f"Property values were not valid: {missing}",
                        fault.category,
                        errors=[{"message": missing, "code": "PROPERTY_DOESNT_EXIST"}],
                    )
                raise HubSpotReply(
                    fault.status, "internal error", fault.category or "INTERNAL_ERROR"
                )
            auth = headers.get("Authorization") or ""
            if auth != f"Bearer {self.token}":
                raise HubSpotReply(
                    401,
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at "
                    "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                    "INVALID_AUTHENTICATION",
                )
            with self.lock:
                extra_headers.update(self._rate_check(arrived))
                if self.latency_s:
                    time.sleep(self.latency_s)
                status, out = self._route(method, path, query, body)
        except HubSpotReply as reply:
            status, out = reply.status, reply.body
            extra_headers.update(reply.headers)
        except _RawReply as reply:
            status, out = reply.status, reply.text
        except _Drop:
            status, out = 0, _Drop
        with self.lock:
            self.requests.append(
                LoggedRequest(
                    method,
                    path,
                    parts.query,
                    status,
                    len(raw),
                    arrived,
                    body if self.keep_bodies else None,
                )
            )
        return status, extra_headers, out

    def _take_fault(self, path: str) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.path is None or fault.path in path:
                del self._faults[i]
                return None if fault.spare else fault
        return None

    def _rate_check(self, now: float) -> dict[str, str]:
        if not self.rate_limit:
            return {}
        while self._arrivals and self._arrivals[0] <= now - self.window_s:
            self._arrivals.popleft()
        interval = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_s * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
        }
        if len(self._arrivals) >= self.rate_limit:
            self.rate_limited += 1
            wait = self._arrivals[0] + self.window_s - now
            reply = HubSpotReply(
                429,
                "You have reached your ten_secondly_rolling limit.",
                "RATE_LIMITS",
                errorType="RATE_LIMIT",
                policyName="TEN_SECONDLY_ROLLING",
            )
            reply.headers = {
                **interval,
                "X-HubSpot-RateLimit-Remaining": "0",
                "Retry-After": str(max(1, math.ceil(wait))),
            }
            raise reply
        self._arrivals.append(now)
        remaining = self.rate_limit - len(self._arrivals)
        return {**interval, "X-HubSpot-RateLimit-Remaining": str(remaining)}

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any):
        path = path.rstrip("/")
        if path.startswith("/crm/v3/properties/"):
            return self._properties_route(method, path, query, body)
        if path == "/crm/v3/objects/contacts/batch/upsert" and method == "POST":
            return self._upsert(body)
        if path == "/crm/v3/objects/contacts/gdpr-delete" and method == "POST":
            return self._gdpr_delete(body)
        if path == "/crm/v3/objects/contacts/search" and method == "POST":
            return self._search_contacts(body)
        if path.startswith("/crm/v3/lists"):
            return self._lists_route(method, path, query, body)
        if path == "/account-info/v3/details" and method == "GET":
            return 200, self._account_details()
        raise HubSpotReply(404, f"No route for {method} {path}", "OBJECT_NOT_FOUND")

    def _account_details(self) -> dict[str, Any]:
        eu = self.ui_domain.startswith("app-eu")
        return {
            "portalId": self.portal_id,
            "accountType": "STANDARD",
            "timeZone": "Europe/Dublin" if eu else "US/Eastern",
            "companyCurrency": "EUR" if eu else "USD",
            "additionalCurrencies": [],
            "utcOffset": "+00:00" if eu else "-05:00",
            "utcOffsetMilliseconds": 0 if eu else -18_000_000,
            "uiDomain": self.ui_domain,
            "dataHostingLocation": "eu1" if eu else "na1",
        }

    # -- properties ---------------------------------------------------------------------------

    def _properties_route(self, method: str, path: str, query: dict[str, list[str]], body: Any):
        rest = path[len("/crm/v3/properties/") :].split("/")
        if rest[0] != "contacts":
            raise HubSpotReply(
                400, f"Unable to infer object type from: {rest[0]}", "VALIDATION_ERROR"
            )
        if rest[1:] == ["groups"]:
            if method == "GET":
                return 200, {"results": [g for g in self.groups.values() if not g["archived"]]}
            if method == "POST":
                return 201, self._create_group(body)
        elif len(rest) == 1:
            if method == "GET":
                archived = (query.get("archived") or ["false"])[0].lower() == "true"
                props = [p for p in self.properties.values() if p["archived"] == archived]
                return 200, {"results": props}
            if method == "POST":
                return 201, self._create_property(body)
        elif len(rest) == 2 and rest[1] != "groups":
            prop = self.properties.get(rest[1])
            if prop is None:
                raise HubSpotReply(
                    404,
                    f"Unable to find property {rest[1]} on object type contacts",
                    "OBJECT_NOT_FOUND",
                )
            if method == "GET":
                return 200, prop
            if method == "PATCH":
                return 200, self._update_property(prop, body)
        raise HubSpotReply(405, f"{method} is not allowed on {path}", "VALIDATION_ERROR")

    def _create_group(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise HubSpotReply(400, "A property group needs a name and a label", "VALIDATION_ERROR")
        if body["name"] in self.groups:
            raise HubSpotReply(
                409,
                f"A property group named '{body['name']}' already exists.",
                "OBJECT_ALREADY_EXISTS",
            )
        group = {
            "name": body["name"],
            "label": body["label"],
            "displayOrder": body.get("displayOrder", -1),
            "archived": False,
        }
        self.groups[group["name"]] = group
        return group

    def _check_definition(self, prop: dict[str, Any]) -> None:
        type_, field_type = prop.get("type"), prop.get("fieldType")
        if type_ not in FIELD_TYPES or field_type not in FIELD_TYPES[type_]:
            raise HubSpotReply(
                400,
                f"Property type {type_!r} cannot have field type {field_type!r}",
                "VALIDATION_ERROR",
            )
        if prop.get("groupName") not in self.groups:
            raise HubSpotReply(
                400, f"Property group {prop.get('groupName')!r} does not exist", "VALIDATION_ERROR"
            )
        if type_ in ("enumeration", "bool"):
            options = prop.get("options")
            if not options or not all(
                isinstance(o, dict) and o.get("label") and o.get("value") is not None
                for o in options
            ):
                raise HubSpotReply(
                    400,
                    f"Property {prop['name']!r} needs options with a label and a value",
                    "VALIDATION_ERROR",
                )

    def _create_property(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HubSpotReply(400, "Invalid input JSON", "VALIDATION_ERROR")
        for key in ("name", "label", "type", "fieldType", "groupName"):
            if not body.get(key):
                raise HubSpotReply(400, f"Property is missing {key!r}", "VALIDATION_ERROR")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", body["name"]):
            raise HubSpotReply(400, f"Invalid property name {body['name']!r}", "VALIDATION_ERROR")
        if body["name"] in self.properties:
            raise HubSpotReply(
                409, f"Property named '{body['name']}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        self._check_definition(body)
        now = _now_iso()
        prop = {
            **_builtin_property(body["name"], body["label"], body["type"], body["fieldType"]),
            "groupName": body["groupName"],
            "description": body.get("description", ""),
            "options": [
                {
                    "label": o["label"],
                    "value": str(o["value"]),
                    "displayOrder": o.get("displayOrder", i),
                    "hidden": o.get("hidden", False),
                }
                for i, o in enumerate(body.get("options") or [])
            ],
            "createdAt": now,
            "updatedAt": now,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
            },
        }
        self.properties[prop["name"]] = prop
        return prop

    def _update_property(self, prop: dict[str, Any], body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HubSpotReply(400, "Invalid input JSON", "VALIDATION_ERROR")
        if prop["modificationMetadata"]["readOnlyDefinition"]:
            raise HubSpotReply(400, f"{prop['name']} is read-only", "VALIDATION_ERROR")
        allowed = {"label", "type", "fieldType", "groupName", "options", "description", "hidden"}
        updated = {**prop, **{k: v for k, v in body.items() if k in allowed}}
        self._check_definition(updated)
        updated["updatedAt"] = _now_iso()
        self.properties[prop["name"]] = updated
        return updated

    # -- contacts -----------------------------------------------------------------------------

    def _upsert(self, body: Any):
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise HubSpotReply(
                400, "Invalid input JSON: 'inputs' must be a list", "VALIDATION_ERROR"
            )
        inputs = body["inputs"]
        if len(inputs) > BATCH_LIMIT:
            raise HubSpotReply(
                400,
                f"Batch input contains {len(inputs)} inputs, which exceeds the limit of "
                f"{BATCH_LIMIT}.",
                "VALIDATION_ERROR",
                context={"limit": [str(BATCH_LIMIT)]},
            )
        if not inputs:
            raise HubSpotReply(400, "Batch input must not be empty", "VALIDATION_ERROR")
        seen: set[str] = set()
        unknown: list[str] = []
        for i, item in enumerate(inputs):
            if not (
                isinstance(item, dict)
                and isinstance(item.get("id"), str)
                and isinstance(item.get("properties"), dict)
            ):
                raise HubSpotReply(
                    400,
                    f"inputs[{i}] needs an 'id' string and a 'properties' object",
                    "VALIDATION_ERROR",
                )
            if item.get("idProperty") != "email":
                raise HubSpotReply(
                    400,
                    f"inputs[{i}].idProperty must be a unique property (this fake: 'email'), "
                    f"got {item.get('idProperty')!r}",
                    "VALIDATION_ERROR",
                )
            key = item["id"].strip().lower()
            if key in seen:
                raise HubSpotReply(
                    400, f"Duplicate IDs found in batch input: [{item['id']}]", "VALIDATION_ERROR"
                )
            seen.add(key)
            for name, value in item["properties"].items():
                if name not in self.properties and name not in unknown:
                    unknown.append(name)
                if value is not None and not isinstance(value, str | int | float | bool):
                    raise HubSpotReply(
                        400, f"inputs[{i}].properties.{name} must be a string", "VALIDATION_ERROR"
                    )
        if unknown:
            details = [
                {
                    "isValid": False,
                    "message": f'Property "{name}" does not exist',
                    "error": "PROPERTY_DOESNT_EXIST",
                    "name": name,
                    "localizedErrorMessage": f'Property "{name}" does not exist',
                }
                for name in unknown
            ]
            raise HubSpotReply(
                400,
                f"Property values were not valid: {json.dumps(details)}",
                "VALIDATION_ERROR",
                errors=[
                    {"message": d["message"], "code": d["error"], "context": {"propertyName": [n]}}
                    for d, n in zip(details, unknown, strict=True)
                ],
            )

        problems: list[dict[str, Any]] = []
        for item in inputs:
            email = item["id"].strip()
            if not valid_email(email):
                problems.append(
                    {
                        "isValid": False,
                        "message": f"Email address {email} is invalid",
                        "error": "INVALID_EMAIL",
                        "name": "email",
                    }
                )
            for name, value in item["properties"].items():
                problem = self._check_value(name, value)
                if problem:
                    problems.append(problem)
        if problems:  # one bad input rejects the whole batch: nothing in it is written
            raise HubSpotReply(
                400,
                f"Property values were not valid: {json.dumps(problems)}",
                "VALIDATION_ERROR",
                errors=[
                    {
                        "message": p["message"],
                        "code": p["error"],
                        "context": {"propertyName": [p["name"]]},
                    }
                    for p in problems
                ],
            )

        requested = _now_iso()
        results = [self._store_contact(i["id"].strip().lower(), i["properties"]) for i in inputs]
        return 200, {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": requested,
            "startedAt": requested,
            "completedAt": _now_iso(),
            "links": {},
        }

    def _check_value(self, name: str, value: Any) -> dict[str, Any] | None:
        prop = self.properties[name]
        if value is None or value == "":
            return None
        text = str(value)
        problem = None
        if prop["type"] == "number":
            try:
                float(text)
            except ValueError:
                problem = f"{text} is not a valid number"
        elif prop["type"] in ("date", "datetime"):
            try:
                dt.date.fromisoformat(text[:10])
            except ValueError:
                if not text.isdigit():
                    problem = f"{text} is not a valid date"
        elif prop["type"] == "bool":
            if text.lower() not in ("true", "false"):
                problem = f"{text} is not a valid boolean (true or false)"
        elif prop["type"] == "enumeration":
            allowed = {o["value"] for o in prop["options"]}
            if text not in allowed:
                problem = f"{text} was not one of the allowed options: {sorted(allowed)}"
        if problem is None:
            return None
        return {"isValid": False, "message": problem, "error": "INVALID_OPTION", "name": name}

    def _store_contact(self, email: str, properties: dict[str, Any]) -> dict[str, Any]:
        now = _now_iso()
        cid = self.by_email.get(email)
        new = cid is None
        if new:
            cid = str(next(self._ids))
            self.by_email[email] = cid
            self.contacts[cid] = {
                "id": cid,
                "properties": {"email": email, "hs_object_id": cid, "createdate": now},
                "createdAt": now,
                "archived": False,
            }
        contact = self.contacts[cid]
        for name, value in properties.items():
            contact["properties"][name] = None if value in (None, "") else str(value)
        contact["properties"]["lastmodifieddate"] = now
        contact["updatedAt"] = now
        return {
            "id": cid,
            "properties": dict(contact["properties"]),
            "createdAt": contact["createdAt"],
            "updatedAt": now,
            "archived": False,
            "new": new,
        }

    # -- GDPR delete and search ---------------------------------------------------------------

    def _gdpr_delete(self, body: Any):
        if not isinstance(body, dict) or not str(body.get("objectId") or "").strip():
            raise HubSpotReply(400, "objectId is required", "VALIDATION_ERROR")
        object_id = str(body["objectId"]).strip()
        id_property = body.get("idProperty")
        if id_property not in (None, "", "email", "hs_object_id"):
            raise HubSpotReply(
                400,
                f"{id_property} is not a unique property of contacts",
                "VALIDATION_ERROR",
            )
        if id_property == "email":
            email = object_id.lower()
            cid = self.by_email.get(email)
            self.gdpr_blocklist.add(email)  # found or not, the address is blocked
        else:
            cid = object_id if object_id in self.contacts else None
            if cid is None:
                raise HubSpotReply(404, f"resource not found: {object_id}", "OBJECT_NOT_FOUND")
        if cid is not None:
            contact = self.contacts.pop(cid)
            address = str(contact["properties"].get("email") or "").lower()
            self.by_email.pop(address, None)
            self.gdpr_blocklist.add(address)
        return 204, None

    # -- contact search -----------------------------------------------------------------------

    def _search_rate_check(self) -> None:
        if not self.search_rate_limit:
            return
        now = time.monotonic()
        while self._search_arrivals and self._search_arrivals[0] <= now - 1.0:
            self._search_arrivals.popleft()
        if len(self._search_arrivals) >= self.search_rate_limit:
            self.rate_limited += 1
            reply = HubSpotReply(
                429,
                "You have reached your secondly limit.",
                "RATE_LIMITS",
                errorType="RATE_LIMIT",
                policyName="SECONDLY",
            )
            wait = self._search_arrivals[0] + 1.0 - now
            reply.headers = {"Retry-After": str(max(1, math.ceil(wait)))}
            raise reply
        self._search_arrivals.append(now)

    def _search_contacts(self, body: Any):
        self._search_rate_check()
        if not isinstance(body, dict):
            raise HubSpotReply(400, "Invalid input JSON", "VALIDATION_ERROR")
        groups = body.get("filterGroups") or []
        filters = [f for g in groups for f in (g.get("filters") or [])]
        if (
            len(groups) > SEARCH_LIMITS["groups"]
            or any(len(g.get("filters") or []) > SEARCH_LIMITS["per_group"] for g in groups)
            or len(filters) > SEARCH_LIMITS["filters"]
        ):
            raise HubSpotReply(
                400,
                f"Too many filters: at most {SEARCH_LIMITS['groups']} filter groups of "
                f"{SEARCH_LIMITS['per_group']} filters, {SEARCH_LIMITS['filters']} in all",
                "VALIDATION_ERROR",
            )
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            raise HubSpotReply(400, "Only one sort is allowed", "VALIDATION_ERROR")
        for name in [f.get("propertyName") for f in filters] + [
            s.get("propertyName") if isinstance(s, dict) else s for s in sorts
        ]:
            if name not in self.properties:
                raise HubSpotReply(
                    400, f"Property {name!r} does not exist on contacts", "VALIDATION_ERROR"
                )
        limit = int(body.get("limit") or 10)
        if not 1 <= limit <= SEARCH_PAGE_LIMIT:
            raise HubSpotReply(
                400,
                f"limit must be between 1 and {SEARCH_PAGE_LIMIT}, got {limit}",
                "VALIDATION_ERROR",
            )
        after = int(body.get("after") or 0)
        if after + limit > SEARCH_RESULT_LIMIT:
            raise HubSpotReply(
                400,
                f"The search API returns at most {SEARCH_RESULT_LIMIT} results per query",
                "VALIDATION_ERROR",
            )
        matches = [
            c
            for c in self.contacts.values()
            if not groups or any(_search_matches(g.get("filters") or [], c, self) for g in groups)
        ]
        if sorts:
            sort = sorts[0] if isinstance(sorts[0], dict) else {"propertyName": sorts[0]}
            name = sort["propertyName"]
            numeric = self.properties[name]["type"] == "number"
            matches.sort(
                key=lambda c: _sort_key(c["properties"].get(name), numeric),
                reverse=sort.get("direction") == "DESCENDING",
            )
        else:
            matches.sort(key=lambda c: int(c["id"]))
        wanted = body.get("properties") or list(SEARCH_DEFAULT)
        names = list(dict.fromkeys([*wanted, *SEARCH_ALWAYS]))
        page = matches[after : after + limit]
        out: dict[str, Any] = {
            "total": len(matches),
            "results": [
                {
                    "id": c["id"],
                    "properties": {n: c["properties"].get(n) for n in names},
                    "createdAt": c["createdAt"],
                    "updatedAt": c["updatedAt"],
                    "archived": False,
                }
                for c in page
            ],
        }
        if after + len(page) < len(matches):
            nxt = str(after + len(page))
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return 200, out

    # -- lists --------------------------------------------------------------------------------

    def _lists_route(self, method: str, path: str, query: dict[str, list[str]], body: Any):
        rest = [p for p in path[len("/crm/v3/lists") :].split("/") if p]
        include_filters = (query.get("includeFilters") or ["false"])[0].lower() == "true"
        if not rest:
            if method == "POST":
                return 200, {"list": self._render(self._create_list(body), True)}
            if method == "GET":
                ids = query.get("listIds") or []
                found = [
                    self._render(self.lists[i], include_filters)
                    for i in ids
                    if i in self.lists and not self.lists[i].get("deletedAt")
                ]
                return 200, {"lists": found}
        elif rest == ["search"] and method == "POST":
            return 200, self._search(body or {})
        elif rest[:1] == ["object-type-id"] and len(rest) == 4 and rest[2] == "name":
            item = self.list_by_name(rest[3])
            if item is None or item["objectTypeId"] != rest[1]:
                raise HubSpotReply(404, f"List {rest[3]!r} does not exist.", "OBJECT_NOT_FOUND")
            return 200, {"list": self._render(item, include_filters)}
        elif rest[0] in self.lists and not self.lists[rest[0]].get("deletedAt"):
            item = self.lists[rest[0]]
            if len(rest) == 1 and method == "GET":
                return 200, {"list": self._render(item, include_filters)}
            if len(rest) == 1 and method == "DELETE":
                item["deletedAt"] = _now_iso()
                return 204, None
            if rest[1:] == ["update-list-name"] and method == "PUT":
                name = (query.get("listName") or [""])[0]
                if not name.strip():
                    raise HubSpotReply(400, "listName is required", "VALIDATION_ERROR")
                other = self.list_by_name(name)
                if other is not None and other is not item:
                    raise HubSpotReply(
                        400,
                        f"A list named '{name}' already exists.",
                        "VALIDATION_ERROR",
                        subCategory="ILS.DUPLICATE_LIST_NAMES",
                    )
                item["name"] = name
                item["listVersion"] += 1
                item["updatedAt"] = _now_iso()
                return 200, {"updatedList": self._render(item, include_filters)}
            if rest[1:] == ["update-list-filters"] and method == "PUT":
                if item["processingType"] != "DYNAMIC":
                    raise HubSpotReply(400, "Only DYNAMIC lists have filters", "VALIDATION_ERROR")
                branch = (body or {}).get("filterBranch")
                item["filterBranch"] = self._check_branch(branch)
                item["listVersion"] += 1
                item["updatedAt"] = item["filtersUpdatedAt"] = _now_iso()
                return 200, {"updatedList": self._render(item, True)}
        elif rest[0].isdigit():
            raise HubSpotReply(404, f"List {rest[0]} does not exist.", "OBJECT_NOT_FOUND")
        raise HubSpotReply(405, f"{method} is not allowed on {path}", "VALIDATION_ERROR")

    def _create_list(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HubSpotReply(400, "Invalid input JSON", "VALIDATION_ERROR")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HubSpotReply(400, "A list needs a name", "VALIDATION_ERROR")
        if body.get("objectTypeId") != CONTACTS_OBJECT_TYPE_ID:
            raise HubSpotReply(
                400, f"Unsupported objectTypeId {body.get('objectTypeId')!r}", "VALIDATION_ERROR"
            )
        processing = body.get("processingType")
        if processing not in ("DYNAMIC", "MANUAL", "SNAPSHOT"):
            raise HubSpotReply(400, f"Invalid processingType {processing!r}", "VALIDATION_ERROR")
        if self.list_by_name(name) is not None:
            raise HubSpotReply(
                400,
                f"A list named '{name}' already exists.",
                "VALIDATION_ERROR",
                subCategory="ILS.DUPLICATE_LIST_NAMES",
            )
        branch = None
        if processing != "MANUAL":
            branch = self._check_branch(body.get("filterBranch"))
        now = _now_iso()
        list_id = str(next(self._list_ids))
        item = {
            "listId": list_id,
            "listVersion": 1,
            "name": name,
            "objectTypeId": CONTACTS_OBJECT_TYPE_ID,
            "processingType": processing,
            "processingStatus": "COMPLETE",
            "createdAt": now,
            "updatedAt": now,
            "filtersUpdatedAt": now,
            "createdById": "1",
            "updatedById": "1",
            "filterBranch": branch,
        }
        self.lists[list_id] = item
        return item

    def _check_branch(self, branch: Any) -> dict[str, Any]:
        """HubSpot's rule: a root OR branch whose children are AND branches holding the filters."""
        if not isinstance(branch, dict) or branch.get("filterBranchType") != "OR":
            raise HubSpotReply(
                400, "The root filter branch must be an OR branch", "VALIDATION_ERROR"
            )
        if branch.get("filters"):
            raise HubSpotReply(400, "The root OR branch cannot hold filters", "VALIDATION_ERROR")
        children = []
        for child in branch.get("filterBranches") or []:
            if not isinstance(child, dict) or child.get("filterBranchType") != "AND":
                raise HubSpotReply(
                    400, "The root OR branch may only hold AND branches", "VALIDATION_ERROR"
                )
            filters = []
            for f in child.get("filters") or []:
                if f.get("filterType") != "PROPERTY":
                    raise HubSpotReply(
                        400, "This fake supports PROPERTY filters only", "VALIDATION_ERROR"
                    )
                if f.get("property") not in self.properties:
                    raise HubSpotReply(
                        400, f"Property {f.get('property')!r} does not exist", "VALIDATION_ERROR"
                    )
                op = f.get("operation") or {}
                if op.get("operationType") not in (
                    "STRING",
                    "MULTISTRING",
                    "ENUMERATION",
                    "BOOL",
                ) or not op.get("operator"):
                    raise HubSpotReply(400, f"Unsupported operation {op!r}", "VALIDATION_ERROR")
                if op["operationType"] == "BOOL" and (
                    op["operator"] not in ("IS_EQUAL_TO", "IS_NOT_EQUAL_TO")
                    or not isinstance(op.get("value"), bool)
                ):
                    raise HubSpotReply(400, f"Unsupported operation {op!r}", "VALIDATION_ERROR")
                filters.append(
                    {
                        "filterType": "PROPERTY",
                        "property": f["property"],
                        "operation": {"includeObjectsWithNoValueSet": False, **op},
                    }
                )
            children.append(
                {
                    "filterBranchType": "AND",
                    "filterBranchOperator": "AND",
                    "filterBranches": [],
                    "filters": filters,
                }
            )
        return {
            "filterBranchType": "OR",
            "filterBranchOperator": "OR",
            "filterBranches": children,
            "filters": [],
        }

    def _render(self, item: dict[str, Any], include_filters: bool) -> dict[str, Any]:
        out = {k: v for k, v in item.items() if k != "filterBranch"}
        if include_filters and item.get("filterBranch") is not None:
            out["filterBranch"] = json.loads(json.dumps(item["filterBranch"]))
        return out

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        query = str(body.get("query") or "").lower()
        offset = int(body.get("offset") or 0)
        count = min(int(body.get("count") or 20), 500)
        matches = sorted(
            (
                item
                for item in self.lists.values()
                if not item.get("deletedAt") and query in item["name"].lower()
            ),
            key=lambda item: int(item["listId"]),
        )
        page = matches[offset : offset + count]
        return {
            "lists": [
                {
                    **{k: v for k, v in item.items() if k != "filterBranch"},
                    "additionalProperties": {},
                }
                for item in page
            ],
            "offset": offset + len(page),
            "hasMore": offset + len(page) < len(matches),
            "total": len(matches),
        }


def _matches(branch: dict[str, Any], properties: dict[str, Any]) -> bool:
    """Does a contact pass a filter branch (OR: any child; AND: every filter and child)."""

    def passes(f: dict[str, Any]) -> bool:
        op = f["operation"]
        value = properties.get(f["property"])
        if value is None:
            return bool(op.get("includeObjectsWithNoValueSet"))
        wanted = op.get("values") if "values" in op else [op.get("value")]
        wanted = [str(v).lower() for v in wanted or []]
        if op["operator"] in ("IS_EQUAL_TO", "IS_ANY_OF"):
            return str(value).lower() in wanted
        if op["operator"] in ("IS_NOT_EQUAL_TO", "IS_NONE_OF"):
            return str(value).lower() not in wanted
        raise AssertionError(f"the fake does not evaluate {op['operator']}")

    results = [passes(f) for f in branch.get("filters") or []]
    results += [_matches(b, properties) for b in branch.get("filterBranches") or []]
    if branch["filterBranchType"] == "OR":
        return any(results)
    return all(results)


def _sort_key(value: Any, numeric: bool) -> tuple[bool, Any]:
    if value is None:
        return (True, 0 if numeric else "")
    return (False, float(value) if numeric else str(value).lower())


def _compare(a: Any, b: Any, numeric: bool) -> int:
    if numeric:
        return (float(a) > float(b)) - (float(a) < float(b))
    x, y = str(a).lower(), str(b).lower()
    return (x > y) - (x < y)


def _search_matches(filters: list[dict[str, Any]], contact: dict[str, Any], hub: FakeHubSpot):
    """Does a contact pass every filter of one search filter group."""
    for f in filters:
        name, operator = f.get("propertyName"), f.get("operator")
        value = contact["properties"].get(name)
        numeric = hub.properties[name]["type"] == "number"

        def same(a: Any, b: Any, numeric: bool = numeric) -> int:
            return _compare(a, b, numeric)

        if operator == "HAS_PROPERTY":
            ok = value not in (None, "")
        elif operator == "NOT_HAS_PROPERTY":
            ok = value in (None, "")
        elif value in (None, ""):
            ok = operator in ("NEQ", "NOT_IN")
        elif operator in ("IN", "NOT_IN"):
            hit = any(same(value, v) == 0 for v in f.get("values") or [])
            ok = hit if operator == "IN" else not hit
        elif operator in ("EQ", "NEQ", "LT", "LTE", "GT", "GTE"):
            if "value" not in f:
                raise HubSpotReply(400, f"{operator} needs a value", "VALIDATION_ERROR")
            order = same(value, f["value"])
            ok = {
                "EQ": order == 0,
                "NEQ": order != 0,
                "LT": order < 0,
                "LTE": order <= 0,
                "GT": order > 0,
                "GTE": order >= 0,
            }[operator]
        else:
            raise HubSpotReply(400, f"Unsupported operator {operator!r}", "VALIDATION_ERROR")
        if not ok:
            return False
    return True


class _Drop(Exception):
    """Close the connection without an answer (status 0 in the log)."""


class _RawReply(Exception):
    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HubSpot's API
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per response
    wbufsize = -1  # headers and body leave in one write; handle_one_request() flushes
    hub: FakeHubSpot

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, out = self.hub.handle(self.command, self.path, self.headers, raw)
        if out is _Drop:
            self.close_connection = True
            return
        if isinstance(out, str):
            data, content_type = out.encode(), "text/html"
        elif out is None:
            data, content_type = b"", "application/json"
        else:
            data, content_type = json.dumps(out).encode(), "application/json;charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@pytest.fixture
def fake_hubspot() -> Iterator[Callable[..., FakeHubSpot]]:
    """A factory of started fake HubSpot servers, stopped after the test.

    ``fake_hubspot(token="t", rate_limit=10, window_s=1.0)`` returns a running
    :class:`FakeHubSpot`; point the client at its ``base_url``.
    """
    started: list[FakeHubSpot] = []

    def make(**kwargs: Any) -> FakeHubSpot:
        hub = FakeHubSpot(**kwargs).start()
        started.append(hub)
        return hub

    yield make
    for hub in started:
        hub.stop()
