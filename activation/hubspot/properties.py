"""The contact properties, declared once: their definitions in HubSpot, the mart column each
comes from, and how a value is formatted all derive from :data:`PROPERTIES`. Which of them are
sent is the activation config's choice (``hubspot.properties``, :mod:`activation.audience`;
:func:`select_properties` checks it); :data:`REQUIRED` are always sent.

``peak_marketing_consent`` comes from no single column: it is true when the marts' consent column
(``consent.column``) is true and the address is not on the do-not-market register
(:mod:`activation.unsubscribe.register`); the gym lists select on it.

Before any upsert the sink makes sure the ``peak_fitness`` property group and every property it
sends exist on contacts (:func:`ensure_properties`: created when missing, patched when their
label, group or options drifted).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activation.audience import AudienceConfigError
from activation.hubspot.client import HubSpotClient

MART = "mart_hubspot_contacts"
OBJECT_TYPE = "contacts"

GROUP_NAME = "peak_fitness"
GROUP = {"name": GROUP_NAME, "label": "Peak Fitness", "displayOrder": -1}

#: The statuses the mart holds (the "to watch" set), and the one a member who left it gets.
WATCHED = ("at_risk", "churned")
ACTIVE = "active"


@dataclass(frozen=True)
class Prop:
    """One custom contact property: its HubSpot definition and the mart column it comes from."""

    name: str
    label: str
    type: str  # HubSpot property type: string | number | date | enumeration | bool
    field_type: str  # HubSpot field type: text | number | date | select | booleancheckbox
    column: str | None  # the mart column holding its value (None: derived by the sink)
    description: str
    options: tuple[tuple[str, str], ...] = ()  # (value, label), for enumeration and bool

    def definition(self) -> dict[str, Any]:
        """The body of ``POST /crm/v3/properties/contacts``."""
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": GROUP_NAME,
            "description": self.description,
        }
        if self.options:
            body["options"] = [
                {"value": value, "label": label, "displayOrder": i, "hidden": False}
                for i, (value, label) in enumerate(self.options)
            ]
        return body

    def drift(self, existing: Mapping[str, Any]) -> dict[str, Any]:
        """The ``PATCH`` body that brings HubSpot's copy back to this definition ({} if none)."""
        want = self.definition()
        patch = {
            key: want[key]
            for key in ("label", "type", "fieldType", "groupName")
            if existing.get(key) != want[key]
        }
        if self.options:
            have = {(o.get("value"), o.get("label")) for o in existing.get("options") or []}
            if have != set(self.options):
                patch["options"] = want["options"]
        return patch

    def format(self, value: Any) -> str:
        """A mart value as HubSpot wants it; ``""`` clears the property. ValueError if invalid."""
        if value is None:
            return ""
        if self.type == "date":
            if isinstance(value, dt.datetime):
                value = value.date()
            if isinstance(value, dt.date):
                return value.isoformat()
            return dt.date.fromisoformat(str(value)).isoformat()
        if self.type == "number":
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"{self.name}: {value!r} is not a finite number")
            return str(int(number)) if number.is_integer() else repr(number)
        if self.type == "bool":
            if isinstance(value, str):
                value = value.strip().lower() in ("true", "1", "yes")
            return "true" if value else "false"
        text = str(value).strip()
        if self.options and text not in self.values:
            allowed = ", ".join(v for v, _ in self.options)
            raise ValueError(f"{self.name}: {text!r} is not one of {allowed}")
        return text

    @functools.cached_property
    def values(self) -> frozenset[str]:
        """The option values (empty if the property has no options)."""
        return frozenset(v for v, _ in self.options)


PROPERTIES: tuple[Prop, ...] = (
    Prop(
        "peak_churn_status",
        "Churn status",
        "enumeration",
        "select",
        "churn_status",
        "Peak Fitness churn status: at risk, churned, or active again.",
        options=(("at_risk", "At risk"), ("churned", "Churned"), (ACTIVE, "Active")),
    ),
    Prop(
        "peak_churn_reason",
        "Churn reason",
        "string",
        "text",
        "churn_reason",
        "Why the member is at risk or churned (from the churn model).",
    ),
    Prop(
        "peak_churn_date",
        "Churn date",
        "date",
        "date",
        "churn_date",
        "When the member became at risk or churned.",
    ),
    Prop(
        "peak_last_visit_date",
        "Last visit date",
        "date",
        "date",
        "last_visit_date",
        "The member's last check-in (empty if never).",
    ),
    Prop(
        "peak_visits_30d",
        "Visits in the last 30 days",
        "number",
        "number",
        "visits_30d",
        "Check-ins in the 30 days before the churn date.",
    ),
    Prop(
        "peak_home_location",
        "Home gym",
        "string",
        "text",
        "home_location",
        "The member's home location (one HubSpot list per location).",
    ),
    Prop("peak_plan", "Membership plan", "string", "text", "plan", "The member's plan."),
    Prop("peak_join_date", "Join date", "date", "date", "join_date", "When the member joined."),
    Prop(
        "peak_user_id",
        "Peak member id",
        "string",
        "text",
        "user_id",
        "The member's id in the booking system.",
    ),
    Prop(
        "peak_marketing_opt_in",
        "Marketing opt-in (booking system)",
        "bool",
        "booleancheckbox",
        "marketing_opt_in",
        "Whether the member opted in to marketing in the booking system.",
        options=(("true", "Yes"), ("false", "No")),
    ),
    Prop(
        "peak_marketing_consent",
        "Marketing allowed (Peak Fitness)",
        "bool",
        "booleancheckbox",
        None,
        "Whether Peak Fitness may market to the contact now: opted in, not unsubscribed, not "
        "suppressed; false once the platform stops syncing the contact. The gym lists need it.",
        options=(("true", "Yes"), ("false", "No")),
    ),
)

