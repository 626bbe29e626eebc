"""The ``peak`` command line: every stage of the daily batch, locally or against AWS.

Each command writes a JSON run report to ``<lake>/_runs/<run_id>.json``, shows progress on long
work and a summary table at the end, and exits non-zero with a one-line error on failure.
The app and what the commands share live in :mod:`peak.cli.app`; each command group is a module
of its own, registered here in the order ``peak --help`` lists them.
"""

from __future__ import annotations

from peak.cli import activate, dashboard, forget, model, ops, pipeline
from peak.cli.app import app, console_script

for _group in (pipeline, model, activate, dashboard, ops, forget):
    _group.register(app)

__all__ = ["app", "console_script"]
