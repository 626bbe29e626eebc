"""The ingest ledger, read by the transform: which raw files are committed to the lake.

Ingestion writes ``_state/ingest/<dataset>/<sha>.json`` last, once a file's raw bytes and raw
Parquet are in place; the transform reads only files listed here, so a crash during landing
never exposes a half-landed file. The transform's own bookmark is ``_state/transform/``.
"""

from __future__ import annotations

from typing import Any

from peak.core import layout
from peak.core.lake import Lake


def committed_files(lake: Lake, dataset: str) -> list[dict[str, Any]]:
    """The ledger entries of every landed (not rejected) file of a dataset, oldest first."""
    entries = []
    for key in lake.list(layout.ingest_ledger_prefix(dataset)):
        if key.endswith(".json"):
            entry = lake.read_json(key)
            if entry and entry.get("status") == "landed":
                entries.append(entry)
    entries.sort(key=lambda e: (e["ingested_at"], e["raw_id"]))
    return entries


def processed_raw_ids(lake: Lake, dataset: str) -> set[str]:
    return set(lake.read_json(layout.transform_ledger_key(dataset), {}).get("raw_ids", []))


def mark_processed(lake: Lake, dataset: str, raw_ids: set[str], run_id: str) -> None:
    lake.write_json(
        layout.transform_ledger_key(dataset), {"raw_ids": sorted(raw_ids), "last_run_id": run_id}
    )
