"""The transform as an AWS Glue 5.0 job: the entry point, and nothing but the entry point.

Three layers: this script parses the job's arguments and builds the Spark
session (a ``GlueContext`` inside Glue, a local session elsewhere), then hands over to
:func:`glue.transform.transform` (I/O: the lake, staging, publishing), which runs an engine over
the contract's SQL (:mod:`glue.rules`, the pure part). The run report is saved to
``<lake>/_runs/<run_id>.json`` whether the run succeeds or fails; a failed run re-raises so Glue
marks the job run failed, and only a successful one calls ``job.commit()``.

Arguments (the Glue job definition's ``DefaultArguments``; the same names locally)::

    --JOB_NAME       peak-transform            (Glue passes it; optional locally)
    --lake           s3://bucket/prefix        (a local folder works too)
    --engine         spark | duckdb            (default: spark)
    --gym_timezone   Europe/London             (naive export timestamps; default UTC)
    --reprocess      true | false              (rebuild the processed zone; default false)
    --datasets       members,classes           (default: every contract)
    --quality        true | false              (Great Expectations on staged partitions;
                                                default true)

``awsglue`` exists only inside Glue, so it is imported there and nowhere else; locally the
arguments are parsed by argparse with the same names and the same tolerance of extra arguments
(Glue adds its own, such as ``--job-bookmark-option`` and ``--TempDir``). The transform keeps
its own bookmark (the transform ledger), so the job's Glue bookmark should stay disabled.

Locally::

    python -m glue.job --lake ./lake --engine spark --gym_timezone Europe/London
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import contracts
from peak.core.errors import ConfigError
from peak.core.lake import Lake
from peak.core.report import RunReport
from peak.core.settings import Settings

log = logging.getLogger("peak.glue.job")

#: name -> default (None: required). Every argument is a string, as Glue passes them.
ARGUMENTS: dict[str, str | None] = {
    "JOB_NAME": "peak-transform",
    "lake": None,
    "engine": "spark",
    "gym_timezone": "UTC",
    "reprocess": "false",
    "datasets": "",
    "quality": "true",
}
ENGINES = ("spark", "duckdb")

Resolver = Callable[[list[str], list[str]], dict[str, Any]]


class JobArgumentError(ConfigError):
    pass


@dataclass(frozen=True)
class JobArgs:
    job_name: str
    lake: str
    engine: str
    gym_timezone: str
    reprocess: bool
    datasets: list[str] | None
    quality: bool
    #: Every resolved argument, as Glue's ``Job.init`` wants them.
    raw: dict[str, Any]


def _flag(name: str, value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise JobArgumentError(f"--{name} must be true or false, not {value!r}")


def _datasets(value: str) -> list[str] | None:

    names = [n.strip() for n in str(value).split(",") if n.strip()]
    for name in names:
        try:
            contracts.get(name)
        except KeyError as exc:
            raise JobArgumentError(f"--datasets: {exc.args[0]}") from exc
    return names or None


def _present(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def _local_resolver(argv: list[str], options: list[str]) -> dict[str, Any]:
    """argparse with Glue's ``getResolvedOptions`` behaviour: ``argv[0]`` is the script, the
    options asked for are required, and arguments nobody asked for are ignored."""
    parser = argparse.ArgumentParser(prog="glue.job", description=__doc__.split("\n\n")[0])
    for name in options:
        parser.add_argument(f"--{name}", required=True)
    known, extra = parser.parse_known_args(argv[1:])
    if extra:
        log.info("ignoring arguments %s", " ".join(extra))
    return vars(known)


def parse_args(argv: Sequence[str], resolver: Resolver | None = None) -> JobArgs:
    """Resolve the job's arguments from ``argv`` (the script's name first, as ``sys.argv``)."""
    argv = list(argv)
    missing = [n for n, d in ARGUMENTS.items() if d is None and not _present(argv, n)]
    if missing:
        raise JobArgumentError(f"missing required argument(s): --{', --'.join(missing)}")
    # getResolvedOptions requires every option it is asked for: ask only for those given.
    asked = [name for name in ARGUMENTS if _present(argv, name)]
    resolved = (resolver or _local_resolver)(argv, asked)
    values = {n: str(resolved.get(n) if n in asked else d) for n, d in ARGUMENTS.items()}
    engine = values["engine"].strip().lower()
    if engine not in ENGINES:
        raise JobArgumentError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return JobArgs(
        job_name=values["JOB_NAME"],
        lake=values["lake"],
        engine=engine,
        gym_timezone=values["gym_timezone"].strip(),
        reprocess=_flag("reprocess", values["reprocess"]),
        datasets=_datasets(values["datasets"]),
        quality=_flag("quality", values["quality"]),
        raw={**resolved, **values},
    )


def _glue_resolver() -> Resolver | None:
    """``getResolvedOptions`` inside Glue; None anywhere else."""
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        return None
    return getResolvedOptions


def _glue_job(args: JobArgs) -> tuple[Any, Any]:
    """(SparkSession, awsglue Job) inside a Glue Spark job."""
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(args.job_name, args.raw)
    return glue_context.spark_session, job


def main(argv: Sequence[str] | None = None) -> Any:
    """Run the transform job; ``argv`` excludes the script name (default: ``sys.argv[1:]``).

    Returns the run report (a :class:`peak.core.report.RunReport`).
    """
    from glue.engine import build_engine  # deferred: duckdb or pyspark
    from glue.transform import TransformOptions, transform  # deferred: duckdb, Great Expectations

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    full_argv = [sys.argv[0] if sys.argv else "job.py", *(sys.argv[1:] if argv is None else argv)]
    resolver = _glue_resolver()
    args = parse_args(full_argv, resolver)
    # One typed, validated settings object: the job's arguments beat PEAK_*.
    settings = Settings.load(lake=args.lake, engine=args.engine, gym_timezone=args.gym_timezone)

    spark, glue_job = None, None
    if resolver is not None and args.engine == "spark":
        spark, glue_job = _glue_job(args)
    engine = build_engine(args.engine, settings, spark)

    lake = Lake.from_uri(settings.lake)
    report = RunReport("transform")
    report.lake = lake.root
    report.options = {
        "job_name": args.job_name,
        "engine": engine.name,
        "gym_timezone": settings.gym_timezone,
        "reprocess": args.reprocess,
        "datasets": args.datasets,
        "quality": args.quality,
    }
    options = TransformOptions.from_settings(
        settings, reprocess=args.reprocess, quality=args.quality
    )
    log.info("transform %s on %s with the %s engine", report.run_id, lake.root, engine.name)
    try:
        transform(
            lake,
            engine=engine,
            report=report,
            options=options,
            datasets=args.datasets,
            progress=lambda dataset, msg: log.info("%s: %s", dataset, msg),
        )
    except BaseException as exc:
        report.finish("failed", f"{type(exc).__name__}: {exc}")
        _save(report, lake)
        raise
    report.finish("ok")
    _save(report, lake)
    if glue_job is not None:
        glue_job.commit()
    return report


def _save(report: Any, lake: Any) -> None:
    """Save the run report; a failure to save is logged, never hides the run's own error."""
    try:
        key = report.save(lake)
    except Exception:
        log.exception("could not save the run report of %s", report.run_id)
        if report.status == "ok":
            raise
        return
    log.info("transform %s: %s; run report at %s", report.run_id, report.status, lake.uri(key))


if __name__ == "__main__":
    main()
