"""Activation settings: one typed model, read from the environment by the entry point.

The CLI (or a scheduled job) builds :class:`ActivationSettings` once (:meth:`from_env`) and
hands it to the sinks, which do not read ``os.environ`` themselves. Names follow the services'
own conventions (``REDIS_URL``, ``HUBSPOT_ACCESS_TOKEN``) and ``PEAK_*`` for our knobs. The
HubSpot token is a ``SecretStr``: it prints as ``**********`` and is never logged or reported.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

#: HubSpot's API root, and its private-app limit (Professional/Enterprise: 190 calls per 10 s).
HUBSPOT_BASE_URL = "https://api.hubapi.com"
HUBSPOT_RATE_LIMIT = 190
HUBSPOT_RATE_WINDOW_S = 10.0

#: Every leaderboard key lives this long after its last write (the design's "Redis, 7 days").
LEADERBOARD_TTL_SECONDS = 7 * 24 * 3600


class ActivationSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # -- Redis leaderboard ----------------------------------------------------------------------
    redis_url: str = Field(
        "redis://localhost:6379/0",
        repr=False,  # it may carry a password; use redacted_url() to show it
        validation_alias="REDIS_URL",
        description="Redis for the leaderboard: redis://[user:password@]host:port/db or rediss://.",
    )
    redis_timeout: float = Field(
        30.0,
        gt=0,
        validation_alias="PEAK_REDIS_TIMEOUT",
        description="Seconds to wait for Redis to connect or answer one batch.",
    )
    leaderboard_weeks: int = Field(
        4,
        ge=0,
        le=52,
        validation_alias="PEAK_LEADERBOARD_WEEKS",
        description="Weeks kept before the current one (the newest week in the mart).",
    )
    leaderboard_prefix: str = Field(
        "peak:leaderboard",
        min_length=1,
        pattern=r"^[^\s*?\[\]]+$",
        validation_alias="PEAK_LEADERBOARD_PREFIX",
        description="Prefix of every leaderboard key (tests and staging use their own).",
    )
    leaderboard_ttl_seconds: int = Field(
        LEADERBOARD_TTL_SECONDS,
        gt=0,
        le=LEADERBOARD_TTL_SECONDS,
        validation_alias="PEAK_LEADERBOARD_TTL_SECONDS",
        description="Time to live of every leaderboard key (at most 7 days).",
    )

    # -- HubSpot (read by activation/hubspot/settings.py) ---------------------------------------
    hubspot_access_token: SecretStr | None = Field(
        None,
        validation_alias="HUBSPOT_ACCESS_TOKEN",
        description="HubSpot private app token (never logged).",
    )
    hubspot_base_url: str = Field(
        HUBSPOT_BASE_URL,
        validation_alias="HUBSPOT_BASE_URL",
        description="HubSpot API root (tests point it at a local fake).",
    )
    hubspot_rate_limit: int = Field(
        HUBSPOT_RATE_LIMIT,
        gt=0,
        validation_alias="PEAK_HUBSPOT_RATE_LIMIT",
        description="HubSpot requests per 10 seconds (private apps get 190 or more).",
    )

    @classmethod
    def from_env(cls) -> ActivationSettings:
        return read_settings(cls)


S = TypeVar("S", bound=BaseSettings)


def read_settings(cls: type[S]) -> S:
    """A settings class read from the environment, or a ``ValueError`` naming the first bad
    variable (one line, fit for the CLI)."""
    try:
        return cls()
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"{where}: {error['msg']}") from None


def redacted_url(url: str) -> str:
    """A URL fit for messages and reports: any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:
        return "<unparseable URL>"
