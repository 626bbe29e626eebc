"""The campaigns: which segment of ``mart_email_targets`` gets which template, how often.

What goes to whom is declared in the repository: the ``campaigns`` section of the activation
config (``activation/campaigns.yml``, whose other sections are :mod:`activation.audience`) maps
each segment of the mart (``at_risk``, ``churned``) to a template and a cadence
(``every_days``).
:func:`load_campaigns` reads and checks it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from activation.audience import AudienceConfigError, read_config
from activation.email.errors import EmailConfigError
from activation.email.mart import SEGMENTS
from activation.email.settings import DEFAULT_CAMPAIGNS


@dataclass(frozen=True)
class Campaign:
    name: str
    segment: str
    template: str
    every_days: int
    description: str = ""

    def period(self, start: dt.date) -> str:
        """The period that starts on ``start``, as ``first..last`` (inclusive)."""
        return f"{start.isoformat()}..{(start + dt.timedelta(days=self.every_days - 1))}"


_CAMPAIGN_NAME = re.compile(r"^[a-z0-9_]{1,48}$")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


def load_campaigns(path: Path = DEFAULT_CAMPAIGNS) -> list[Campaign]:
    """The campaigns of ``campaigns.yml``, checked (:class:`EmailConfigError` says what is
    wrong)."""
    try:
        doc = read_config(path)
    except AudienceConfigError as exc:
        raise EmailConfigError(str(exc)) from None
    items = doc.get("campaigns")
    if not isinstance(items, list) or not items:
        raise EmailConfigError(f"{path}: expected a non-empty list under 'campaigns'")
    campaigns: list[Campaign] = []
    for i, item in enumerate(items):
        where = f"{path}: campaign {i + 1}"
        if not isinstance(item, dict):
            raise EmailConfigError(f"{where} is not a mapping")
        unknown = set(item) - {"name", "segment", "template", "every_days", "description"}
        if unknown:
            raise EmailConfigError(f"{where}: unknown keys {sorted(unknown)}")
        name, segment, template = item.get("name"), item.get("segment"), item.get("template")
        every = item.get("every_days")
        if not isinstance(name, str) or not _CAMPAIGN_NAME.match(name):
            raise EmailConfigError(f"{where}: name must match {_CAMPAIGN_NAME.pattern}")
        if segment not in SEGMENTS:
            raise EmailConfigError(f"{where} ({name}): segment must be one of {SEGMENTS}")
        if not isinstance(template, str) or not _TEMPLATE_NAME.match(template):
            raise EmailConfigError(f"{where} ({name}): template must match a folder name")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise EmailConfigError(f"{where} ({name}): every_days must be a whole number >= 1")
        campaigns.append(Campaign(name, segment, template, every, str(item.get("description", ""))))
    for attr in ("name", "segment"):
        seen = Counter(getattr(c, attr) for c in campaigns)
        twice = sorted(v for v, n in seen.items() if n > 1)
        if twice:
            raise EmailConfigError(f"{path}: more than one campaign with {attr} {twice}")
    return campaigns
