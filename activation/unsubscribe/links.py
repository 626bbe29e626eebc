"""Unsubscribes: the signed link every email carries, and our own unsubscribe list.

Every email carries ``{{unsubscribe_url}}``: ``PEAK_EMAIL_UNSUBSCRIBE_URL`` plus
``?e=<base64url(email)>&t=<HMAC-SHA256>`` keyed by ``PEAK_EMAIL_UNSUBSCRIBE_SECRET``
(:func:`unsubscribe_url`, checked by :func:`verify_unsubscribe`). Without a secret a public
development default is used; a real send refuses it unless ``AWS_ENDPOINT_URL`` points at an
emulator. **No ``List-Unsubscribe`` header is set**: SES v1 ``SendBulkTemplatedEmail`` takes no
custom headers. SES v2 ``SendBulkEmail`` does (``ReplacementHeaders`` in the installed botocore),
but moto does not implement it, so it cannot be tested here; moving to v2 is the way to add the
one-click header bulk senders now need.

The list (``_state/activation/email/unsubscribes.json``) is the unsubscribe page's to fill
(:func:`unsubscribe`); the sink skips every address on it (``unsubscribed``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from activation.base import load_state, normalise_email, save_state
from activation.email.mart import EMAIL_ADDRESS
from activation.email.settings import SINK
from peak.core.lake import Lake

UNSUBSCRIBES = "unsubscribes.json"

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
    if not EMAIL_ADDRESS.match(address):
        raise ValueError(f"not an email address: {email!r}")
    state = load_state(lake, SINK, UNSUBSCRIBES)
    emails = dict(state.get("emails") or {})
    if address in emails:
        return False
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    emails[address] = {"at": when.isoformat(timespec="seconds"), "source": source}
    save_state(lake, SINK, {"version": 1, "emails": emails}, UNSUBSCRIBES)
    return True
