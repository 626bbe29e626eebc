"""``peak cost``: what the deployment costs a month, from the lake itself.

The estimate reads only the lake: the bytes in each zone (object listings with sizes) and the
run reports under ``_runs/`` of the last ``days`` days. Per service:

- **S3 storage**: bytes per zone x the Standard price. The lake's own retention
  (``peak/ops/prune.py``) bounds it.
- **Glue**: every transform run report (the Glue jobs', or a local ``peak transform``/``peak run``
  as a proxy when there is none yet): duration -> DPU-hours. Spark runs use the template's
  workers (``--workers``/``--worker-type``) at FLEX or STANDARD prices per
  ``--execution-class``; DuckDB runs are the Python-shell job's, 1 DPU at the Python-shell
  price (it has no FLEX class). Each run is billed at least a minute, plus the job's start
  (installing the wheel's requirements), estimated.
- **Athena**: bytes scanned recorded in run reports (``athena_bytes_scanned`` in a stage:
  ``build`` from dbt-athena's adapter responses, ``warehouse`` from activation's reads), else
  *estimated*: every build reads the whole processed zone once (an upper bound: Parquet lets
  Athena read only the columns and days it needs) and each query is billed at least 10 MB.
- **CodeBuild** (dbt and activation), **Lambda** (ingestion), **Secrets Manager**, **SES**,
  **Step Functions**: from the reports when they exist, else the stated assumption.

Months are 30 days: totals over the window are scaled by ``30 / days observed``. Prices are
list prices in one place (:data:`PRICES`), with their source and the date they were taken;
always-free allowances are subtracted where AWS grants them to every account (the 12-month
and credit-based free tiers differ by account and are not). The design budgets Glue at about
$1.20 and Athena at about $0.50 a month (docs/architecture.md, "Design targets").
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from peak.core.lake import Lake
from peak.core.report import ATHENA_BYTES_SCANNED, load_reports, report_keys
from peak.ops import deploy, prune

# ---------------------------------------------------------------------------------------------
# Prices: list prices, eu-west-1 (Ireland), USD. Source: the AWS pricing pages named below,
# as recorded on PRICES_DATE. Check them before a budget discussion: prices change by region.
# ---------------------------------------------------------------------------------------------

PRICES_DATE = "2026-11-25"
PRICES_REGION = "eu-west-1"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


PRICES: dict[str, Price] = {
    "s3_gb_month": Price(0.023, "GB-month, S3 Standard", "aws.amazon.com/s3/pricing"),
    "glue_dpu_hour": Price(0.44, "DPU-hour, Glue ETL standard", "aws.amazon.com/glue/pricing"),
    "glue_flex_dpu_hour": Price(0.29, "DPU-hour, Glue ETL flex", "aws.amazon.com/glue/pricing"),
    "glue_pyshell_dpu_hour": Price(
        0.44, "DPU-hour, Glue Python shell", "aws.amazon.com/glue/pricing"
    ),
    "athena_tb": Price(5.00, "TB scanned (10 MB minimum a query)", "aws.amazon.com/athena/pricing"),
    "codebuild_minute": Price(
        0.005, "build minute, general1.small Linux", "aws.amazon.com/codebuild/pricing"
    ),
    "lambda_gb_second": Price(0.0000166667, "GB-second, x86", "aws.amazon.com/lambda/pricing"),
    "lambda_request": Price(0.0000002, "request", "aws.amazon.com/lambda/pricing"),
    "secret_month": Price(0.40, "secret-month", "aws.amazon.com/secrets-manager/pricing"),
    "ses_email": Price(0.0001, "email ($0.10 per 1,000)", "aws.amazon.com/ses/pricing"),
    "sfn_transition": Price(
        0.000025, "state transition, standard", "aws.amazon.com/step-functions/pricing"
    ),
    "cloudwatch_alarm": Price(0.10, "alarm-month", "aws.amazon.com/cloudwatch/pricing"),
}

#: Always-free allowances (every account, every month): aws.amazon.com/free, same date.
ALWAYS_FREE = {
    "lambda_requests": 1_000_000,
    "lambda_gb_seconds": 400_000,
    "codebuild_minutes": 100,
    "sfn_transitions": 4_000,
    "cloudwatch_alarms": 10,
}

GLUE_MIN_BILLED_SECONDS = 60
#: A Glue job's start before our code runs: pip installs the wheel's requirements (estimate).
GLUE_START_SECONDS = 60
ATHENA_MIN_BYTES = 10 * 1024**2
TB = 1024**4
GB = 1024**3

#: The design's budget, USD a month (docs/architecture.md, "Design targets").
BUDGET = {"glue": 1.20, "athena": 0.50, "hubspot": 0.00}

#: Assumptions when the reports have nothing to measure (each labelled "assumed").
ASSUMED_BUILDS_PER_DAY = 1
ASSUMED_DBT_NODES = 110
ASSUMED_BUILD_MINUTES = 6.0  # dbt build on Athena, pip install from the cache included
ASSUMED_ACTIVATION_MINUTES = 3.0
ASSUMED_LAMBDA_SECONDS = 2.0
#: Step Functions transitions of one daily execution (choice, transform, dbt, activation...).
PIPELINE_TRANSITIONS = 6
MONTH_DAYS = 30

# ---------------------------------------------------------------------------------------------
# Inputs from the lake.
# ---------------------------------------------------------------------------------------------


def zone_bytes(lake: Lake) -> dict[str, dict[str, int]]:
    """Zone -> {"files", "bytes"}: the retention zones, then everything else as ``other``."""
    out: dict[str, dict[str, int]] = {}
    covered: list[str] = []
    for zone, prefixes in prune.zone_prefixes().items():
        stats = out.setdefault(zone, {"files": 0, "bytes": 0})
        for prefix in prefixes:
            covered.append(prefix)
            for entry in prune.scan(lake, prefix):
                stats["files"] += 1
                stats["bytes"] += entry.size
    other = {"files": 0, "bytes": 0}
    for entry in prune.scan(lake, ""):
        if not entry.key.startswith(tuple(covered)):
            other["files"] += 1
            other["bytes"] += entry.size
    out["other"] = other
    return out


def run_reports(lake: Lake, since: dt.datetime) -> list[dict[str, Any]]:
    """The run reports started since ``since`` (naive UTC)."""
    reports = load_reports(lake, report_keys(lake, since=since))
    return [r for r in reports if r.get("started_at")]


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _seconds(report: dict[str, Any]) -> float:
    start, end = _time(report.get("started_at")), _time(report.get("finished_at"))
    return max(0.0, (end - start).total_seconds()) if start and end else 0.0


def _engine(report: dict[str, Any]) -> str | None:
    if report.get("command") == "transform":
        return (report.get("options") or {}).get("engine") or (
            (report.get("stages") or {}).get("transform") or {}
        ).get("engine")
    if report.get("command") == "run" and "transform" in (report.get("stages") or {}):
        return report["stages"]["transform"].get("engine")
    return None


def _athena_bytes(report: dict[str, Any]) -> int | None:
    total, seen = 0, False
    for stage in (report.get("stages") or {}).values():
        if isinstance(stage, dict) and isinstance(stage.get(ATHENA_BYTES_SCANNED), int | float):
            total += int(stage[ATHENA_BYTES_SCANNED])
            seen = True
    return total if seen else None


# ---------------------------------------------------------------------------------------------
# The estimate.
# ---------------------------------------------------------------------------------------------


@dataclass
class Line:
    service: str
    usage: str
    basis: str  # measured | estimated | assumed | fixed
    list_usd: float
    billed_usd: float
    budget_usd: float | None = None
    note: str = ""

    @property
    def status(self) -> str:
        if self.budget_usd is None:
            return "no budget line"
        return "within budget" if self.billed_usd <= self.budget_usd + 1e-9 else "over budget"


@dataclass
class Estimate:
    lake: str
    window_days: int
    observed_days: float
    lines: list[Line] = field(default_factory=list)
    zones: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total_usd(self) -> float:
        return sum(line.billed_usd for line in self.lines)

    @property
    def budget_usd(self) -> float:
        return sum(BUDGET.values())

    @property
    def budgeted_usd(self) -> float:
        """The billed cost of the services the design budgets (the budget's like for like)."""
        return sum(line.billed_usd for line in self.lines if line.budget_usd is not None)

    @property
    def status(self) -> str:
        """Over budget when any budgeted service is; services without a budget line (S3,
        CodeBuild, the secret...) are in the total but not judged against the budget."""
        over = any(line.status == "over budget" for line in self.lines)
        return "over budget" if over else "within budget"

    def to_dict(self) -> dict[str, Any]:
        return {
            "lake": self.lake,
            "window_days": self.window_days,
            "observed_days": round(self.observed_days, 2),
            "prices": {
                "date": PRICES_DATE,
                "region": PRICES_REGION,
                "items": {k: asdict(v) for k, v in PRICES.items()},
            },
            "zones": self.zones,
            "lines": [
                {**asdict(line), "status": line.status, "list_usd": round(line.list_usd, 4)}
                | {"billed_usd": round(line.billed_usd, 4)}
                for line in self.lines
            ],
            "total_usd": round(self.total_usd, 4),
            "budgeted_usd": round(self.budgeted_usd, 4),
            "budget_usd": round(self.budget_usd, 2),
            "status": self.status,
        }


def _glue_dpu(engine: str, workers: int, worker_type: str) -> float:
    """DPUs of a transform run: the Spark job's workers, or the Python-shell job's capacity."""
    if engine == "spark":
        return workers * deploy.GLUE_DPU_PER_WORKER[worker_type]
    return deploy.PYSHELL_MAX_CAPACITY


def _glue_rate(engine: str, execution_class: str) -> float:
    """USD per DPU-hour: the Spark job's execution class, or the Python shell's (no FLEX)."""
    if engine != "spark":
        return PRICES["glue_pyshell_dpu_hour"].usd
    key = "glue_flex_dpu_hour" if execution_class.upper() == "FLEX" else "glue_dpu_hour"
    return PRICES[key].usd


def estimate(
    lake: Lake,
    *,
    days: int = 30,
    now: dt.datetime | None = None,
    workers: int = deploy.GLUE_DEFAULT_WORKERS,
    worker_type: str = deploy.GLUE_DEFAULT_WORKER_TYPE,
    execution_class: str = "FLEX",
) -> Estimate:
    """The monthly cost estimate of the deployment serving ``lake``."""
    if worker_type not in deploy.GLUE_DPU_PER_WORKER:
        raise ValueError(f"unknown worker type {worker_type!r}")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    since = now - dt.timedelta(days=days)
    reports = [r for r in run_reports(lake, since) if (_time(r["started_at"]) or now) >= since]
    starts = [_time(r["started_at"]) for r in reports]
    first = min((s for s in starts if s), default=now)
    observed = min(float(days), max(1.0, (now - first).total_seconds() / 86400))
    scale = MONTH_DAYS / observed
    zones = zone_bytes(lake)
    result = Estimate(lake=lake.root, window_days=days, observed_days=observed, zones=zones)
    lines = result.lines

    # -- S3 storage ---------------------------------------------------------------------------
    price = PRICES["s3_gb_month"].usd
    for zone, stats in zones.items():
        keep = prune.RETENTION_DAYS.get(zone)
        usd = stats["bytes"] / GB * price
        lines.append(
            Line(
                f"S3 {zone}",
                f"{stats['bytes'] / GB:,.3f} GB in {stats['files']:,} files",
                "measured",
                usd,
                usd,
                note=f"kept {keep} days" if keep else "run reports, ledgers, quality docs",
            )
        )

    # -- Glue ---------------------------------------------------------------------------------
    transforms = [r for r in reports if _engine(r)]
    on_glue = [r for r in transforms if (r.get("options") or {}).get("job_name")]
    measured = on_glue or transforms
    dpu_hours = usd = 0.0
    by_engine: dict[str, int] = {}
    for report in measured:
        engine = _engine(report) or "duckdb"
        by_engine[engine] = by_engine.get(engine, 0) + 1
        billed = max(GLUE_MIN_BILLED_SECONDS, _seconds(report) + GLUE_START_SECONDS)
        run_dpu_hours = _glue_dpu(engine, workers, worker_type) * billed / 3600
        dpu_hours += run_dpu_hours
        usd += run_dpu_hours * _glue_rate(engine, execution_class)
    if measured:
        runs = ", ".join(f"{n} {e}" for e, n in sorted(by_engine.items()))
        basis = "measured" if on_glue else "estimated"
        note = "Glue job run reports" if on_glue else "local run durations as a proxy"
        dpu_hours, usd = dpu_hours * scale, usd * scale
    else:
        runs, basis, note = "no transform reports", "assumed", "one DuckDB run a day"
        billed = GLUE_MIN_BILLED_SECONDS + GLUE_START_SECONDS
        dpu_hours = _glue_dpu("duckdb", workers, worker_type) * billed / 3600 * MONTH_DAYS
        usd = dpu_hours * _glue_rate("duckdb", execution_class)
    lines.append(
        Line(
            "Glue",
            f"{dpu_hours:,.2f} DPU-hours ({runs}; Spark {execution_class.upper()}, "
            "DuckDB on the Python shell)",
            basis,
            usd,
            usd,
            BUDGET["glue"],
            f"{note}; +{GLUE_START_SECONDS}s start, {GLUE_MIN_BILLED_SECONDS}s minimum a run",
        )
    )

    # -- Athena -------------------------------------------------------------------------------
    builds = [
        r
        for r in reports
        if r.get("command") in ("build", "run") and "build" in r.get("stages", {})
    ]
    athena_builds = [r for r in builds if r["stages"]["build"].get("target") == "athena"]
    recorded = [b for b in (_athena_bytes(r) for r in reports) if b is not None]
    if recorded:
        scanned = sum(recorded) * scale
        basis, note = "measured", f"{len(recorded)} report(s) with bytes scanned"
    else:
        per_day = (len(athena_builds) / observed) if athena_builds else ASSUMED_BUILDS_PER_DAY
        nodes = [r["stages"]["build"].get("nodes") for r in builds]
        node_count = max((n for n in nodes if isinstance(n, int)), default=ASSUMED_DBT_NODES)
        per_build = zones["processed"]["bytes"] + node_count * ATHENA_MIN_BYTES
        scanned = per_build * per_day * MONTH_DAYS
        basis = "estimated"
        processed_gb = zones["processed"]["bytes"] / GB
        note = (
            f"{per_day:g} build(s)/day x (processed zone {processed_gb:,.3f} GB "
            f"+ {node_count} queries x 10 MB minimum); no bytes scanned in the reports"
        )
    usd = scanned / TB * PRICES["athena_tb"].usd
    lines.append(
        Line(
            "Athena",
            f"{scanned / GB:,.2f} GB scanned",
            basis,
            usd,
            usd,
            BUDGET["athena"],
            note,
        )
    )

    # -- CodeBuild (dbt and activation) -------------------------------------------------------
    activations = [r for r in reports if r.get("command") == "activate"]
    if athena_builds:
        build_minutes = sum(_seconds(r) for r in athena_builds) / 60 * scale
        cb_basis = "measured"
    else:
        build_minutes = ASSUMED_BUILD_MINUTES * MONTH_DAYS
        cb_basis = "assumed"
    if activations and athena_builds:
        build_minutes += sum(_seconds(r) for r in activations) / 60 * scale
    else:
        build_minutes += ASSUMED_ACTIVATION_MINUTES * MONTH_DAYS
        cb_basis = "assumed" if cb_basis == "assumed" else "estimated"
    cb_price = PRICES["codebuild_minute"].usd
    lines.append(
        Line(
            "CodeBuild",
            f"{build_minutes:,.0f} build minutes",
            cb_basis,
            build_minutes * cb_price,
            max(0.0, build_minutes - ALWAYS_FREE["codebuild_minutes"]) * cb_price,
            note=f"dbt ~{ASSUMED_BUILD_MINUTES:g} + activation ~{ASSUMED_ACTIVATION_MINUTES:g} "
            f"min/day unless measured; {ALWAYS_FREE['codebuild_minutes']} min/month free",
        )
    )

    # -- Lambda (ingestion) -------------------------------------------------------------------
    ingests = [r for r in reports if r.get("command") == "ingest"]
    on_lambda = [r for r in ingests if (r.get("options") or {}).get("trigger") == "s3-event"]
    if on_lambda:
        invocations = len(on_lambda) * scale
        seconds = sum(_seconds(r) for r in on_lambda) * scale
        lb_basis = "measured"
    else:
        files = sum(
            stats.get("files_landed", 0) + stats.get("files_already_landed", 0)
            for r in ingests
            for stats in (r.get("datasets") or {}).values()
        )
        invocations = files * scale if ingests else 3 * MONTH_DAYS
        seconds = invocations * ASSUMED_LAMBDA_SECONDS
        lb_basis = "estimated" if ingests else "assumed"
    gb_seconds = seconds * deploy.LAMBDA_MEMORY_MB / 1024
    list_usd = (
        gb_seconds * PRICES["lambda_gb_second"].usd + invocations * PRICES["lambda_request"].usd
    )
    billed_usd = (
        max(0.0, gb_seconds - ALWAYS_FREE["lambda_gb_seconds"]) * PRICES["lambda_gb_second"].usd
        + max(0.0, invocations - ALWAYS_FREE["lambda_requests"]) * PRICES["lambda_request"].usd
    )
    lines.append(
        Line(
            "Lambda",
            f"{invocations:,.0f} invocations, {gb_seconds:,.0f} GB-s",
            lb_basis,
            list_usd,
            billed_usd,
            note="one invocation per export; always-free 1M requests and 400k GB-s",
        )
    )

    # -- SES, Secrets Manager, Step Functions, CloudWatch --------------------------------------
    sent = 0
    for r in activations + [r for r in reports if r.get("command") == "run"]:
        email = ((r.get("stages") or {}).get("activation") or {}).get("email") or {}
        if isinstance(email, dict) and not email.get("dry_run"):
            sent += int(email.get("sent") or 0)
    emails = sent * scale
    usd = emails * PRICES["ses_email"].usd
    lines.append(
        Line("SES", f"{emails:,.0f} emails", "measured", usd, usd, note="activation reports")
    )
    secrets = sorted(
        name
        for name, resource in deploy.load_template()["Resources"].items()
        if resource["Type"] == "AWS::SecretsManager::Secret"
    )
    usd = len(secrets) * PRICES["secret_month"].usd
    lines.append(
        Line(
            "Secrets Manager",
            f"{len(secrets)} secrets",
            "fixed",
            usd,
            usd,
            note=f"the stack's ({', '.join(secrets)})",
        )
    )
    transitions = PIPELINE_TRANSITIONS * MONTH_DAYS
    usd = transitions * PRICES["sfn_transition"].usd
    lines.append(
        Line(
            "Step Functions",
            f"{transitions:,} transitions",
            "fixed",
            usd,
            max(0.0, transitions - ALWAYS_FREE["sfn_transitions"]) * PRICES["sfn_transition"].usd,
            note="one execution a day; EventBridge schedules, SNS and SQS are free at this size",
        )
    )
    usd = PRICES["cloudwatch_alarm"].usd
    lines.append(
        Line("CloudWatch", "1 alarm", "fixed", usd, 0.0, note="the dead-letter alarm (10 free)")
    )
    lines.append(
        Line("HubSpot", "private app API", "fixed", 0.0, 0.0, BUDGET["hubspot"], "free tier")
    )
    return result


def to_json(result: Estimate) -> str:
    return json.dumps(result.to_dict(), indent=2)
