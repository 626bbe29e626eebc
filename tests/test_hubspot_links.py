"""The at-risk list's link to a member's HubSpot record (issue 20).

The HubSpot sink keeps, in its sync state, the contact id HubSpot's batch upsert answered for each
contact, and the portal's id from ``GET /account-info/v3/details`` (asked once); the dashboard's
at-risk list links each member HubSpot holds to ``https://app.hubspot.com/contacts/<portal>/
record/0-1/<contact id>``. The real sink against tests/fake_hubspot.py; the real page in AppTest
on a lake the whole pipeline built.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from activation.base import SinkContext, normalise_email
from activation.hubspot import HubSpotSink
from activation.hubspot.state import SyncState
from peak.core.lake import Lake
from peak.core.settings import HubSpotSettings
from peak.model.warehouse import DuckDBWarehouse
from tests.fake_hubspot import FakeHubSpot
from tests.test_dashboard import BuiltLake, build_lake, forget_lake, open_page, sql
from tests.test_hubspot import TOKEN, Env, member, members

PORTAL = 8675309
DETAILS = "/account-info/v3/details"


def test_the_state_keeps_hubspots_contact_ids_and_asks_the_portal_once(tmp_path: Path) -> None:
    with FakeHubSpot(token=TOKEN, portal_id=PORTAL) as hub:
        env = Env(tmp_path, hub)
        rows = members(150)
        first = env.sync(rows)
        assert (first.status, first.sent) == ("ok", 150), first.to_dict()
        state = SyncState.load(env.lake)
        # every contact's id, as HubSpot answered the upsert (the fake numbers them from 1001)
        assert {e: SyncState.contact_id(entry) for e, entry in state.contacts.items()} == (
            hub.by_email
        )
        assert state.portal == {"id": str(PORTAL), "ui_domain": "app.hubspot.com"}
        one = hub.by_email["member7@example.com"]
        assert state.contact_ids()["U00007"] == one
        assert state.contact_link(one) == (
            f"https://app.hubspot.com/contacts/{PORTAL}/record/0-1/{one}"
        )
        assert len(hub.calls("GET", DETAILS)) == 1

        # a later run with a change: the id stays, the portal is not asked again
        second = env.sync([*rows[:7], member(7, visits_30d=99), *rows[8:]])
        assert second.sent == 1, second.to_dict()
        assert SyncState.load(env.lake).contact_ids()["U00007"] == one
        assert len(hub.calls("GET", DETAILS)) == 1


def test_an_eu_portal_links_to_its_own_domain(tmp_path: Path) -> None:
    with FakeHubSpot(token=TOKEN, portal_id=PORTAL, ui_domain="app-eu1.hubspot.com") as hub:
        env = Env(tmp_path, hub)
        env.sync(members(3))
        state = SyncState.load(env.lake)
        cid = hub.by_email["member1@example.com"]
        assert state.contact_link(cid) == (
            f"https://app-eu1.hubspot.com/contacts/{PORTAL}/record/0-1/{cid}"
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[BuiltLake]:
    lake = build_lake(tmp_path_factory, redis_url)
    yield lake
    forget_lake(lake)


def test_the_at_risk_list_links_members_to_their_hubspot_record(
    built: BuiltLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in built.env().items():
        monkeypatch.setenv(key, value)
    lake = Lake.from_uri(str(built.root))
    with FakeHubSpot(token=TOKEN, portal_id=PORTAL) as hub:
        sink = HubSpotSink(
            HubSpotSettings(access_token=TOKEN, base_url=hub.base_url, backoff_base_s=0.01)
        )
        ctx = SinkContext(lake, DuckDBWarehouse(built.warehouse), "run-links", dry_run=False)
        result = sink.run(ctx)
        sink.close()
    assert result.status == "ok" and result.sent > 0, result.to_dict()

    at = open_page("retention")
    at_risk = next(d.value for d in at.dataframe if "email_masked" in d.value)
    emails = dict(sql(built, "select user_id, email from dim_users"))
    linked = 0
    for _, row in at_risk.iterrows():
        cid = hub.by_email.get(normalise_email(emails[row["user_id"]]))
        if cid:
            linked += 1
            assert row["hubspot"] == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-1/{cid}"
        else:  # not in HubSpot (yet): no link, and no "None" either
            assert row["hubspot"] == ""
    assert linked > 0


def test_a_contact_the_state_holds_as_active_is_forgotten_without_a_call(tmp_path: Path) -> None:
    """The plan's ``forget`` (a state entry already active in HubSpot, its member gone from the
    mart) was never applied: the two lines that record it sat after a ``return``."""
    with FakeHubSpot(token=TOKEN, portal_id=PORTAL) as hub:
        env = Env(tmp_path, hub)
        env.sync(members(3))
        state = SyncState.load(env.lake)
        state.record(contacts={"gone@example.com": SyncState.entry("h", "active", "U09999")})
        upserts = len(hub.upsert_calls())

        result = env.sync()

        assert "gone@example.com" not in SyncState.load(env.lake).contacts
        assert result.details["forgotten"] == 1
        assert len(hub.upsert_calls()) == upserts  # nothing sent for it
