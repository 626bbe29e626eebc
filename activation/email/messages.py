"""What SES gets for a target: its template values (with its signed unsubscribe link), its
destination, and the ``SendBulkTemplatedEmail`` request of a batch; and, for a dry run, the
outbox: each email as SES would render it and the exact requests."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from activation.base import SinkContext, batches, write_outbox
from activation.email.mart import format_value
from activation.email.plan import Target, by_campaign
from activation.email.settings import SINK
from activation.email.templates import SINK_FIELDS, Template
from activation.unsubscribe.links import unsubscribe_url
from peak.core.settings import EmailSettings


def template_values(config: EmailSettings, target: Target, fields: Iterable[str]) -> dict[str, str]:
    """The template values of ``fields`` for one target (mart values, formatted)."""
    row = target.row
    values = {k: format_value(row.get(k)) for k in fields if k not in SINK_FIELDS}
    if "email" in values:
        values["email"] = target.email
    values["unsubscribe_url"] = unsubscribe_url(config.unsubscribe_url, target.email, config.secret)
    return values


def destination(config: EmailSettings, target: Target, template: Template) -> dict[str, Any]:
    data = template.data(template_values(config, target, template.fields))
    return {
        "Destination": {"ToAddresses": [target.email]},
        "ReplacementTemplateData": json.dumps(data, ensure_ascii=False, sort_keys=True),
    }


def bulk_request(config: EmailSettings, batch: list[Target], template: Template) -> dict[str, Any]:
    """The SendBulkTemplatedEmail request for one batch."""
    campaign = batch[0].campaign
    default = dict.fromkeys(template.data({}), "")
    request: dict[str, Any] = {
        "Source": config.sender or "",
        "Template": template.ses_name(config.template_prefix),
        "DefaultTemplateData": json.dumps(default, sort_keys=True),
        "DefaultTags": [{"Name": "campaign", "Value": campaign.name}],
        "Destinations": [destination(config, t, template) for t in batch],
    }
    if config.configuration_set:
        request["ConfigurationSetName"] = config.configuration_set
    return request


def rendered(
    config: EmailSettings, target: Target, template: Template, today: dt.date
) -> dict[str, Any]:
    """One email as the dry run's outbox shows it: who, which campaign and period, and the
    subject, HTML and text SES would make of it."""
    values = template_values(config, target, template.fields)
    return {
        "campaign": target.campaign.name,
        "period": target.campaign.period(today),
        "template": template.ses_name(config.template_prefix),
        "user_id": target.user_id,
        "to": target.email,
        "from": config.sender,
        "unsubscribe_url": values["unsubscribe_url"],
        **template.render(values),
    }


def write_dry_run(
    ctx: SinkContext,
    config: EmailSettings,
    due: Sequence[Target],
    templates: Mapping[str, Template],
    today: dt.date,
) -> int:
    """Write the outbox of a dry run: ``emails.jsonl`` (each email rendered) and
    ``send_bulk_templated_email.jsonl`` (each request as it would be sent). Returns the number
    of requests."""
    emails = (
        rendered(config, target, templates[target.campaign.template], today) for target in due
    )
    requests = (
        bulk_request(config, batch, templates[batch[0].campaign.template])
        for batch in batches(due, config.batch_size, by_campaign)
    )
    write_outbox(ctx, SINK, "emails", emails)
    write_outbox(ctx, SINK, "send_bulk_templated_email", requests)
    return sum(1 for _ in batches(due, config.batch_size, by_campaign))
