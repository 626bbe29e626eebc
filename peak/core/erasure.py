"""Erasure (GDPR's right to be forgotten): who was erased, and how to find a member anywhere.

Two things every stage may need, so they live in the core (Python 3.9, like the Glue job):

- :class:`Register`, the erasure register (``_state/erasure/register.json``): the salted hashes
  (HMAC-SHA256 under a random salt kept in the register) of every erased member's ids and
  e-mail addresses, never the values. Ingestion drops the rows of an erased member from every
  export it lands after the erasure (a re-delivered or late export never brings them back), and
  the sinks can ask it before sending anything. ``peak forget`` (:mod:`peak.ops.forget`) adds to
  it; nothing else writes it.
- :class:`Subject`, the members being erased, by their plain ids and addresses: a pattern that
  finds them in any text (a CSV line, a JSON document, a Redis key, a column of strings: the
  same pattern runs in Python's ``re``, DuckDB's and Arrow's RE2), and :func:`scrub_json`, which
  removes them from a JSON document while keeping everyone else's records.

A user id is matched as a whole token (``U12`` is not found in ``U123``), case-sensitively; an
address case-insensitively, as a whole address, and also in the two encodings the platform
writes it in (URL-encoded, and base64url in unsubscribe links).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from peak.core.lake import Lake
from peak.core.layout import ERASURE_REGISTER_KEY as REGISTER_KEY

#: Characters of a user id (the members contract's pattern) and of an e-mail address, but for
#: the ``-`` both have (a character class puts it last).
_ID_CHARS = "A-Za-z0-9_"
_EMAIL_CHARS = "A-Za-z0-9._%+"


def _other_than(chars: str) -> str:
    """A character class of every character but ``chars`` and ``-``."""
    return f"[^{chars}-]"


def normalise_id(value: Any) -> str:
    return str(value if value is not None else "").strip()


def normalise_email(value: Any) -> str:
    return str(value if value is not None else "").strip().lower()


# ---------------------------------------------------------------------------------------------
# The register
# ---------------------------------------------------------------------------------------------


@dataclass
class Register:
    """Salted hashes of erased members' ids and addresses, and a line per erasure."""

    salt: str = ""
    ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, lake: Lake) -> Register:
        data = lake.read_json(REGISTER_KEY, default=None) or {}
        return cls(
            salt=str(data.get("salt") or ""),
            ids=set(data.get("ids") or ()),
            emails=set(data.get("emails") or ()),
            requests=list(data.get("requests") or ()),
        )

    @property
    def empty(self) -> bool:
        return not self.ids and not self.emails

    def _hash(self, kind: str, value: str) -> str:
        if not self.salt:
            raise ValueError("the erasure register has no salt yet")
        key = bytes.fromhex(self.salt)
        return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def hash_id(self, user_id: Any) -> str:
        return self._hash("user_id", normalise_id(user_id))

    def hash_email(self, email: Any) -> str:
        return self._hash("email", normalise_email(email))

    def is_erased(self, user_id: Any = None, email: Any = None) -> bool:
        """Whether a row with this id or this address belongs to an erased member."""
        if self.empty:
            return False
        if normalise_id(user_id) and self.hash_id(user_id) in self.ids:
            return True
        return bool(normalise_email(email)) and self.hash_email(email) in self.emails

    def erased_values(self, values: Iterable[Any], kind: str) -> set[Any]:
        """The values (ids or addresses, as given) that belong to erased members."""
        known, hasher = (self.ids, self.hash_id) if kind == "id" else (self.emails, self.hash_email)
        if not known:
            return set()
        return {v for v in set(values) if v is not None and hasher(v) in known}

    def add(self, lake: Lake, subject: Subject, request_id: str) -> tuple[list[str], list[str]]:
        """Record a subject (idempotent); returns its id and address hashes."""
        if not self.salt:
            fresh = {"version": 1, "salt": secrets.token_hex(32), "ids": [], "emails": []}
            # Created once (a conditional write): two first erasures agree on one salt.
            lake.create(REGISTER_KEY, json.dumps(fresh, indent=2).encode())
            self.salt = Register.load(lake).salt
        ids = sorted(self.hash_id(v) for v in subject.ids)
        emails = sorted(self.hash_email(v) for v in subject.emails)
        self.ids.update(ids)
        self.emails.update(emails)
        if not any(r.get("id") == request_id for r in self.requests):
            self.requests.append(
                {
                    "id": request_id,
                    "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "ids": len(ids),
                    "emails": len(emails),
                }
            )
        lake.write_json(
            REGISTER_KEY,
            {
                "version": 1,
                "salt": self.salt,
                "ids": sorted(self.ids),
                "emails": sorted(self.emails),
                "requests": self.requests,
            },
        )
        return ids, emails


