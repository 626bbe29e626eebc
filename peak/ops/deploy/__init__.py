"""``peak deploy package``: everything the AWS deployment needs, built into ``dist/``.

The stack is ``infra/template.yaml`` (plain CloudFormation, see ``docs/deploy.md``). That file is
the *source*; :func:`package` builds the artefacts, then renders ``dist/template.json`` from it
with the parts that must never drift from the code:

- ``Mappings.Peak``: the lake's URI and the uploaded artefacts' keys. Artefact names carry
  their content's sha256 (``ingest-3f2a…zip``), so CloudFormation updates the Lambda code, the
  layer and the Glue job exactly when their content changed. Zips are deterministic (sorted
  entries, fixed timestamps): the same code packages to the same bytes.
- the lifecycle rules of every bucket, from :data:`peak.ops.prune.RETENTION_DAYS` (and the
  access logs', :data:`ACCESS_LOGS_RETENTION_DAYS`);
- one ``lake-access`` policy per role (:data:`LAKE_ACCESS`), scoped to the lake prefixes of
  :mod:`peak.core.lake`;
- one ``AWS::Glue::Table`` per contract, exactly :func:`peak.model.catalog.table_input` for the lake
  (so ``peak catalog sync --dry-run`` after a deploy reports every table unchanged).

The artefacts (``dist/artifacts/``, uploaded as they are with ``aws s3 sync``):

- ``lambda/ingest-<sha>.zip``: our packages ``peak``, ``ingestion`` and ``contracts`` (with the
  YAML contracts) and nothing else. pyarrow and numpy come from the AWS SDK for pandas managed
  layer (a template parameter), boto3 from the Lambda runtime.
- ``lambda/unsubscribe-<sha>.zip``: the unsubscribe function (the endpoint of every e-mail's
  one-click unsubscribe link): ``peak.core``, ``activation.unsubscribe`` and
  ``activation/addresses.py``, nothing of the sinks (:data:`UNSUBSCRIBE_PACKAGES`).
- ``lambda/ingest-deps-<sha>.zip``: a small layer of what the managed layer lacks (pydantic,
  pydantic-settings, PyYAML and their dependencies), copied from the installed packages after
  checking their wheel tags run on Lambda's python3.11 x86_64 (a manylinux wheel up to glibc
  2.26, or pure Python).
- ``glue/peak_transform-<sha>.py``: the Glue job's script, a three-line entry point calling
  :func:`glue.job.main`; and ``glue/peak_glue-<version>-py3-none-any.whl``: the packages it
  imports (``glue``, ``peak``, ``contracts`` with the YAML files) as a wheel whose
  ``Requires-Dist`` pins what Glue 5.0 lacks. The job installs it with
  ``--additional-python-modules``: a wheel is installed as files, where ``--extra-py-files``
  would import from the zip and ``contracts`` could not list its YAML files.
- ``codebuild/source-<sha>.zip``: the source the dbt and activation CodeBuild projects run
  (``python -m peak build|activate``), with ``requirements-codebuild.txt``: every package,
  dependencies included, pinned to the versions the tests ran with.

``deploy package`` writes no run report into the lake: the lake it renders for may not exist
yet. ``dist/manifest.json`` is its record (artefact, key, size, sha256, and the lake).

The modules: :mod:`~peak.ops.deploy.artefacts` (deterministic zips, content hashes, pins),
:mod:`~peak.ops.deploy.lambda_zips`, :mod:`~peak.ops.deploy.glue_wheel` and
:mod:`~peak.ops.deploy.codebuild` (one per target), :mod:`~peak.ops.deploy.lake_access` (the
roles' lake policies), :mod:`~peak.ops.deploy.template` (reading and rendering the template) and
:mod:`~peak.ops.deploy.build` (:func:`package`, which runs them all).
"""

from __future__ import annotations

