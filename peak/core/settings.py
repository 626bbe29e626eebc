"""The platform's settings: one typed tree, read from the environment once.

Entry points (the CLI, the Lambda handler, the Glue job, the dashboard) build :class:`Settings`
once with :meth:`Settings.load` and pass it, or the section a component needs, down as
arguments; nothing below them reads ``os.environ``. Explicit arguments beat the environment.

One naming convention: the root's variables are ``PEAK_<FIELD>`` (``PEAK_LAKE``) and each
section's are ``PEAK_<SECTION>_<FIELD>`` (``PEAK_DUCKDB_MEMORY_LIMIT``,
``PEAK_HUBSPOT_RATE_LIMIT``). The services' own variables keep their names: ``REDIS_URL``,
``HUBSPOT_ACCESS_TOKEN``, and boto3's ``AWS_*``. A bad value is a :class:`ConfigError` naming
the variable. Secrets are ``SecretStr``: they print as ``**********`` and are never logged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict
from typing_extensions import Self

from peak.core.errors import ConfigError

Engine = Literal["duckdb", "spark"]
Target = Literal["local", "athena"]

#: HubSpot's API root, and its private-app limit (Professional/Enterprise: 190 calls per 10 s).
HUBSPOT_BASE_URL = "https://api.hubapi.com"
HUBSPOT_RATE_LIMIT = 190
HUBSPOT_BATCH_LIMIT = 100  # HubSpot's cap on inputs per batch call
#: HubSpot's CRM search: requests a second per account, and results a page.
HUBSPOT_SEARCH_RATE_LIMIT = 5
HUBSPOT_SEARCH_PAGE = 200
#: A sink run's overall deadline by default (each sink's ``deadline_s``): a daily run that waits
#: on a HubSpot or SES that stopped answering gives up after this, not after hours of retries.
SINK_DEADLINE_S = 900.0
#: SES: at most 50 destinations per bulk send.
SES_BULK_LIMIT = 50
#: Every leaderboard key lives this long after its last write (the design's "Redis, 7 days").
LEADERBOARD_TTL_SECONDS = 7 * 24 * 3600
#: A DuckDB memory limit: a number and a unit, as DuckDB's ``memory_limit`` takes it.
MEMORY_SIZE = r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$"


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _sink_deadline() -> Any:
    """A sink's overall deadline setting (both marketing sinks share its meaning and default)."""
    return Field(
        SINK_DEADLINE_S,
        gt=0,
        description="Seconds a run of the sink may take, calls, pacing and retries included: "
        "past it the run stops, says so, and leaves the rest for the next run.",
    )


