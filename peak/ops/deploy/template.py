"""The CloudFormation template: ``infra/template.yaml`` read as plain data (short-form
intrinsic functions included) and rendered for a lake and the built artefacts, with what must
never drift from the code (artefact keys, lifecycle rules, lake-access policies, Glue tables)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

import contracts
from peak.core.lake import Lake
from peak.model import catalog
from peak.ops import prune
from peak.ops.deploy.artefacts import REPO_ROOT, Artefact
from peak.ops.deploy.lake_access import LAKE_ACCESS, lake_policy

#: The template's source; what :func:`render_template` renders from it is deployed.
SOURCE_TEMPLATE = REPO_ROOT / "infra" / "template.yaml"

#: The Athena bucket's layout: query results (7 days) and dbt's s3_data_dir.
ATHENA_RESULTS_PREFIX = "results/"
DBT_DATA_PREFIX = "dbt/"

#: The template's Spark defaults and the Python-shell (DuckDB) job's ``MaxCapacity`` (1 DPU:
#: 4 vCPU, 16 GB; the other choice, 1/16 DPU, has 1 GB), read by ``peak cost``.
GLUE_DEFAULT_WORKER_TYPE = "G.1X"
GLUE_DEFAULT_WORKERS = 2
PYSHELL_MAX_CAPACITY = 1.0
GLUE_DPU_PER_WORKER = {"G.1X": 1.0, "G.2X": 2.0, "G.4X": 4.0, "G.8X": 8.0}
LAMBDA_MEMORY_MB = 1024


class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode), node
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = SOURCE_TEMPLATE) -> dict[str, Any]:
    """A CloudFormation YAML template as data (``!Sub x`` -> ``{"Fn::Sub": x}``)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)


#: Mapping key -> which artefact's key it holds.
ARTIFACT_MAPPING = {
    "LambdaFunction": "Lambda function",
    "UnsubscribeFunction": "Unsubscribe Lambda function",
    "LambdaDepsLayer": "Lambda deps layer",
    "GlueScript": "Glue script",
    "GlueWheel": "Glue wheel",
    "Source": "CodeBuild source",
}
#: Bucket (logical id) -> its lifecycle rules, rendered from peak/ops/prune.py.
LAKE_BUCKET, INBOX_BUCKET, ATHENA_BUCKET = "LakeBucket", "InboxBucket", "AthenaBucket"
#: The S3 server access logs of the three buckets above, and how long they are kept: long enough
#: to answer "who read this member's data" for a quarter, no longer (they name objects and
#: callers, never a member).
ACCESS_LOGS_BUCKET = "AccessLogsBucket"
ACCESS_LOGS_RETENTION_DAYS = 90


def table_logical_id(dataset: str) -> str:
    return "Table" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", dataset))


def bucket_rules(lake: Lake) -> dict[str, list[dict[str, Any]]]:
    return {
        LAKE_BUCKET: prune.lifecycle_rules(lake.prefix),
        INBOX_BUCKET: [
            prune.expiry_rule("retention-inbox", prune.INBOX_RETENTION_DAYS),
            prune.abort_multipart_rule(),
        ],
        ATHENA_BUCKET: [
            prune.expiry_rule(
                "retention-query-results",
                prune.ATHENA_RESULTS_RETENTION_DAYS,
                ATHENA_RESULTS_PREFIX,
            ),
            prune.abort_multipart_rule(),
        ],
        ACCESS_LOGS_BUCKET: [
            prune.expiry_rule("retention-access-logs", ACCESS_LOGS_RETENTION_DAYS),
        ],
    }


def render_template(
    lake: Lake,
    artefacts: dict[str, Artefact],
    source: Path = SOURCE_TEMPLATE,
) -> dict[str, Any]:
    """The deployable template for ``lake`` (an ``s3://`` URI) and the built artefacts."""
    if lake.is_local:
        raise ValueError(
            f"the deployment's lake must be on S3, not the local folder {lake.root} "
            "(pass --lake s3://bucket[/prefix] or set PEAK_LAKE)"
        )
    template = copy.deepcopy(load_template(source))
    resources = template["Resources"]
    template.setdefault("Metadata", {})["Peak"] = {
        "RenderedBy": "peak deploy package",
        "Lake": lake.root,
        "Contracts": sorted(contracts.load_all()),
        "RetentionDays": dict(prune.RETENTION_DAYS),
    }
    param = template["Parameters"]["LakeBucketName"]
    param["Default"] = lake.bucket
    param["AllowedValues"] = [lake.bucket]
    param["Description"] = (
        f"The lake bucket; the Glue tables and lifecycle rules were rendered for {lake.root}."
    )
    template.setdefault("Mappings", {})["Peak"] = {
        "Lake": {"Uri": lake.root},
        "Artifacts": {m: artefacts[name].key for m, name in ARTIFACT_MAPPING.items()},
        "Athena": {"ResultsPrefix": ATHENA_RESULTS_PREFIX, "DbtPrefix": DBT_DATA_PREFIX},
    }
    for bucket, rules in bucket_rules(lake).items():
        resources[bucket]["Properties"]["LifecycleConfiguration"] = {"Rules": rules}
    for role, grant in LAKE_ACCESS.items():
        resources[role]["Properties"].setdefault("Policies", []).append(lake_policy(lake, grant))
    for contract in contracts.load_all().values():
        resources[table_logical_id(contract.dataset)] = {
            "Type": "AWS::Glue::Table",
            "Properties": {
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseName": {"Ref": "ProcessedDatabase"},
                "TableInput": catalog.table_input(contract, lake),
            },
        }
    return template
