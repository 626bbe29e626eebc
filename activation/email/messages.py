"""What SES gets for a target: its template values (with its signed unsubscribe link), its
bulk entry (its data and its ``List-Unsubscribe`` header), and the SES v2 ``SendBulkEmail``
request of a batch; and, for a dry run, the outbox: each email as SES would render it, with its
headers, and the exact requests.

One-click unsubscribe (RFC 8058; Gmail and Yahoo require it of bulk senders since 2024): every
e-mail carries ``List-Unsubscribe: <link>``, the member's own signed link (an entry's
``ReplacementHeaders``), and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (the template's
``Headers``, the same for all). A mail client then POSTs ``List-Unsubscribe=One-Click`` to the
link, which the unsubscribe Lambda (:mod:`activation.unsubscribe.handler`) answers."""

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


#: The header that makes ``List-Unsubscribe`` a one-click unsubscribe (RFC 8058).
ONE_CLICK = {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"}


def list_unsubscribe(link: str) -> dict[str, str]:
    """A member's ``List-Unsubscribe`` header: their signed link, in angle brackets."""
    return {"Name": "List-Unsubscribe", "Value": f"<{link}>"}


def entry(config: EmailSettings, target: Target, template: Template) -> dict[str, Any]:
    """One ``BulkEmailEntry``: the member, their template data and their unsubscribe header."""
    values = template_values(config, target, template.fields)
    data = template.data(values)
    return {
        "Destination": {"ToAddresses": [target.email]},
        "ReplacementEmailContent": {
            "ReplacementTemplate": {
                "ReplacementTemplateData": json.dumps(data, ensure_ascii=False, sort_keys=True)
            }
        },
        "ReplacementHeaders": [list_unsubscribe(values["unsubscribe_url"])],
    }


def bulk_request(config: EmailSettings, batch: list[Target], template: Template) -> dict[str, Any]:
    """The SES v2 ``SendBulkEmail`` request for one batch (one campaign's template)."""
    campaign = batch[0].campaign
    default = dict.fromkeys(template.data({}), "")
    request: dict[str, Any] = {
        "FromEmailAddress": config.sender or "",
        "DefaultContent": {
            "Template": {
                "TemplateName": template.ses_name(config.template_prefix),
                "TemplateData": json.dumps(default, sort_keys=True),
                "Headers": [ONE_CLICK],
            }
        },
        "DefaultEmailTags": [{"Name": "campaign", "Value": campaign.name}],
        "BulkEmailEntries": [entry(config, t, template) for t in batch],
    }
    if config.configuration_set:
        request["ConfigurationSetName"] = config.configuration_set
    return request


def rendered(
    config: EmailSettings, target: Target, template: Template, today: dt.date
) -> dict[str, Any]:
    """One email as the dry run's outbox shows it: who, which campaign and period, its
    headers, and the subject, HTML and text SES would make of it."""
    values = template_values(config, target, template.fields)
    headers = [ONE_CLICK, list_unsubscribe(values["unsubscribe_url"])]
    return {
        "campaign": target.campaign.name,
        "period": target.campaign.period(today),
        "template": template.ses_name(config.template_prefix),
        "user_id": target.user_id,
        "to": target.email,
        "from": config.sender,
        "unsubscribe_url": values["unsubscribe_url"],
        "headers": {h["Name"]: h["Value"] for h in headers},
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
    ``send_bulk_email.jsonl`` (each request as it would be sent). Returns the number of
    requests."""
    emails = (
        rendered(config, target, templates[target.campaign.template], today) for target in due
    )
    requests = (
        bulk_request(config, batch, templates[batch[0].campaign.template])
        for batch in batches(due, config.batch_size, by_campaign)
    )
    write_outbox(ctx, SINK, "emails", emails)
    write_outbox(ctx, SINK, "send_bulk_email", requests)
    return sum(1 for _ in batches(due, config.batch_size, by_campaign))
