"""The email sink's name, where its campaigns and templates live, and its SES clients' botocore
configuration. Its settings are :class:`peak.core.settings.EmailSettings` (``PEAK_EMAIL_*`` and
boto3's own variables), a section of the one settings tree.

``AWS_REGION`` (else ``AWS_DEFAULT_REGION``; botocore itself reads only the latter, so the sink
passes it), ``PEAK_EMAIL_SENDER`` and ``PEAK_EMAIL_CONFIGURATION_SET`` configure the sender;
boto3's own ``AWS_ENDPOINT_URL`` points every client at an emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from activation.audience import ACTIVATION_DIR, DEFAULT_CONFIG
from peak.core.settings import EmailSettings

#: The sink's name: its state folder, its outbox and its line in the run report.
SINK = "email"

#: The activation config (campaigns and audience) and the templates folder.
DEFAULT_CAMPAIGNS = DEFAULT_CONFIG
DEFAULT_TEMPLATES = ACTIVATION_DIR / "templates"


def campaigns_file(config: EmailSettings) -> Path:
    """The campaigns file: ``PEAK_EMAIL_CAMPAIGNS``, else activation/campaigns.yml."""
    return config.campaigns_file or DEFAULT_CAMPAIGNS


def templates_dir(config: EmailSettings) -> Path:
    """The templates folder: ``PEAK_EMAIL_TEMPLATES``, else activation/templates."""
    return config.templates_dir or DEFAULT_TEMPLATES


def client_config(config: EmailSettings | None = None) -> Any:
    """The botocore config of every client the sink builds: botocore never retries on its own
    (a send it repeated after a lost answer could go out twice); the sink's loop retries what
    is safe to retry. No call waits longer than the run's deadline for an answer."""
    from botocore.config import Config  # deferred: botocore

    config = config or EmailSettings()
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=min(config.connect_timeout_s, config.deadline_s),
        read_timeout=min(config.read_timeout_s, config.deadline_s),
    )
