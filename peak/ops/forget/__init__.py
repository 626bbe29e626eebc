"""``peak forget``: erase members everywhere (GDPR's right to erasure), and prove it.

A member is erased from the raw zone (each export rewritten without their rows, under its
original SHA-256), raw Parquet and the ingest ledger, the processed zone, the quarantine, the
warehouse and its snapshots, the outboxes and run reports, Athena's folders on AWS, Redis,
HubSpot (its GDPR delete) and the sinks' state; the erasure register keeps only salted hashes
of their ids and addresses, so that no export landed later brings them back and no sink sends
to them again. The run ends with the erasure report: every place searched again, with counts.

- :mod:`~peak.ops.forget.subject`: who: the ids and addresses asked for, and their closure;
- :mod:`~peak.ops.forget.stores`: every file of a store, searched and cleaned by kind;
- :mod:`~peak.ops.forget.run`: the steps in order, crash-safe, and the report.
"""

from peak.ops.forget.run import SYSTEMS, ForgetResult, forget
from peak.ops.forget.subject import parse_lines

__all__ = ["SYSTEMS", "ForgetResult", "forget", "parse_lines"]
