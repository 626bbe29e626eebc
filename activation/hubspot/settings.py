"""The HubSpot sink's name. Its settings are :class:`peak.core.settings.HubSpotSettings`
(``HUBSPOT_ACCESS_TOKEN``, ``PEAK_HUBSPOT_*``), a section of the one settings tree.

``HUBSPOT_ACCESS_TOKEN`` is a ``SecretStr``: it is never logged and never in an error or report;
without it the sink runs dry.
"""

from __future__ import annotations

#: The sink's name: its state folder, its outbox and its line in the run report.
SINK = "hubspot"
