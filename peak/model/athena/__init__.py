"""Athena parity, proven offline: the same numbers on Athena as on DuckDB.

* :mod:`.project` compiles every model and snapshot for Athena in both forms (full refresh, and
  incremental with the relations present) against a local emulator (:mod:`.emulator`), and types
  every relation from the contracts (:mod:`.trino_types`);
* :mod:`.check` runs the hazard rules (:mod:`.rules`, :mod:`.scans`) over every compiled query:
  ``peak build --target athena --compile-only``;
* :mod:`.compare_rows` runs each model's Athena SQL on DuckDB (:mod:`.transpile`) and compares
  its rows with the local build's: ``peak build --target athena --compare``.

What this proves, and what only a real Athena run can: docs/athena.md.
"""
