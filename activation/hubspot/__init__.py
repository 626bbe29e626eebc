"""The HubSpot sink: churned and at-risk members (``mart_hubspot_contacts``) to HubSpot
contacts, and one contact list per gym.

One job per module, each importing only the ones above it:

- :mod:`~activation.hubspot.settings`: the sink's name (its settings are
  :class:`peak.core.settings.HubSpotSettings`, a section of the one settings tree);
- :mod:`~activation.hubspot.errors`: ``HubSpotError``, and HubSpot's error answers in one line;
- :mod:`~activation.hubspot.client`: the API objects and the one call loop (pacing, retries,
  which answers are worth a retry, the token scrubbed from every message);
- :mod:`~activation.hubspot.properties`: the contact properties, declared once, and keeping them
  in HubSpot;
- :mod:`~activation.hubspot.state`: the sync state (what was last synced);
- :mod:`~activation.hubspot.lists`: one contact list per location;
- :mod:`~activation.hubspot.plan`: which contacts to upsert, which are unchanged or invalid;
- :mod:`~activation.hubspot.reconcile`: what HubSpot's answer to a batch means per contact;
- :mod:`~activation.hubspot.sink`: ``HubSpotSink``: a run, and the upsert loop that splits a
  batch HubSpot refuses for one value.

Pacing and retries come from :mod:`activation.pacing`, the sync state's journal from
:mod:`activation.journal`. This package's own namespace holds the names other stages use.
"""

from activation.hubspot.sink import HubSpotSink

__all__ = ["HubSpotSink"]
