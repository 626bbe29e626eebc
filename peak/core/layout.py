"""The lake's layout: every key the platform writes, defined once.

Keys are relative to the lake root (``raw/members/ingest_date=2026-11-25/<sha>.csv``); the lake
itself (:mod:`peak.core.lake`) reads and writes them, locally or on S3. The zones, their
retention and their purpose are described in ``docs/architecture.md``.
"""

from __future__ import annotations


def raw_key(dataset: str, ingest_date: str, raw_id: str, ext: str) -> str:
    """An export's original bytes (the audit trail, 30 days)."""
    return f"raw/{dataset}/ingest_date={ingest_date}/{raw_id}.{ext}"


def raw_parquet_key(dataset: str, ingest_date: str, raw_id: str) -> str:
    """The same rows as Parquet: text columns plus lineage."""
    return f"raw_parquet/{dataset}/ingest_date={ingest_date}/{raw_id}.parquet"


def processed_prefix(dataset: str) -> str:
    return f"processed/{dataset}/"


#: The one file of a processed partition (the DuckDB engine stages it under the same name).
PARTITION_FILE = "data.parquet"


def processed_key(dataset: str, dt: str) -> str:
    """One partition of the processed zone: exactly one file, replaced whole."""
    return f"processed/{dataset}/dt={dt}/{PARTITION_FILE}"


def dt_of_processed_key(key: str) -> str:
    return key.rsplit("/dt=", 1)[1].split("/", 1)[0]


def quarantine_rows_key(dataset: str, ingest_date: str, raw_id: str) -> str:
    """Rejected rows of one export, with original values, lineage and reason codes."""
    return f"quarantine/{dataset}/rows/ingest_date={ingest_date}/{raw_id}.parquet"


def quarantine_file_key(dataset: str, ingest_date: str, raw_id: str, ext: str) -> str:
    """A rejected file, byte for byte; its reason sits beside it as ``.reason.json``."""
    return f"quarantine/{dataset}/files/ingest_date={ingest_date}/{raw_id}.{ext}"


def ingest_ledger_prefix(dataset: str) -> str:
    return f"_state/ingest/{dataset}/"


def ingest_ledger_key(dataset: str, raw_id: str) -> str:
    """Written last by ingestion: a file is committed (visible to transform) once this exists."""
    return f"_state/ingest/{dataset}/{raw_id}.json"


def transform_ledger_key(dataset: str) -> str:
    """The raw files the transform has processed (our job bookmark)."""
    return f"_state/transform/{dataset}.json"


#: One transform at a time per lake: an ``flock`` on it locally, a lock object on S3.
TRANSFORM_LOCK_KEY = "_state/transform.lock"

#: Every command's JSON run report.
RUNS_PREFIX = "_runs/"


def run_report_key(run_id: str) -> str:
    return f"{RUNS_PREFIX}{run_id}.json"


def staging_prefix(run_id: str) -> str:
    return f"_staging/{run_id}/"


#: Great Expectations' home: ``data_docs/`` (the site), ``validations/`` (its full results,
#: written by glue/quality/) and ``results/`` (the transform's one-line summaries).
QUALITY_PREFIX = "quality/"
QUALITY_DOCS = "data_docs"


def quality_docs_prefix() -> str:
    return f"{QUALITY_PREFIX}{QUALITY_DOCS}/"


def quality_result_key(dataset: str, run_id: str) -> str:
    return f"{QUALITY_PREFIX}results/{dataset}/{run_id}.json"


#: dbt's DuckDB warehouse (the local target; ``profiles.yml.example`` names the same file) and
#: the read-only copy every consumer opens, published after each passing ``dbt build``.
WAREHOUSE_KEY = "warehouse.duckdb"
SERVING_WAREHOUSE_KEY = "warehouse.serving.duckdb"


def outbox_prefix(sink: str, run_id: str) -> str:
    """What a dry run of an activation sink would have sent."""
    return f"outbox/{sink}/{run_id}/"


def activation_state_key(sink: str, name: str = "state.json") -> str:
    """An activation sink's sync state (what was last sent successfully)."""
    return f"_state/activation/{sink}/{name}"


#: One activation at a time per lake (the sinks' state and the e-mail ledger): see peak.core.locks.
ACTIVATION_LOCK_KEY = activation_state_key("_lock", "activate.lock")


#: The register of who unsubscribed from marketing: one small object per address, named by the
#: address's hash (never the address), written once (activation/unsubscribe/register.py; the
#: unsubscribe Lambda writes it, both marketing sinks read it).
UNSUBSCRIBES_PREFIX = activation_state_key("email", "unsubscribes/")
#: The register's first form, one JSON file of addresses (read, never written any more).
LEGACY_UNSUBSCRIBES_KEY = activation_state_key("email", "unsubscribes.json")
#: The e-mail audience's addresses on SES's suppression list when the e-mail sink last read it
#: (address hashes and reasons), for the HubSpot sink's lists.
SUPPRESSED_KEY = activation_state_key("email", "suppressed.json")


#: The register of erased members (salted hashes only, peak.core.erasure): read by ingestion
#: to drop their rows from any later export, written by ``peak forget``.
ERASURE_REGISTER_KEY = "_state/erasure/register.json"
#: An erasure under way: its subject in plain, until the erasure is proven complete (so a
#: killed ``peak forget`` can finish), then removed.
ERASURE_PENDING_PREFIX = "_state/erasure/pending/"


def unsubscribe_key(address_key: str) -> str:
    """One address's unsubscribe record, named by :func:`activation.addresses.address_key`."""
    return f"{UNSUBSCRIBES_PREFIX}{address_key}.json"
