"""The email sink's settings (``PEAK_EMAIL_*`` and boto3's own variables) and its SES clients'
botocore configuration.

``AWS_REGION`` (else ``AWS_DEFAULT_REGION``; botocore itself reads only the latter, so the sink
passes it), ``PEAK_EMAIL_SENDER`` and ``PEAK_EMAIL_CONFIGURATION_SET`` configure the sender;
boto3's own ``AWS_ENDPOINT_URL`` points every client at an emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activation.config import read_settings

#: The sink's name: its state folder, its outbox and its line in the run report.
SINK = "email"

BULK_LIMIT = 50  # SES: at most 50 destinations per SendBulkTemplatedEmail
#: activation/, which holds the campaigns and their templates.
ACTIVATION_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CAMPAIGNS = ACTIVATION_DIR / "campaigns.yml"
DEFAULT_TEMPLATES = ACTIVATION_DIR / "templates"
DEFAULT_UNSUBSCRIBE_URL = "http://localhost:8000/unsubscribe"
#: Used when PEAK_EMAIL_UNSUBSCRIBE_SECRET is unset: public, for dry runs and emulators only.
DEV_UNSUBSCRIBE_SECRET = "peak-dev-unsubscribe-secret-NOT-FOR-PRODUCTION"


class EmailSettings(BaseSettings):
    """The email sink's settings, from the environment (or given by name in code and tests)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    sender: str | None = Field(
        None,
        validation_alias="PEAK_EMAIL_SENDER",
        description="The From address, a verified SES identity: 'Peak Fitness <hi@peak.example>'.",
    )
    configuration_set: str | None = Field(
        None,
        validation_alias="PEAK_EMAIL_CONFIGURATION_SET",
        description="SES configuration set for every send (event publishing, IP pool).",
    )
    region: str | None = Field(
        None,
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="The SES region (boto3's default chain when unset).",
    )
    endpoint_url: str | None = Field(
        None,
        validation_alias="AWS_ENDPOINT_URL",
        description="boto3's own emulator endpoint; read here only to allow the dev secret.",
    )
    unsubscribe_url: str = Field(
        DEFAULT_UNSUBSCRIBE_URL,
        validation_alias="PEAK_EMAIL_UNSUBSCRIBE_URL",
        description="The unsubscribe page; the sink appends ?e=…&t=… (signed).",
    )
    unsubscribe_secret: SecretStr | None = Field(
        None,
        validation_alias="PEAK_EMAIL_UNSUBSCRIBE_SECRET",
        description="HMAC key of unsubscribe links (secret; required for real sends).",
    )
    campaigns_file: Path = Field(DEFAULT_CAMPAIGNS, validation_alias="PEAK_EMAIL_CAMPAIGNS")
    templates_dir: Path = Field(DEFAULT_TEMPLATES, validation_alias="PEAK_EMAIL_TEMPLATES")
    template_prefix: str = Field(
        "peak-",
        pattern=r"^[A-Za-z0-9_-]*$",
        validation_alias="PEAK_EMAIL_TEMPLATE_PREFIX",
        description="Prefix of the SES template names (staging and tests use their own).",
    )
    max_send_rate: float | None = Field(
        None,
        gt=0,
        validation_alias="PEAK_EMAIL_MAX_SEND_RATE",
        description="Messages per second at most, below the account's MaxSendRate (leave room "
        "for transactional mail).",
    )
    check_suppression: bool = Field(
        True,
        validation_alias="PEAK_EMAIL_CHECK_SUPPRESSION",
        description="Read the SES v2 account suppression list before sending.",
    )
    batch_size: int = Field(BULK_LIMIT, ge=1, le=BULK_LIMIT, validation_alias="PEAK_EMAIL_BATCH")
    max_attempts: int = Field(5, ge=1, validation_alias="PEAK_EMAIL_MAX_ATTEMPTS")
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    #: Consecutive batches SES refused whole after which the run stops.
    max_failed_batches: int = Field(3, ge=1)
    #: Ledger entries are kept this many days after their period ended.
    ledger_keep_days: int = Field(90, ge=0)

    @field_validator(
        "sender", "configuration_set", "region", "endpoint_url", "unsubscribe_secret", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @classmethod
    def from_env(cls) -> EmailSettings:
        return read_settings(cls)

    @property
    def secret(self) -> str:
        if self.unsubscribe_secret is None:
            return DEV_UNSUBSCRIBE_SECRET
        return self.unsubscribe_secret.get_secret_value()

    @property
    def dev_secret(self) -> bool:
        return self.unsubscribe_secret is None


def client_config() -> Any:
    """The botocore config of every client the sink builds: botocore never retries on its own
    (a send it repeated after a lost answer could go out twice); the sink's loop retries what
    is safe to retry."""
    from botocore.config import Config  # deferred: botocore

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
