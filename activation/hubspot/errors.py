"""The HubSpot sink's error, and HubSpot's error answers told in one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activation.base import SinkError, short_text


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


def error_text(body: Any, correlation: bool = True) -> str:
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
