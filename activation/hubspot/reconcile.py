"""What HubSpot's answer to a batch upsert means for each contact in it.

A batch answered 207 has its failed rows recorded with HubSpot's reason; the rest of the batch
counts as sent. A contact HubSpot neither refused nor confirmed is not trusted: it fails, and
the next run sends it again (a failed contact is never marked synced).
"""

from __future__ import annotations

from collections.abc import Mapping

from activation.base import RecordError, normalise_email
from activation.hubspot.client import Response
from activation.hubspot.errors import error_text
from activation.hubspot.plan import Upsert


def contact_ids(response: Response) -> dict[str, str]:
    """email -> HubSpot's contact id, for the contacts a batch upsert's answer names."""
    body = response.body if isinstance(response.body, Mapping) else {}
    out = {}
    for r in body.get("results") or []:
        if isinstance(r, Mapping) and r.get("id"):
            email_ = normalise_email((r.get("properties") or {}).get("email"))
            if email_:
                out[email_] = str(r["id"])
    return out


def settle(batch: list[Upsert], response: Response) -> tuple[list[Upsert], list[RecordError]]:
    """Which contacts of a 200/207 answer HubSpot took, and why it refused the others."""
    body = response.body if isinstance(response.body, Mapping) else {}
    by_email = {u.email: u for u in batch}
    refused: dict[str, str] = {}
    unattributed: list[str] = []
    for error in body.get("errors") or []:
        reason = error_text(error)
        context = error.get("context") if isinstance(error, Mapping) else None
        named = [
            normalise_email(v)
            for values in (context or {}).values()
            for v in (values if isinstance(values, list) else [values])
        ]
        hits = [e for e in named if e in by_email]
        for e in hits:
            refused.setdefault(e, reason)
        if not hits:
            unattributed.append(reason)
    results = body.get("results") or []
    rest = [u for u in batch if u.email not in refused]
    if len(results) < len(rest):
        # HubSpot confirmed fewer contacts than it did not refuse: trust only those it names.
        confirmed = {
            normalise_email((r.get("properties") or {}).get("email"))
            for r in results
            if isinstance(r, Mapping)
        }
        why = "; ".join(unattributed) or f"HTTP {response.status} without a result for it"
        for u in rest:
            if u.email not in confirmed:
                refused[u.email] = f"not confirmed by HubSpot: {why}"
        rest = [u for u in batch if u.email not in refused]
    errors = [
        RecordError(u.user_id or u.email, f"rejected by HubSpot: {refused[u.email]}")
        for u in batch
        if u.email in refused
    ]
    return rest, errors
