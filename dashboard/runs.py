"""What the pipeline recorded in the lake: run reports, Great Expectations results, freshness.

Plain functions over :class:`peak.core.lake.Lake` (a local folder or S3), no Streamlit:

* run reports ``_runs/<run_id>.json`` (:mod:`peak.core.report`): per dataset ``rows_in``,
  ``rows_valid``, ``rows_quarantined``, ``reasons`` and rejected files; the ``build`` stage
  (with ``warnings``), ``freshness`` (one entry per source) and ``activation`` (one
  :class:`activation.base.SinkResult` dict per sink);
* the transform's one-line quality summaries ``quality/results/<dataset>/<run_id>.json``
  (:func:`peak.core.layout.quality_result_key`) and Great Expectations' own results
  ``quality/validations/<run_id>/<dataset>.json`` (``glue.quality.RESULTS_FOLDER``), counts only.

Run ids start with their UTC start time, so sorting keys sorts runs. Free text that reaches a
page (errors, reasons) goes through :func:`dashboard.fmt.mask_emails`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from dashboard.fmt import mask_emails
from peak.core.lake import Lake
from peak.core.layout import QUALITY_PREFIX, quality_docs_prefix
from peak.core.report import report_keys as newest_report_keys
from peak.core.report import run_id_of

#: Run reports read (the newest).
RUNS_READ = 60
#: Where the transform writes its quality summaries (``quality_result_key``'s folder) and where
#: glue/quality/ keeps Great Expectations' results (``RESULTS_FOLDER`` beside the docs).
RESULTS_PREFIX = f"{QUALITY_PREFIX}results/"
VALIDATIONS_PREFIX = f"{QUALITY_PREFIX}validations/"
SINKS_SHOWN = ("hubspot", "email", "leaderboard")


def report_keys(lake: Lake, limit: int = RUNS_READ) -> list[str]:
    """The newest run reports' keys, oldest first."""
    return newest_report_keys(lake, limit=limit)


def _time(value: Any) -> pd.Timestamp | None:
    if not value:
        return None
    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError):
        return None


def runs(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run, newest first: what it was, how it ended, what it read and rejected."""
    rows = []
    for r in reports:
        datasets = (r.get("datasets") or {}).values()
        stages = r.get("stages") or {}
        build = stages.get("build") or {}
        started, finished = _time(r.get("started_at")), _time(r.get("finished_at"))
        seconds = (finished - started).total_seconds() if started and finished else None
        if not build:
            build_state = None
        elif "skipped" in build:
            build_state = "skipped"
        else:
            build_state = "passed" if build.get("success") else "failed"
        rows.append(
            {
                "run_id": r["run_id"],
                "command": r.get("command"),
                "status": r.get("status"),
                "started_at": started,
                "seconds": seconds,
                "rows_in": sum(d.get("rows_in", 0) for d in datasets),
                "rows_valid": sum(d.get("rows_valid", 0) for d in datasets),
                "rows_quarantined": sum(d.get("rows_quarantined", 0) for d in datasets),
                "files_rejected": sum(len(d.get("rejected_files") or []) for d in datasets),
                "build": build_state,
                "build_warnings": len(build.get("warnings") or []),
                "error": mask_emails(r.get("error")),
            }
        )
    columns = [
        "run_id",
        "command",
        "status",
        "started_at",
        "seconds",
        "rows_in",
        "rows_valid",
        "rows_quarantined",
        "files_rejected",
        "build",
        "build_warnings",
        "error",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("run_id", ascending=False, ignore_index=True)


def datasets(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """Per run and dataset that read rows: rows in, valid, quarantined, de-duplicated."""
    rows = []
    for r in reports:
        for name, d in (r.get("datasets") or {}).items():
            if not d.get("rows_in") and not d.get("rejected_files"):
                continue
            rows.append(
                {
                    "run_id": r["run_id"],
                    "started_at": _time(r.get("started_at")),
                    "dataset": name,
                    "rows_in": d.get("rows_in", 0),
                    "rows_valid": d.get("rows_valid", 0),
                    "rows_quarantined": d.get("rows_quarantined", 0),
                    "rows_deduplicated": d.get("rows_deduplicated", 0),
                    "files_rejected": len(d.get("rejected_files") or []),
                }
            )
    columns = [
        "run_id",
        "started_at",
        "dataset",
        "rows_in",
        "rows_valid",
        "rows_quarantined",
        "rows_deduplicated",
        "files_rejected",
    ]
    return pd.DataFrame(rows, columns=columns)


def quarantine_reasons(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """Quarantined rows per run, dataset and rule (a row breaking two rules counts under each)."""
    rows = [
        {
            "run_id": r["run_id"],
            "started_at": _time(r.get("started_at")),
            "dataset": name,
            "reason": code,
            "rows": n,
        }
        for r in reports
        for name, d in (r.get("datasets") or {}).items()
        for code, n in (d.get("reasons") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["run_id", "started_at", "dataset", "reason", "rows"])


def rejected_files(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """Files rejected whole, newest run first: which, why, where the bytes are kept."""
    rows = [
        {
            "run_id": r["run_id"],
            "dataset": name,
            "file": str(f.get("file", "")).rsplit("/", 1)[-1],
            "rule": f.get("code"),
            "reason": mask_emails(f.get("reason")),
        }
        for r in reports
        for name, d in (r.get("datasets") or {}).items()
        for f in d.get("rejected_files") or []
    ]
    frame = pd.DataFrame(rows, columns=["run_id", "dataset", "file", "rule", "reason"])
    return frame.sort_values("run_id", ascending=False, kind="stable", ignore_index=True)


def freshness(reports: list[dict[str, Any]], now: dt.datetime | None = None) -> pd.DataFrame:
    """The newest run's source freshness (dbt's thresholds), with each source's age now."""
    now = now or dt.datetime.now(dt.UTC)
    for r in sorted(reports, key=lambda r: r["run_id"], reverse=True):
        entries = (r.get("stages") or {}).get("freshness")
        if not isinstance(entries, list) or not entries:
            continue
        rows = []
        for e in entries:
            loaded = _time(e.get("max_loaded_at"))
            if loaded is not None and loaded.tzinfo is None:
                loaded = loaded.tz_localize("UTC")
            age_now = (pd.Timestamp(now) - loaded).total_seconds() / 3600 if loaded else None
            rows.append(
                {
                    "source": e.get("source"),
                    "status": e.get("status"),
                    "max_loaded_at": loaded,
                    "age_hours_at_run": e.get("age_hours"),
                    "age_hours_now": age_now,
                    "run_id": r["run_id"],
                }
            )
        return pd.DataFrame(rows)
    columns = ["source", "status", "max_loaded_at", "age_hours_at_run", "age_hours_now", "run_id"]
    return pd.DataFrame([], columns=columns)


