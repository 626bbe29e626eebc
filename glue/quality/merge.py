"""GX's per-chunk results made into one result per expectation: counts summed over the
chunks, the first failing observation kept, raised exceptions and failures redacted (no email
address reaches a result, a log or Data Docs)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from glue.quality.suite import _exp_column

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def _redact(text: Any) -> Any:
    if isinstance(text, str):
        return _EMAIL.sub("<redacted>", text)
    return text


def _exception(info: Any) -> dict | None:
    """The first raised exception of a GX result's exception_info, redacted, or None."""
    if not isinstance(info, dict):
        return None
    candidates = [info] if "raised_exception" in info else list(info.values())
    for c in candidates:
        if isinstance(c, dict) and c.get("raised_exception"):
            return {
                "raised_exception": True,
                "exception_message": _redact(str(c.get("exception_message") or ""))[:1000],
                "exception_traceback": _redact(str(c.get("exception_traceback") or ""))[-4000:],
            }
    return None


class _Merged:
    """One row expectation's result summed over chunks."""

    _COUNTS = ("element_count", "unexpected_count", "missing_count")

    def __init__(self, config: Any) -> None:
        self.config = config
        self.success = True
        self.chunks = 0
        self.failed_chunks = 0
        self.counts: dict[str, int] = {}
        self.observed: Any = None
        self.details: Any = None
        self._observed_failing = False
        self.exception: dict | None = None

    def add(self, r: Any) -> None:
        self.chunks += 1
        result = dict(r.result or {})
        exc = _exception(r.exception_info)
        if exc and self.exception is None:
            self.exception = exc
        if not r.success:
            self.success = False
            self.failed_chunks += 1
        for k in self._COUNTS:
            if k in result and result[k] is not None:
                self.counts[k] = self.counts.get(k, 0) + int(result[k])
        # Keep the first chunk's observation, or the first failing chunk's once one fails.
        if "observed_value" in result and (
            self.observed is None or (not r.success and not self._observed_failing)
        ):
            self.observed = result["observed_value"]
            self.details = copy.deepcopy(result.get("details"))
            self._observed_failing = not r.success
        elif not r.success and isinstance(self.details, dict):
            # Column-set mismatches of different files: report every missing/extra column.
            mine = self.details.get("mismatched")
            theirs = (result.get("details") or {}).get("mismatched")
            if isinstance(mine, dict) and isinstance(theirs, dict):
                for k in ("missing", "unexpected"):
                    merged = {*mine.get(k, []), *theirs.get(k, [])}
                    if merged:
                        mine[k] = sorted(merged)

    def to_result(self) -> dict:
        if not self.chunks:  # never evaluated: must not read as a pass
            self.exception = {
                "raised_exception": True,
                "exception_message": "the expectation was not evaluated on any batch",
                "exception_traceback": None,
            }
        result: dict[str, Any] = {}
        if self.counts:
            element = self.counts.get("element_count", 0)
            unexpected = self.counts.get("unexpected_count", 0)
            result.update(element_count=element, unexpected_count=unexpected)
            if "missing_count" in self.counts:
                missing = self.counts["missing_count"]
                nonmissing = element - missing
                result["missing_count"] = missing
                result["missing_percent"] = missing / element * 100 if element else None
                result["unexpected_percent_total"] = unexpected / element * 100 if element else None
                result["unexpected_percent_nonmissing"] = (
                    unexpected / nonmissing * 100 if nonmissing else None
                )
                result["unexpected_percent"] = result["unexpected_percent_nonmissing"]
            else:
                result["unexpected_percent"] = unexpected / element * 100 if element else None
        if self.observed is not None:
            result["observed_value"] = self.observed
        if self.details is not None:
            result["details"] = self.details
        return {
            "success": self.success and self.exception is None,
            "result": result,
            "meta": {"chunks": self.chunks, "failed_chunks": self.failed_chunks},
            "exception_info": self.exception
            or {"raised_exception": False, "exception_message": None, "exception_traceback": None},
        }


def _failure(config: Any, res: dict) -> dict:
    meta = dict(config.meta or {})
    result = res.get("result") or {}
    observed: dict[str, Any] = {}
    column = _exp_column(config)
    if "unexpected_count" in result:
        for k in ("element_count", "unexpected_count", "unexpected_percent", "missing_count"):
            if k in result:
                observed[k] = result[k]
    elif config.type == "expect_table_columns_to_match_set":
        mismatched = ((result.get("details") or {}).get("mismatched")) or {}
        observed["missing"] = sorted(mismatched.get("missing") or [])
        observed["unexpected"] = sorted(mismatched.get("unexpected") or [])
        column = ",".join([*observed["missing"], *observed["unexpected"]]) or None
    elif "observed_value" in result:
        observed["observed_value"] = result["observed_value"]
        details = result.get("details") or {}
        for k, v in details.items():
            if isinstance(v, (int, float, str)) and k not in ("unexpected_rows", "seconds"):
                observed[k] = v
        if meta.get("check") == "null_fraction":  # the columns above their bound
            column = ",".join(k.split(".", 1)[1] for k in details if k.startswith("null_fraction."))
    exc = res.get("exception_info") or {}
    if exc.get("raised_exception"):
        observed["error"] = (exc.get("exception_message") or "exception").splitlines()[0][:300]
    out = {
        "expectation": config.type,
        "column": column,
        "observed": json.loads(json.dumps(observed, default=str)),
        "evaluated_by": meta.get("evaluated_by", "great_expectations"),
    }
    if meta.get("rule"):
        out["rule"] = meta["rule"]
    return json.loads(_redact(json.dumps(out)))
