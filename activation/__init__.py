"""Activation: sinks that push dbt marts to Redis, HubSpot and SES (see README.md).

Each sink reads marts through ``peak.model.warehouse`` and returns an
``activation.base.SinkResult``; ``activation.runner`` runs them by name.
"""

#: Every sink, in a fixed order: the order of their exit-code bits (``activation.runner``).
SINK_NAMES = ("leaderboard", "hubspot", "email")