def activation(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run and sink, newest first: sent, unchanged, failed, retried, status."""
    rows = []
    for r in reports:
        stage = (r.get("stages") or {}).get("activation")
        if not isinstance(stage, dict) or not stage:
            continue
        base = {"run_id": r["run_id"], "started_at": _time(r.get("started_at"))}
        if "skipped" in stage and not isinstance(stage["skipped"], dict):
            rows.append({**base, "sink": "all", "status": "skipped", "error": stage["skipped"]})
            continue
        for sink, result in stage.items():
            if not isinstance(result, dict):
                continue
            rows.append(
                {
                    **base,
                    "sink": sink,
                    "status": result.get("status"),
                    "dry_run": bool(result.get("dry_run")),
                    "records": result.get("records", 0),
                    "sent": result.get("sent", 0),
                    "unchanged": result.get("unchanged", 0),
                    "failed": result.get("failed", 0),
                    "retried": result.get("retried", 0),
                    "error": result.get("error"),
                }
            )
    columns = [
        "run_id",
        "started_at",
        "sink",
        "status",
        "dry_run",
        "records",
        "sent",
        "unchanged",
        "failed",
        "retried",
        "error",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["error"] = frame["error"].map(mask_emails)
    return frame.sort_values(["run_id", "sink"], ascending=[False, True], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Great Expectations
# ---------------------------------------------------------------------------------------------


def quality_result_keys(lake: Lake, limit: int = RUNS_READ) -> list[str]:
    """The quality summaries of the newest ``limit`` runs (per dataset), oldest first."""
    keys = [k for k in lake.list(RESULTS_PREFIX) if k.endswith(".json")]
    run_ids = sorted({run_id_of(k) for k in keys})[-limit:]
    keep = set(run_ids)
    return sorted((k for k in keys if run_id_of(k) in keep), key=run_id_of)


def quality_results(lake: Lake, keys: Iterable[str]) -> pd.DataFrame:
    """One row per run and dataset: passed or not, expectations, rows checked, what failed."""
    rows = []
    for key in keys:
        try:
            result = json.loads(lake.read_bytes(key))
        except (OSError, ValueError):
            continue
        failed = result.get("failed") or []
        rows.append(
            {
                "run_id": run_id_of(key),
                "dataset": result.get("dataset") or key.split("/")[-2],
                "success": bool(result.get("success")),
                "expectations": result.get("expectations"),
                "rows_checked": result.get("rows_checked"),
                "batches": result.get("batches"),
                "failed": len(failed),
                "failed_expectations": ", ".join(
                    f"{f.get('expectation')}({f['column']})" if f.get("column") else str(f)
                    for f in failed
                ),
            }
        )
    columns = [
        "run_id",
        "dataset",
        "success",
        "expectations",
        "rows_checked",
        "batches",
        "failed",
        "failed_expectations",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["run_id", "dataset"], ascending=[False, True], ignore_index=True)


def validation_key(run_id: str, dataset: str) -> str:
    return f"{VALIDATIONS_PREFIX}{run_id}/{dataset}.json"


def expectations(lake: Lake, run_id: str, dataset: str) -> pd.DataFrame:
    """Great Expectations' result of one dataset in one run, one row per expectation: its
    type, column, contract rule, who evaluated it, success and counts (never values)."""
    key = validation_key(run_id, dataset)
    columns = [
        "expectation",
        "column",
        "rule",
        "evaluated_by",
        "success",
        "element_count",
        "unexpected_count",
        "unexpected_percent",
    ]
    if not lake.exists(key):
        return pd.DataFrame([], columns=columns)
    data = json.loads(lake.read_bytes(key))
    rows = []
    for item in data.get("results") or []:
        config = item.get("expectation_config") or {}
        kwargs, meta = config.get("kwargs") or {}, config.get("meta") or {}
        result = item.get("result") or {}
        column = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
        rows.append(
            {
                "expectation": config.get("type"),
                "column": column or meta.get("column"),
                "rule": meta.get("rule"),
                "evaluated_by": meta.get("evaluated_by"),
                "success": bool(item.get("success")),
                "element_count": result.get("element_count"),
                "unexpected_count": result.get("unexpected_count"),
                "unexpected_percent": result.get("unexpected_percent"),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def docs_index(lake: Lake) -> str:
    """Where the Data Docs site's index is (a path or an s3:// URI)."""
    return lake.uri(f"{quality_docs_prefix()}index.html")
