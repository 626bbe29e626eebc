"""The unsubscribe Lambda's handler, locally: function URL events (payload format 2.0) against a
local lake. The packaged function, deployed into moto with its role, is in tests/test_infra.py;
the header every e-mail carries, followed end to end, in tests/test_email.py."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from activation.unsubscribe import handler as unsubscribe_handler
from activation.unsubscribe.handler import configure, handler
from activation.unsubscribe.links import unsubscribe_url
from activation.unsubscribe.register import unsubscribed
from peak.core.lake import Lake
from peak.core.settings import EmailSettings, Settings

KEY = "the-unsubscribe-key"
BASE = "https://abc123.lambda-url.eu-west-1.on.aws/"


def event(method: str, url: str, body: str = "", base64_body: bool = False) -> dict[str, Any]:
    """What a function URL hands the function (payload format 2.0)."""
    parts = urlsplit(url)
    data = base64.b64encode(body.encode()).decode() if base64_body else body
    return {
        "version": "2.0",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": {"content-type": "application/x-www-form-urlencoded"} if body else {},
        "requestContext": {"http": {"method": method, "path": parts.path or "/"}},
        "body": data,
        "isBase64Encoded": base64_body,
    }


class FakeSecrets:
    """Secrets Manager's answer for one secret (the moto-deployed one: tests/test_infra.py)."""

    def __init__(self, value: dict[str, str]) -> None:
        self.value = value
        self.calls = 0

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.calls += 1
        return {"ARN": SecretId, "SecretString": json.dumps(self.value)}


@pytest.fixture(autouse=True)
def fresh_container() -> Any:
    """Each test is a cold start: nothing cached from another."""
    unsubscribe_handler._cached = None
    yield
    unsubscribe_handler._cached = None


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake.from_uri(str(tmp_path / "lake"))
    configure(
        Settings(lake=lake.root, email=EmailSettings(unsubscribe_secret=KEY)),
    )
    return lake


def test_a_one_click_post_unsubscribes_once(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    link = unsubscribe_url(BASE, "Member7@Example.com", KEY)
    caplog.set_level(logging.INFO)
    first = handler(event("POST", link, "List-Unsubscribe=One-Click"))
    again = handler(event("POST", link, "List-Unsubscribe=One-Click", base64_body=True))
    assert first["statusCode"] == again["statusCode"] == 200
    assert "unsubscribed" in first["body"]
    assert "member7@example.com" in unsubscribed(lake)
    [record] = [json.loads(lake.read_bytes(k)) for k in lake.list("_state/")]
    assert record["source"] == "one-click"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "member7" not in logged.lower() and "t=" not in logged
    assert "recorded (one-click, new)" in logged and "already there" in logged


def test_the_link_shows_a_page_and_changes_nothing_until_its_button(lake: Lake) -> None:
    link = unsubscribe_url(BASE, "member8@example.com", KEY)
    page = handler(event("GET", link))
    assert page["statusCode"] == 200 and page["headers"]["Cache-Control"] == "no-store"
    assert "m•••@example.com" in page["body"] and "member8@example.com" not in page["body"]
    assert '<form method="post" action="?e=' in page["body"]
    assert len(unsubscribed(lake)) == 0  # a link scanner's GET unsubscribes nobody
    query = urlsplit(link).query
    button = handler(event("POST", f"{BASE}?{query}", "List-Unsubscribe=One-Click"))
    assert button["statusCode"] == 200 and "member8@example.com" in unsubscribed(lake)


@pytest.mark.parametrize(
    "url",
    [
        BASE,  # no token
        unsubscribe_url(BASE, "member9@example.com", "another-key"),  # forged
        unsubscribe_url(BASE, "member9@example.com", KEY).replace("e=", "e=x"),  # tampered
    ],
)
def test_a_missing_or_forged_token_records_nothing(lake: Lake, url: str) -> None:
    for method in ("GET", "POST"):
        answer = handler(event(method, url, "List-Unsubscribe=One-Click"))
        assert answer["statusCode"] == 400
    assert len(unsubscribed(lake)) == 0 and lake.list("_state/") == []


def test_other_methods_are_refused(lake: Lake) -> None:
    answer = handler(event("DELETE", unsubscribe_url(BASE, "a@example.com", KEY)))
    assert answer["statusCode"] == 405 and answer["headers"]["Allow"] == "GET, POST"


def test_the_key_comes_from_secrets_manager_once(tmp_path: Path) -> None:
    lake = Lake.from_uri(str(tmp_path / "lake"))
    secrets = FakeSecrets({"PEAK_EMAIL_UNSUBSCRIBE_SECRET": KEY})
    settings = Settings(
        lake=lake.root, email=EmailSettings(unsubscribe_secret_id="peak/test/unsubscribe")
    )
    assert configure(settings, secrets)[1] == KEY
    unsubscribe_handler._cached = None
    configure(settings, secrets)  # a cold start reads it
    link = unsubscribe_url(BASE, "member3@example.com", KEY)
    assert handler(event("POST", link, "List-Unsubscribe=One-Click"))["statusCode"] == 200
    assert handler(event("POST", link, ""))["statusCode"] == 200
    assert secrets.calls == 2  # once per cold start, never per request


def test_the_public_development_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake.from_uri(str(tmp_path / "lake"))
    for name in (
        "AWS_ENDPOINT_URL",
        "PEAK_EMAIL_UNSUBSCRIBE_SECRET",
        "PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PEAK_LAKE", lake.root)
    with pytest.raises(unsubscribe_handler.NotConfigured):
        configure(Settings(lake=lake.root, email=EmailSettings()))
    dev = unsubscribe_url(BASE, "a@example.com", EmailSettings().secret)
    unsubscribe_handler._cached = None
    answer = handler(event("POST", dev, "List-Unsubscribe=One-Click"))  # the environment's
    assert answer["statusCode"] == 500 and lake.list("") == []
