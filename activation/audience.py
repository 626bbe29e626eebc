"""The activation config's audience: who may be marketed to, and what HubSpot gets.

``activation/campaigns.yml`` declares, beside the e-mail campaigns (read by
:mod:`activation.email.campaigns`):

- ``consent.column``: the marts' column saying a member agreed to marketing (read from
  ``mart_hubspot_contacts`` and ``mart_email_targets``; ``dim_users`` when a mart lacks it). The
  one place its name is written: both sinks take it from here;
- ``hubspot.statuses``: which churn statuses of ``mart_hubspot_contacts`` become HubSpot
  contacts (the design's "CRM sync for churned users" is ``[churned]``; ``at_risk`` too lets the
  CRM act before a member is gone);
- ``hubspot.properties``: which contact properties are sent (their definitions, and the ones
  that must be sent, are :data:`activation.hubspot.properties.PROPERTIES`).

Marketing is allowed for a member whose consent column is true and who is not on the
do-not-market register (:mod:`activation.unsubscribe.register`: unsubscribed, or suppressed by
SES); an erased member is in no mart at all. :func:`load_audience` reads and checks the file;
this module imports no sink, so either sink can import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from activation.base import SinkError

#: activation/, which holds the config, the campaigns and their templates.
ACTIVATION_DIR = Path(__file__).resolve().parent
#: The activation config: the audience (this module) and the e-mail campaigns.
DEFAULT_CONFIG = ACTIVATION_DIR / "campaigns.yml"
#: The file's sections.
SECTIONS = ("consent", "hubspot", "campaigns")
#: The churn statuses a contact can be synced for (mart_hubspot_contacts holds these).
CHURN_STATUSES = ("at_risk", "churned")

_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")


class AudienceConfigError(SinkError):
    """The activation config's audience is wrong (nothing was sent)."""


@dataclass(frozen=True)
class Audience:
    consent_column: str
    hubspot_statuses: tuple[str, ...]
    hubspot_properties: tuple[str, ...]


def consented(value: Any) -> bool:
    """A consent column's value as a yes (only a true boolean, or the text "true")."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def read_config(path: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    """The activation config as data, its sections checked (:class:`AudienceConfigError`)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise AudienceConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise AudienceConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise AudienceConfigError(f"{path}: expected a mapping of {', '.join(SECTIONS)}")
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise AudienceConfigError(f"{path}: unknown sections {unknown} (known: {SECTIONS})")
    return doc


def _section(doc: Mapping[str, Any], name: str, keys: tuple[str, ...], path: Path) -> dict:
    section = doc.get(name)
    if not isinstance(section, dict):
        raise AudienceConfigError(f"{path}: '{name}' must be a mapping with {', '.join(keys)}")
    unknown = sorted(set(section) - set(keys))
    if unknown:
        raise AudienceConfigError(f"{path}: {name}: unknown keys {unknown}")
    return section


def _names(section: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = section.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise AudienceConfigError(f"{where}.{key} must be a non-empty list of names")
    if len(set(value)) != len(value):
        raise AudienceConfigError(f"{where}.{key} names one more than once")
    return tuple(value)


def load_audience(path: Path = DEFAULT_CONFIG) -> Audience:
    """The audience of the activation config at ``path``, checked."""
    doc = read_config(path)
    consent = _section(doc, "consent", ("column",), path)
    column = consent.get("column")
    if not isinstance(column, str) or not _COLUMN.match(column):
        raise AudienceConfigError(f"{path}: consent.column must be a column name")
    hubspot = _section(doc, "hubspot", ("statuses", "properties"), path)
    statuses = _names(hubspot, "statuses", f"{path}: hubspot")
    wrong = sorted(set(statuses) - set(CHURN_STATUSES))
    if wrong:
        raise AudienceConfigError(
            f"{path}: hubspot.statuses: {wrong} not churn statuses ({', '.join(CHURN_STATUSES)})"
        )
    return Audience(column, statuses, _names(hubspot, "properties", f"{path}: hubspot"))
