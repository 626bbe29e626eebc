"""The HubSpot sink's settings: :class:`HubSpotConfig`, from
:class:`activation.config.ActivationSettings` (``HUBSPOT_ACCESS_TOKEN``, ``HUBSPOT_BASE_URL``,
``PEAK_HUBSPOT_RATE_LIMIT``) plus the tuning knobs tests and benchmarks set in code.

``HUBSPOT_ACCESS_TOKEN`` is a ``SecretStr``: it is never logged and never in an error or report;
without it the sink runs dry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from activation.config import (
    HUBSPOT_BASE_URL,
    HUBSPOT_RATE_LIMIT,
    HUBSPOT_RATE_WINDOW_S,
    ActivationSettings,
)

#: The sink's name: its state folder, its outbox and its line in the run report.
SINK = "hubspot"
BATCH_LIMIT = 100  # HubSpot's cap on inputs per batch call


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
