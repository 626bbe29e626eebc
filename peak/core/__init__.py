"""The foundations every stage stands on: the lake (its layout and its I/O), the ledgers, the
lake locks, the run report, the settings, the errors and the fault-injection points.

Nothing here imports a stage, the model, the operations or the CLI (``make lint`` checks it),
and everything here runs on Python 3.9 (the Glue Python-shell job imports it).
"""
