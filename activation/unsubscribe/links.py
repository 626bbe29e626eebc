"""The signed unsubscribe link every retention e-mail carries, in its body and in its
``List-Unsubscribe`` header.

The link is ``PEAK_EMAIL_UNSUBSCRIBE_URL`` plus ``?e=<base64url(email)>&t=<HMAC-SHA256>`` keyed by
``PEAK_EMAIL_UNSUBSCRIBE_SECRET`` (:func:`unsubscribe_url`, checked by
:func:`verify_unsubscribe`). Without a secret a public development default is used; a real send
refuses it unless ``AWS_ENDPOINT_URL`` points at an emulator. The unsubscribe Lambda
(:mod:`activation.unsubscribe.handler`) answers the link: a page on ``GET``, the unsubscribe on
``POST`` (RFC 8058's one-click POST, or the page's button), recorded in the register
(:mod:`activation.unsubscribe.register`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from activation.addresses import normalise_email

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
    valid; None otherwise. The unsubscribe Lambda then records it in the register."""
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
