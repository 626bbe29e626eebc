"""The email sink's errors, all :class:`activation.base.SinkError`: a configuration the sink
refuses before sending, and the three ways an SES call can end badly (failed, stopped, in
doubt)."""

from __future__ import annotations

from activation.base import SinkError


class EmailConfigError(SinkError):
    """campaigns.yml or a template is wrong (nothing was sent)."""


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
        self.reason = reason  # daily_quota | throttled | unreachable | deadline


class InDoubt(SesError):
    """The send's answer was lost: SES may have taken it. The batch stays ``sending``."""
