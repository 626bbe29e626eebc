"""The platform's errors: one tree, rooted at :class:`PeakError`, one branch per stage.

Every error the platform raises on purpose is a :class:`PeakError` whose message is the one line
the CLI prints (``error: <message>``) and the run report records; a stage's error names the
file, the row, the rule or the setting that caused it. Code that must tell stages apart catches
the stage's class; the CLI catches :class:`PeakError` and anything unexpected alike, and prints
one line either way (``PEAK_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations


class PeakError(Exception):
    """An error of the platform, its message one line fit for the CLI."""


class ConfigError(PeakError, ValueError):
    """A setting or an argument is invalid; the message names the variable or option."""


class LakeError(PeakError):
    """The lake cannot be reached, addressed or written as asked."""


class LockHeld(PeakError):
    """Another run holds the stage's lake lock; the message names the holder."""


class IngestError(PeakError):
    """Landing an export failed (a rejected file is kept in quarantine, not raised)."""


class TransformError(PeakError):
    """Validating, de-duplicating or publishing the processed zone failed."""


class ModelError(PeakError):
    """dbt, the Glue catalog or the warehouse failed."""


class ActivationError(PeakError):
    """A sink could not do its work (unreachable service, consistency check failed, ...)."""


class DashboardError(PeakError):
    """The dashboard cannot show what it was asked for."""


class OpsError(PeakError):
    """Packaging, costing or pruning failed."""
