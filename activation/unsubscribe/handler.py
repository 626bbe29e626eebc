"""The unsubscribe Lambda: the endpoint of every retention e-mail's unsubscribe link.

Deployed behind a Lambda function URL (``infra/template.yaml``), it answers the link of
:mod:`activation.unsubscribe.links` (``?e=<base64url(address)>&t=<HMAC>``):

- ``POST``: RFC 8058's one-click unsubscribe (a mail client POSTs ``List-Unsubscribe=One-Click``
  to the ``List-Unsubscribe`` link), or the button of the page below. A valid token puts the
  address on the do-not-market register (:func:`activation.unsubscribe.register.unsubscribe`,
  which both marketing sinks read) and answers 200; again, 200 and nothing changes. Any body is
  accepted: RFC 8058 asks receivers to POST exactly ``List-Unsubscribe=One-Click``, and a form
  may send nothing else;
- ``GET``: the link followed from the e-mail's body. It shows a page with one button that POSTs
  back, and changes nothing itself: link scanners and previews fetch links on their own, and
  RFC 8058 says a GET must not unsubscribe;
- a missing or forged token: 400 and nothing recorded; another method: 405.

The HMAC key is read once per container from Secrets Manager
(``PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID``, JSON key ``PEAK_EMAIL_UNSUBSCRIBE_SECRET``), or from
``PEAK_EMAIL_UNSUBSCRIBE_SECRET``; the public development key is refused unless
``AWS_ENDPOINT_URL`` names an emulator. Nothing is logged of an address or a token. The handler
imports only the standard library, :mod:`peak.core` and this package (its zip holds nothing
else: ``peak.ops.deploy.lambda_zips``).
"""

from __future__ import annotations

import base64
import html
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from activation.unsubscribe.links import verify_unsubscribe
from activation.unsubscribe.register import unsubscribe
from peak.core.lake import Lake
from peak.core.settings import Settings

log = logging.getLogger(__name__)

#: What RFC 8058 has a mail client POST.
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
#: The secret's JSON key (the same name as the setting the e-mail sink reads).
SECRET_KEY = "PEAK_EMAIL_UNSUBSCRIBE_SECRET"

_cached: tuple[Settings, str] | None = None


class NotConfigured(Exception):
    """The function has no usable key or lake (a deployment error: 500)."""


def configure(settings: Settings | None = None, secrets_client: Any = None) -> tuple[Settings, str]:
    """The settings and the HMAC key, read once per container."""
    global _cached
    if _cached is None or settings is not None:
        settings = settings or Settings.load()
        email = settings.email
        if email.unsubscribe_secret_id:
            if secrets_client is None:
                import boto3  # deferred: boto3, in the Lambda runtime

                secrets_client = boto3.client("secretsmanager", region_name=email.region)
            answer = secrets_client.get_secret_value(SecretId=email.unsubscribe_secret_id)
            key = json.loads(answer["SecretString"]).get(SECRET_KEY) or ""
            if not key:
                raise NotConfigured(f"the secret holds no {SECRET_KEY}")
        elif email.dev_secret and not email.endpoint_url:
            raise NotConfigured(
                "no unsubscribe key: set PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID (the development "
                "key is public and only allowed beside an emulator)"
            )
        else:
            key = email.secret
        _cached = (settings, key)
    return _cached


def _page(status: int, title: str, text: str, form: str = "") -> dict[str, Any]:
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: Arial, sans-serif; max-width: 480px; margin: 3em auto;">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
            "Referrer-Policy": "no-referrer",
        },
        "body": body,
    }


def _masked(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'•' * 3}@{domain}"


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """A Lambda function URL request (payload format 2.0) -> its HTTP response."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method") or "")
    method = method.upper()
    if method not in ("GET", "POST"):
        response = _page(405, "Not allowed", "This address only answers unsubscribe links.")
        response["headers"]["Allow"] = "GET, POST"
        return response
    query = str(event.get("rawQueryString") or "")
    try:
        settings, key = configure()
    except Exception as exc:  # a deployment error, never the member's
        log.error("unsubscribe: not configured: %s", type(exc).__name__)
        return _page(500, "Something went wrong", "Please try again later.")
    address = verify_unsubscribe(dict(parse_qsl(query)), key)
    if address is None:
        log.info("unsubscribe: %s with an invalid or missing token", method)
        return _page(400, "This link is not valid", "Please use the link in your e-mail.")
    if method == "GET":
        form = (
            f'<form method="post" action="?{html.escape(query, quote=True)}">'
            f'<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _page(
            200,
            "Unsubscribe from Peak Fitness e-mails?",
            f"{_masked(address)} will get no more marketing e-mails from Peak Fitness.",
            form,
        )
    body = str(event.get("body") or "")
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    source = "one-click" if body.strip() == ONE_CLICK_BODY else "page"
    try:
        new = unsubscribe(Lake.from_uri(settings.lake), address, source=source)
    except Exception as exc:
        log.error("unsubscribe: cannot record it: %s", type(exc).__name__)
        return _page(500, "Something went wrong", "Please try again later.")
    log.info("unsubscribe: recorded (%s, %s)", source, "new" if new else "already there")
    return _page(
        200, "You are unsubscribed", "You will get no more marketing e-mails from Peak Fitness."
    )
