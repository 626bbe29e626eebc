"""Keeping the combined results (GX JSON under ``validations/<run_id>/`` beside the docs
folder) and rendering Data Docs from the most recent runs' results, made usable offline (remote
assets dropped, a static index of the results and suites)."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import contracts
from glue.quality.context import DOCS_SITE
from glue.quality.suite import build_suite

#: The folder beside ``docs_dir`` keeping every run's combined GX results (GX's own name for it).
RESULTS_FOLDER = "validations"
#: How many of the most recent run folders of ``validations/`` the Data Docs index lists.
DOCS_HISTORY_RUNS = 60
#: The batch identifier of the combined result (its Data Docs page name).
BATCH_ID = "staged"


def _results_root(docs_dir: Path) -> Path:
    return docs_dir.resolve().parent / RESULTS_FOLDER


def _write_result(combined: Any, docs_dir: Path, run_id: str, dataset: str) -> Path:
    path = _results_root(docs_dir) / run_id / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(combined.to_json_dict(), indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass
class _Kept:
    """A combined result kept under ``validations/``: its GX key, its JSON and its text."""

    key: Any
    data: dict
    text: str


def _load_results(docs_dir: Path) -> list[_Kept]:
    """The kept combined results of the most recent runs (their JSON is read, not parsed by GX).

    GX deserialises only what it renders; the index needs just the suite, run and status.
    """
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    root = _results_root(docs_dir)
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    out = []
    for run_dir in runs[-DOCS_HISTORY_RUNS:]:
        for path in sorted(run_dir.glob("*.json")):
            try:
                text = path.read_text(encoding="utf-8")
                data = json.loads(text)
                run_meta = data["meta"]["run_id"]
                if isinstance(run_meta, str):
                    run_meta = json.loads(run_meta)
                run_time = dt.datetime.fromisoformat(run_meta["run_time"])
                key = ValidationResultIdentifier(
                    ExpectationSuiteIdentifier(name=str(data["suite_name"])),
                    RunIdentifier(run_name=run_dir.name, run_time=run_time),
                    BATCH_ID,
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a result the quality step wrote: not listed
            out.append(_Kept(key, data, text))
    return out


def _page(docs_dir: Path, key: Any) -> Path:
    return docs_dir.joinpath("validations", *key.to_tuple()).with_suffix(".html")


def _build_docs(context: Any, suite: Any, docs_dir: Path, run_id: str) -> Path:
    """Render this run's pages and the index (over the kept results) into ``docs_dir``."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    # The suite in the store is the full one (the row suite was only for the chunks).
    context.suites.delete(suite.name)
    context.suites.add(suite)
    suite_ids = {suite.name: ExpectationSuiteIdentifier(name=suite.name)}
    entries = _load_results(docs_dir)
    store = context.validation_results_store
    rebuild: list[Any] = [suite_ids[suite.name]]
    for kept in entries:
        # The store holds results serialised as JSON: hand it the kept text as it is.
        key, name = kept.key, kept.data["suite_name"]
        store.store_backend.set(store.key_to_tuple(key), kept.text)
        if name not in suite_ids:
            dataset = name.removesuffix("_processed")
            with contextlib.suppress(KeyError):
                context.suites.add(build_suite(contracts.get(dataset)))
                suite_ids[name] = ExpectationSuiteIdentifier(name=name)
                if not (docs_dir / "expectations" / f"{name}.html").exists():
                    rebuild.append(suite_ids[name])
        is_current = key.run_id.run_name == run_id and name == suite.name
        if is_current or not _page(docs_dir, key).exists():
            rebuild.append(key)
    build_started = time.time() - 1
    context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=rebuild)
    index = docs_dir / "index.html"
    _make_offline(docs_dir, build_started, entries, sorted(suite_ids))
    return index


_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.I)
_REMOTE_LINK = re.compile(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*/?>", re.I)
_REMOTE_IMG = re.compile(r"<img[^>]*\bsrc=\"https?://[^\"]*\"[^>]*/?>", re.I)
_REMOTE_CSS_URL = re.compile(r"url\(\s*['\"]?https?://[^)]*\)", re.I)
_OFFLINE_CSS = """<style>
#peak-offline-index{font-family:sans-serif;margin:1rem 3rem}
#peak-offline-index table{border-collapse:collapse}
#peak-offline-index td,#peak-offline-index th{border:1px solid #ccc;padding:.25rem .6rem}
#peak-offline-index .failed{color:#b00020;font-weight:bold}
#peak-offline-index .passed{color:#1b5e20}
</style>"""


def _make_offline(docs_dir: Path, since: float, entries: list[_Kept], suites: list[str]) -> None:
    """Drop remote assets from the pages just written; give the index a static list."""
    for page in docs_dir.rglob("*.html"):
        if page.stat().st_mtime < since:
            continue
        text = page.read_text(encoding="utf-8")
        text = _REMOTE_SCRIPT.sub("", text)
        text = _REMOTE_LINK.sub("", text)
        text = _REMOTE_IMG.sub("", text)
        text = _REMOTE_CSS_URL.sub("none", text)
        if page == docs_dir / "index.html":
            text = text.replace("<body>", "<body>\n" + _offline_index(entries, suites), 1)
            text = text.replace("</head>", _OFFLINE_CSS + "\n</head>", 1)
        page.write_text(text, encoding="utf-8")


def _offline_index(entries: list[_Kept], suites: list[str]) -> str:
    rows = []
    for kept in sorted(entries, key=lambda e: e.key.run_id.run_time, reverse=True):
        key = kept.key
        link = "/".join(("validations", *key.to_tuple())) + ".html"
        stats = kept.data.get("statistics") or {}
        status = "passed" if kept.data.get("success") else "failed"
        meta = kept.data.get("meta") or {}
        rows.append(
            "<tr>"
            f"<td>{html.escape(str(key.run_id.run_time))[:19]}</td>"
            f"<td>{html.escape(key.run_id.run_name or '')}</td>"
            f'<td><a href="{html.escape(link)}">{html.escape(kept.data["suite_name"])}</a></td>'
            f'<td class="{status}">{status}</td>'
            f"<td>{stats.get('successful_expectations', '')}/"
            f"{stats.get('evaluated_expectations', '')}</td>"
            f"<td>{int(meta.get('rows_checked') or 0):,}</td>"
            f"<td>{html.escape(str(meta.get('batches', '')))}</td>"
            "</tr>"
        )
    suite_items = "".join(
        f'<li><a href="expectations/{html.escape(s)}.html">{html.escape(s)}</a></li>'
        for s in suites
    )
    return (
        '<section id="peak-offline-index"><h1>Peak Fitness processed-zone quality</h1>'
        "<h2>Validation results</h2><table><thead><tr><th>run time (UTC)</th><th>run</th>"
        "<th>suite</th><th>status</th><th>passed</th><th>rows</th><th>batches</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        f"<h2>Expectation suites</h2><ul>{suite_items}</ul></section>"
    )
