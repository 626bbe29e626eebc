"""The calendar soak (tests/soak.py) on a short calendar: every boundary that matters, once.

Day 1, day 31 (raw retention), a leap day, both daylight-saving changes, day 91 (quarantine
retention), ISO week 53 and the year end (days 366 and 367: processed retention). ``make soak``
runs the 400-day calendar (``PEAK_SOAK=full``).
"""

from __future__ import annotations

import os

import pytest

from tests import soak
from tests.fake_hubspot import FakeHubSpot
from tests.fake_sesv2 import FakeSesV2

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("soak")]

TOKEN = "pat-soak-0000"
SENDER = "hi@peak.example"


def test_the_daily_cycle_keeps_its_invariants_across_the_calendar(
    tmp_path, redis_url, redis_prefix
):
    full = os.environ.get("PEAK_SOAK") == "full"
    calendar = soak.full_calendar() if full else soak.SHORT_CALENDAR
    with FakeHubSpot(token=TOKEN) as hub, FakeSesV2(verified=(SENDER,)) as ses:
        env = {
            "REDIS_URL": redis_url,
            "PEAK_LEADERBOARD_PREFIX": redis_prefix,
            "HUBSPOT_ACCESS_TOKEN": TOKEN,
            "HUBSPOT_BASE_URL": hub.base_url,
            "AWS_ACCESS_KEY_ID": ses.access_key,
            "AWS_SECRET_ACCESS_KEY": ses.secret_key,
            "AWS_REGION": ses.region,
            "AWS_DEFAULT_REGION": ses.region,
            "AWS_ENDPOINT_URL": ses.base_url,
            "PEAK_EMAIL_SENDER": f"Peak Fitness <{SENDER}>",
        }
        days = soak.soak(tmp_path, calendar, env, sent_emails=lambda: len(ses.messages))
    assert [d.day for d in days] == calendar
    assert all(set(d.sinks) == {"leaderboard", "hubspot", "email"} for d in days)
    assert sum(d.rows_in.get("attendance", 0) for d in days) > 0