# ---------------------------------------------------------------------------------------------
# The subject
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """The members being erased: their ids and addresses (normalised)."""

    ids: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()

    @classmethod
    def of(cls, ids: Iterable[Any] = (), emails: Iterable[Any] = ()) -> Subject:
        return cls(
            frozenset(v for v in map(normalise_id, ids) if v),
            frozenset(v for v in map(normalise_email, emails) if v),
        )

    def __or__(self, other: Subject) -> Subject:
        return Subject(self.ids | other.ids, self.emails | other.emails)

    def __bool__(self) -> bool:
        return bool(self.ids or self.emails)

    @property
    def encoded_emails(self) -> list[str]:
        """Each address as the platform also writes it: URL-encoded, base64url (no padding)."""
        out = set()
        for email in self.emails:
            out.add(quote(email, safe=""))
            out.add(base64.urlsafe_b64encode(email.encode()).decode().rstrip("="))
        return sorted(out - set(self.emails))

    @property
    def pattern(self) -> str:
        """One regular expression finding any of the members, valid in Python and RE2."""
        parts = []
        word = _other_than(_ID_CHARS)
        if self.ids:
            ids = "|".join(re.escape(v) for v in sorted(self.ids, key=len, reverse=True))
            parts.append(f"(?:^|{word})(?:{ids})(?:{word}|$)")
        if self.emails:
            emails = "|".join(re.escape(v) for v in sorted(self.emails, key=len, reverse=True))
            after = rf"(?:{_other_than(_ID_CHARS + '.')}|\.[^A-Za-z0-9]|\.$|$)"
            parts.append(f"(?:^|{_other_than(_EMAIL_CHARS)})(?i:{emails}){after}")
        encoded = self.encoded_emails
        if encoded:
            words = "|".join(re.escape(v) for v in sorted(encoded, key=len, reverse=True))
            parts.append(f"(?:^|{_other_than(_ID_CHARS + '%')})(?:{words})(?:{word}|$)")
        if not parts:
            return "(?!)"  # matches nothing (not used by RE2: an empty subject searches nothing)
        return "|".join(parts)

    @property
    def regex(self) -> re.Pattern[str]:
        return _compiled(self.pattern)

    def found_in(self, text: str | None) -> bool:
        return text is not None and self.regex.search(text) is not None

    def count_in(self, text: str | None) -> int:
        """How many places in ``text`` name a member (each match counted once)."""
        if not text:
            return 0
        return sum(1 for _ in self.regex.finditer(text))

    def redact(self, text: str, mark: str = "[erased]") -> str:
        """``text`` with every mention replaced by ``mark`` (the characters around it kept)."""

        def keep_edges(match: re.Match[str]) -> str:
            found = match.group(0)
            inner = self._core(found)
            start = found.find(inner) if inner else 0
            return found[:start] + mark + found[start + len(inner) :] if inner else mark

        return self.regex.sub(keep_edges, text)

    def _core(self, found: str) -> str:
        lowered = found.lower()
        for value in sorted((*self.ids, *self.emails, *self.encoded_emails), key=len, reverse=True):
            if value in found or value in lowered:
                index = found.find(value)
                if index < 0:
                    index = lowered.find(value)
                return found[index : index + len(value)]
        return found


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[pattern] = re.compile(pattern)
    return _CACHE[pattern]


# ---------------------------------------------------------------------------------------------
# JSON documents
# ---------------------------------------------------------------------------------------------


def mentions(value: Any, subject: Subject) -> bool:
    """Whether a JSON value names a member anywhere (a key, a string, at any depth)."""
    if isinstance(value, dict):
        return any(subject.found_in(str(k)) or mentions(v, subject) for k, v in value.items())
    if isinstance(value, list):
        return any(mentions(v, subject) for v in value)
    if isinstance(value, str):
        return subject.found_in(value)
    return False


def scrub_json(value: Any, subject: Subject) -> tuple[Any, int, bool]:
    """A JSON value without the members: ``(value, removed, residual)``.

    In a list, an element that mentions a member anywhere inside it is dropped whole (a batch of
    contacts loses that contact's input, a report's error list that error), the outermost such
    list deciding; in an object, a key naming a member is dropped with its value (a state keyed
    by address or by ``campaign|user_id``). A string value naming a member outside any list is
    ``residual``: the caller drops the whole record (a JSON Lines line) or redacts it.
    """
    if isinstance(value, list):
        kept = [v for v in value if not mentions(v, subject)]
        return kept, len(value) - len(kept), False
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        removed, residual = 0, False
        for key, item in value.items():
            if subject.found_in(str(key)):
                removed += 1
                continue
            if isinstance(item, (dict, list)):
                item, n, rest = scrub_json(item, subject)
                removed += n
                residual = residual or rest
            elif isinstance(item, str) and subject.found_in(item):
                residual = True
            out[key] = item
        return out, removed, residual
    if isinstance(value, str) and subject.found_in(value):
        return value, 0, True
    return value, 0, False


def redact_json(value: Any, subject: Subject) -> Any:
    """Every string naming a member, in a JSON value, with the member replaced by a mark."""
    if isinstance(value, dict):
        return {k: redact_json(v, subject) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, subject) for v in value]
    if isinstance(value, str) and subject.found_in(value):
        return subject.redact(value)
    return value