PROPERTY_BY_NAME = {p.name: p for p in PROPERTIES}
STATUS_PROPERTY = "peak_churn_status"
LOCATION_PROPERTY = "peak_home_location"
CONSENT_PROPERTY = "peak_marketing_consent"
USER_ID_PROPERTY = "peak_user_id"
#: Always sent: the lists select on location and consent, a full resync finds our contacts by
#: their user id, and the plan tracks the status.
REQUIRED = (USER_ID_PROPERTY, STATUS_PROPERTY, LOCATION_PROPERTY, CONSENT_PROPERTY)
#: The mart's key columns, read whatever is sent.
KEY_COLUMNS = ("user_id", "email", "churn_status")
#: Every column the sink may read (the marts' contract must publish them).
MART_COLUMNS = tuple(dict.fromkeys([*KEY_COLUMNS, *(p.column for p in PROPERTIES if p.column)]))


def select_properties(names: Sequence[str]) -> tuple[Prop, ...]:
    """The properties the activation config names, in :data:`PROPERTIES` order; an unknown
    name or a missing required one is an :class:`AudienceConfigError`."""
    unknown = sorted(set(names) - set(PROPERTY_BY_NAME))
    if unknown:
        raise AudienceConfigError(
            f"hubspot.properties: unknown {unknown} (known: {', '.join(PROPERTY_BY_NAME)})"
        )
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise AudienceConfigError(f"hubspot.properties must include {', '.join(missing)}")
    return tuple(p for p in PROPERTIES if p.name in names)


def mart_columns(props: Sequence[Prop], consent_column: str) -> list[str]:
    """The mart columns a sync with these properties reads."""
    return list(
        dict.fromkeys([*KEY_COLUMNS, *(p.column for p in props if p.column), consent_column])
    )


def contact_properties(
    row: Mapping[str, Any], props: Sequence[Prop], consent: bool
) -> dict[str, str]:
    """A mart row as HubSpot contact properties (ValueError names the first invalid one);
    ``consent`` is :data:`CONSENT_PROPERTY`'s value."""
    out = {p.name: p.format(row.get(p.column)) for p in props if p.column}
    out[CONSENT_PROPERTY] = PROPERTY_BY_NAME[CONSENT_PROPERTY].format(consent)
    return out


def properties_hash(properties: Mapping[str, str]) -> str:
    """A short digest of the properties sent (names and values; order does not matter)."""
    canonical = "\x1e".join(f"{k}\x1f{v}" for k, v in sorted(properties.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def ensure_properties(client: HubSpotClient, props: Sequence[Prop]) -> dict[str, Any]:
    """Create the group and the properties (of ``props``) HubSpot lacks, patch the ones that
    drifted; what was done, for the run's details."""
    apis = client.apis()
    response = client.call(apis["properties"].get_all, OBJECT_TYPE, archived=False)
    existing = {p["name"]: p for p in response.body.get("results", [])}
    missing = [p for p in props if p.name not in existing]
    drifted = {p.name: p.drift(existing[p.name]) for p in props if p.name in existing}
    drifted = {name: patch for name, patch in drifted.items() if patch}
    details: dict[str, Any] = {"group_created": False}
    if missing or any("groupName" in patch for patch in drifted.values()):
        groups = client.call(apis["groups"].get_all, OBJECT_TYPE).body.get("results", [])
        if GROUP_NAME not in {g.get("name") for g in groups}:
            client.create(apis["groups"].create, OBJECT_TYPE, GROUP)
            details["group_created"] = True
    for prop in missing:
        client.create(apis["properties"].create, OBJECT_TYPE, prop.definition())
    for name, patch in drifted.items():
        client.call(apis["properties"].update, OBJECT_TYPE, name, patch)
    details["properties_created"] = [p.name for p in missing]
    details["properties_updated"] = sorted(drifted)
    return details
