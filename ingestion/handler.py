"""The ingestion Lambda: lands every export that S3 reports as created.

A thin entry point: it reads the event and the settings, builds the lake, and calls
:func:`ingestion.land.land_file` for each object. S3 event keys arrive URL-encoded. A bad file
is quarantined and reported, never raised; an exception (S3 unreachable, say) fails the
invocation so that Lambda retries it and, after that, sends the event to the dead-letter queue.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import unquote_plus

from ingestion.land import land_many, record_landing
from peak.core.lake import Lake
from peak.core.report import RunReport
from peak.core.settings import Settings

log = logging.getLogger("peak.ingestion")
log.setLevel(logging.INFO)


def sources_from_event(event: dict[str, Any]) -> list[str]:
    """The s3:// URIs of the objects an S3 event notification reports as created."""
    sources = []
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        key = unquote_plus(s3["object"]["key"])
        if key.endswith("/"):
            continue  # a "folder" marker
        sources.append(f"s3://{s3['bucket']['name']}/{key}")
    return sources


def handle(event: dict[str, Any], lake: Lake, *, now: dt.datetime | None = None) -> dict[str, Any]:
    ingested_at = now or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    report = RunReport("ingest", lake=lake.root, options={"trigger": "s3-event"})
    outcome: dict[str, list[str]] = {"landed": [], "already_landed": [], "rejected": []}
    for result in land_many(
        lake, sources_from_event(event), ingested_at=ingested_at, boto3_session=lake.boto3_session
    ):
        record_landing(report, result)
        outcome[result.status].append(result.source)
        log.info(
            "%s %s (%s rows)%s",
            result.status,
            result.source,
            result.rows,
            f": {result.code}" if result.code else "",
        )
    report.stages["ingest"] = {k: len(v) for k, v in outcome.items()}
    report.finish()
    report.save(lake)
    return {"run_id": report.run_id, **{k: len(v) for k, v in outcome.items()}}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point (``ingestion.handler.handler``)."""
    settings = Settings.load()
    return handle(event, Lake.from_uri(settings.lake))