from peak.ops.deploy.artefacts import REPO_ROOT, RUNTIME_PYTHON, Artefact, dependency_closure
from peak.ops.deploy.build import DEFAULT_OUT, PackageResult, package
from peak.ops.deploy.codebuild import (
    CODEBUILD_REQUIREMENTS,
    CODEBUILD_REQUIRES,
    SOURCE_EXCLUDE,
    SOURCE_PATHS,
    build_codebuild_source,
    codebuild_requirements,
)
from peak.ops.deploy.glue_wheel import (
    GLUE_ENTRY,
    GLUE_PACKAGES,
    GLUE_REQUIRES,
    GLUE_WHEEL_NAME,
    PYSHELL_PYTHON,
    PYSHELL_REQUIREMENTS,
    build_glue_script,
    build_glue_wheel,
    glue_wheel_requires,
    project_version,
    pyshell_requirements,
)
from peak.ops.deploy.lake_access import LAKE_ACCESS, LakeGrant, lake_policy, lake_prefixes
from peak.ops.deploy.lambda_zips import (
    LAMBDA_GLIBC,
    LAMBDA_PACKAGES,
    LAMBDA_PROVIDED,
    LAMBDA_REQUIRES,
    UNSUBSCRIBE_HANDLER,
    UNSUBSCRIBE_MODULES,
    UNSUBSCRIBE_PACKAGES,
    build_lambda_deps,
    build_lambda_function,
    build_unsubscribe_function,
    lambda_vendored,
    runs_on_lambda,
)
from peak.ops.deploy.template import (
    ACCESS_LOGS_BUCKET,
    ACCESS_LOGS_RETENTION_DAYS,
    ARTIFACT_MAPPING,
    ATHENA_BUCKET,
    ATHENA_RESULTS_PREFIX,
    DBT_DATA_PREFIX,
    GLUE_DEFAULT_WORKER_TYPE,
    GLUE_DEFAULT_WORKERS,
    GLUE_DPU_PER_WORKER,
    INBOX_BUCKET,
    LAKE_BUCKET,
    LAMBDA_MEMORY_MB,
    PYSHELL_MAX_CAPACITY,
    SOURCE_TEMPLATE,
    bucket_rules,
    load_template,
    render_template,
    table_logical_id,
)

__all__ = [
    "ACCESS_LOGS_BUCKET",
    "ACCESS_LOGS_RETENTION_DAYS",
    "ARTIFACT_MAPPING",
    "ATHENA_BUCKET",
    "ATHENA_RESULTS_PREFIX",
    "CODEBUILD_REQUIREMENTS",
    "CODEBUILD_REQUIRES",
    "DBT_DATA_PREFIX",
    "DEFAULT_OUT",
    "GLUE_DEFAULT_WORKERS",
    "GLUE_DEFAULT_WORKER_TYPE",
    "GLUE_DPU_PER_WORKER",
    "GLUE_ENTRY",
    "GLUE_PACKAGES",
    "GLUE_REQUIRES",
    "GLUE_WHEEL_NAME",
    "INBOX_BUCKET",
    "LAKE_ACCESS",
    "LAKE_BUCKET",
    "LAMBDA_GLIBC",
    "LAMBDA_MEMORY_MB",
    "LAMBDA_PACKAGES",
    "LAMBDA_PROVIDED",
    "LAMBDA_REQUIRES",
    "PYSHELL_MAX_CAPACITY",
    "PYSHELL_PYTHON",
    "PYSHELL_REQUIREMENTS",
    "REPO_ROOT",
    "RUNTIME_PYTHON",
    "SOURCE_EXCLUDE",
    "SOURCE_PATHS",
    "SOURCE_TEMPLATE",
    "UNSUBSCRIBE_HANDLER",
    "UNSUBSCRIBE_MODULES",
    "UNSUBSCRIBE_PACKAGES",
    "Artefact",
    "LakeGrant",
    "PackageResult",
    "bucket_rules",
    "build_codebuild_source",
    "build_glue_script",
    "build_glue_wheel",
    "build_lambda_deps",
    "build_lambda_function",
    "build_unsubscribe_function",
    "codebuild_requirements",
    "dependency_closure",
    "glue_wheel_requires",
    "lake_policy",
    "lake_prefixes",
    "lambda_vendored",
    "load_template",
    "package",
    "project_version",
    "pyshell_requirements",
    "render_template",
    "runs_on_lambda",
    "table_logical_id",
]