class Section(BaseSettings):
    """A group of settings under one ``PEAK_<SECTION>_`` prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """The settings from the environment (``overrides`` win), or a :class:`ConfigError`
        naming the first variable that is wrong and why."""
        loaded: Self = load(cls, **overrides)
        return loaded


class DuckDBSettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_DUCKDB_")

    memory_limit: str = Field("3GB", description="DuckDB's memory cap, e.g. 3GB (it spills).")
    threads: int | None = Field(None, ge=1, description="DuckDB threads (default: all cores).")

    @field_validator("memory_limit")
    @classmethod
    def _a_size(cls, value: str) -> str:
        if not re.match(MEMORY_SIZE, value):
            raise ValueError("a size with its unit, like 3GB or 500MB")
        return value.strip()


class SparkSettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_SPARK_")

    driver_memory: str = Field("3g", description="Local Spark's driver (and heap) memory.")
    shuffle_partitions: int = Field(16, ge=1, description="Local Spark's shuffle partitions.")


class QualitySettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_QUALITY_")

    batch_rows: int = Field(1_000_000, ge=1, description="Rows per Great Expectations batch.")
    sample_rows: int = Field(
        100_000,
        ge=1,
        description="Rows of each batch the row-level expectations check: a uniform sample "
        "(set-level ones see every row; docs/quality.md).",
    )


class AthenaSettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_ATHENA_")

    schema_name: str = Field(
        "peak_analytics",
        validation_alias=AliasChoices("schema_name", "PEAK_ATHENA_SCHEMA"),
        description="Athena schema dbt builds into.",
    )
    work_group: str = Field("peak", description="Athena workgroup (bytes-scanned cutoff).")
    s3_staging_dir: str | None = Field(None, description="Athena query results location.")
    s3_data_dir: str | None = Field(None, description="Where dbt writes Athena tables.")


class RedisSettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_REDIS_")

    url: str = Field(
        "redis://localhost:6379/0",
        repr=False,  # it may carry a password; use redacted_url() to show it
        validation_alias=AliasChoices("url", "REDIS_URL"),
        description="Redis for the leaderboard: redis://[user:password@]host:port/db or rediss://.",
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to connect or answer one batch.")


class LeaderboardSettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_LEADERBOARD_")

    weeks: int = Field(
        4, ge=0, le=52, description="Weeks kept before the current one (the newest in the mart)."
    )
    prefix: str = Field(
        "peak:leaderboard",
        min_length=1,
        pattern=r"^[^\s*?\[\]]+$",
        description="Prefix of every leaderboard key (tests and staging use their own).",
    )
    ttl_seconds: int = Field(
        LEADERBOARD_TTL_SECONDS,
        gt=0,
        le=LEADERBOARD_TTL_SECONDS,
        description="Time to live of every leaderboard key (at most 7 days).",
    )


class HubSpotSettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_HUBSPOT_")

    access_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("access_token", "HUBSPOT_ACCESS_TOKEN"),
        description="HubSpot private app token (never logged); without it the sink runs dry.",
    )
    base_url: str = Field(
        HUBSPOT_BASE_URL,
        validation_alias=AliasChoices("base_url", "PEAK_HUBSPOT_BASE_URL", "HUBSPOT_BASE_URL"),
        description="HubSpot API root (tests point it at a local fake).",
    )
    rate_limit: int = Field(
        HUBSPOT_RATE_LIMIT, ge=1, description="Requests per rate window (private apps: 190+)."
    )
    rate_window_s: float = Field(10.0, gt=0, description="HubSpot's rate window, seconds.")
    max_attempts: int = Field(6, ge=1, description="Tries per call (1 + retries).")
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    deadline_s: float = _sink_deadline()
    batch_size: int = Field(HUBSPOT_BATCH_LIMIT, ge=1, le=HUBSPOT_BATCH_LIMIT)
    #: Consecutive batches rejected whole (4xx) after which the run stops sending. A batch
    #: refused for invalid values is split instead and does not count; a single contact refused
    #: does, when the one before was refused for the same reason (the request is at fault).
    max_failed_batches: int = Field(3, ge=1)
    #: HubSpot's CRM search: at most this many requests a second, and results a page.
    search_rate_limit: int = Field(
        HUBSPOT_SEARCH_RATE_LIMIT, ge=1, description="CRM search requests per second."
    )
    full_resync: bool = Field(
        False,
        description="Rebuild the sync state from what HubSpot holds, then send the differences "
        "(`peak activate hubspot --full-resync`).",
    )

    _blank_token = field_validator("access_token", mode="before")(_blank_is_none)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return (value or HUBSPOT_BASE_URL).rstrip("/")

    @property
    def token(self) -> str | None:
        return self.access_token.get_secret_value() if self.access_token else None


#: Signs unsubscribe links when PEAK_EMAIL_UNSUBSCRIBE_SECRET is unset: public, so for dry runs
#: and emulators only (the e-mail sink refuses real sends with it).
DEV_UNSUBSCRIBE_SECRET = "peak-dev-unsubscribe-secret-NOT-FOR-PRODUCTION"


class EmailSettings(Section):
    model_config = SettingsConfigDict(env_prefix="PEAK_EMAIL_")

    sender: str | None = Field(
        None, description="The From address, a verified SES identity: 'Peak <hi@peak.example>'."
    )
    configuration_set: str | None = Field(
        None, description="SES configuration set for every send (event publishing, IP pool)."
    )
    region: str | None = Field(
        None,
        validation_alias=AliasChoices("region", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="The SES region (boto3's default chain when unset).",
    )
    endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("endpoint_url", "AWS_ENDPOINT_URL"),
        description="boto3's own emulator endpoint; read here only to allow the dev secret.",
    )
    unsubscribe_url: str = Field(
        "http://localhost:8000/unsubscribe",
        description="The unsubscribe page; the sink appends ?e=…&t=… (signed).",
    )
    unsubscribe_secret: SecretStr | None = Field(
        None, description="HMAC key of unsubscribe links (secret; required for real sends)."
    )
    unsubscribe_secret_id: str | None = Field(
        None,
        description="The Secrets Manager secret holding that key (JSON key "
        "PEAK_EMAIL_UNSUBSCRIBE_SECRET): what the unsubscribe Lambda reads it from.",
    )
    campaigns_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("campaigns_file", "PEAK_EMAIL_CAMPAIGNS"),
        description="The campaigns file (default: activation/campaigns.yml).",
    )
    templates_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("templates_dir", "PEAK_EMAIL_TEMPLATES"),
        description="The templates folder (default: activation/templates).",
    )
    template_prefix: str = Field(
        "peak-",
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Prefix of the SES template names (staging and tests use their own).",
    )
    max_send_rate: float | None = Field(
        None,
        gt=0,
        description="Messages per second at most, below the account's MaxSendRate (leave room "
        "for transactional mail).",
    )
    check_suppression: bool = Field(
        True,
        description="Read the SES account suppression list before sending (false: rely on "
        "SES's own suppression, and keep no snapshot for the HubSpot lists).",
    )
    batch_size: int = Field(
        SES_BULK_LIMIT,
        ge=1,
        le=SES_BULK_LIMIT,
        validation_alias=AliasChoices("batch_size", "PEAK_EMAIL_BATCH"),
    )
    max_attempts: int = Field(5, ge=1)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    deadline_s: float = _sink_deadline()
    #: Consecutive batches SES refused whole after which the run stops.
    max_failed_batches: int = Field(3, ge=1)
    #: Ledger entries are kept this many days after their period ended.
    ledger_keep_days: int = Field(90, ge=0)

    _blanks = field_validator(
        "sender",
        "configuration_set",
        "region",
        "endpoint_url",
        "unsubscribe_secret",
        "unsubscribe_secret_id",
        mode="before",
    )(_blank_is_none)

    @property
    def secret(self) -> str:
        if self.unsubscribe_secret is None:
            return DEV_UNSUBSCRIBE_SECRET
        return self.unsubscribe_secret.get_secret_value()

    @property
    def dev_secret(self) -> bool:
        return self.unsubscribe_secret is None


class Settings(Section):
    """The whole tree: the root's own settings and one section per component."""

    model_config = SettingsConfigDict(env_prefix="PEAK_")

    lake: str = Field("./lake", description="Lake root: a local folder or s3://bucket/prefix.")
    gym_timezone: str = Field("UTC", description="Time zone of naive export timestamps.")
    engine: Engine = Field("duckdb", description="Default transform engine.")
    dbt_target: Target = Field("local", description="dbt target: local (DuckDB) or athena.")
    glue_database: str = Field("peak_processed", description="Glue database of the processed zone.")

    duckdb: DuckDBSettings = Field(default_factory=DuckDBSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    athena: AthenaSettings = Field(default_factory=AthenaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    leaderboard: LeaderboardSettings = Field(default_factory=LeaderboardSettings)
    hubspot: HubSpotSettings = Field(default_factory=HubSpotSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)

    @field_validator("gym_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Europe/London)") from exc
        return value


SECTIONS: dict[str, type[Section]] = {
    name: field.default_factory
    for name, field in Settings.model_fields.items()
    if isinstance(field.default_factory, type) and issubclass(field.default_factory, Section)
}


def env_name(section: type[BaseSettings], field: str) -> str:
    """The environment variable a field is read from (its first alias that looks like one)."""
    info: FieldInfo = section.model_fields[field]
    alias = info.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []
    for choice in choices:
        if isinstance(choice, str) and choice.isupper():
            return choice
    return f"{section.model_config.get('env_prefix', '')}{field}".upper()


def load(cls: type[Section], **overrides: Any) -> Any:
    """``cls(**overrides)``, a bad value reported as a one-line :class:`ConfigError`."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        owner: type[BaseSettings] = next(
            (s for s in (cls, *SECTIONS.values()) if s.__name__ == exc.title), cls
        )
        loc = [str(part) for part in error["loc"]]
        if owner is cls and loc and loc[0] in SECTIONS and len(loc) > 1:
            owner, loc = SECTIONS[loc[0]], loc[1:]
        field = loc[0] if loc else ""
        name = env_name(owner, field) if field in owner.model_fields else ".".join(loc)
        value = error.get("input")
        private = any(word in field for word in ("token", "secret", "url"))
        shown = "" if private or isinstance(value, (dict, SecretStr)) else f"={value!r}"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}{shown}: {message}") from None


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


__all__ = [
    "AthenaSettings",
    "DuckDBSettings",
    "EmailSettings",
    "Engine",
    "HubSpotSettings",
    "LeaderboardSettings",
    "QualitySettings",
    "RedisSettings",
    "Settings",
    "SparkSettings",
    "Target",
    "load",
    "redacted_url",
]
