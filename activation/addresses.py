"""E-mail addresses as the sinks key them, defined once and importable without any sink (the
unsubscribe Lambda imports this module alone).

- :func:`normalise_email`: trimmed, lower case: how every sink and ledger keys an address;
- :data:`EMAIL_ADDRESS`: the shape of an address the e-mail sink sends to (and that may be put
  on the unsubscribe register);
- :func:`address_key`: the name an address is stored under where the address itself must not
  be (the unsubscribe register, the suppression snapshot): a SHA-256 of the normalised address
  under a fixed context, so both sinks and the Lambda find the same record.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

#: An address the e-mail sink will send to (and put on the unsubscribe register).
EMAIL_ADDRESS = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+\.[^@\s<>\",;]+$")

_KEY_CONTEXT = b"peak-address:v1:"


def normalise_email(value: Any) -> str:
    """An email as the sinks key it: trimmed, lower case ("" for none)."""
    return str(value or "").strip().lower()


def address_key(email: str) -> str:
    """The stored name of an address (hex SHA-256 of the normalised address, with a context)."""
    return hashlib.sha256(_KEY_CONTEXT + normalise_email(email).encode()).hexdigest()
