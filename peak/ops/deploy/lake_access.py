"""The lake's prefixes (from :mod:`peak.core.layout`) and who may do what under them: each
role's ``lake-access`` inline policy, the only grants on the lake bucket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peak.core import layout
from peak.core.lake import Lake
from peak.ops import prune


def lake_prefixes() -> dict[str, str]:
    """Name -> lake prefix of every area a role is granted (relative to the lake root)."""
    stem = prune.key_stem
    return {
        "raw": stem(layout.raw_key),
        "raw_parquet": stem(layout.raw_parquet_key),
        "processed": stem(layout.processed_key),
        "quarantine": stem(layout.quarantine_rows_key),
        "ingest_ledger": stem(layout.ingest_ledger_key),
        "transform_ledger": stem(layout.transform_ledger_key),
        "transform_lock": layout.TRANSFORM_LOCK_KEY,
        "activation_state": stem(layout.activation_state_key),
        "unsubscribes": layout.UNSUBSCRIBES_PREFIX,
        "runs": stem(layout.run_report_key),
        "staging": stem(layout.staging_prefix),
        "quality": layout.QUALITY_PREFIX,
        "outbox": stem(layout.outbox_prefix),
        "erasure_register": layout.ERASURE_REGISTER_KEY,
    }


@dataclass(frozen=True)
class LakeGrant:
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    #: s3:ListBucket on the lake: unconditional (a missing key answers 404, not 403, which
    #: Lake.exists relies on), only under ``list_prefixes``, or not at all.
    list_all: bool = False
    list_prefixes: tuple[str, ...] = ()


#: Role (logical id) -> what it may do in the lake. Nothing else is granted on the lake bucket.
LAKE_ACCESS: dict[str, LakeGrant] = {
    # Ingestion reads the erasure register to drop erased members' rows from any export.
    "IngestRole": LakeGrant(
        read=("ingest_ledger", "erasure_register"),
        write=("raw", "raw_parquet", "quarantine", "ingest_ledger", "runs"),
        list_all=True,
    ),
    "TransformRole": LakeGrant(
        read=(
            "ingest_ledger",
            "transform_ledger",
            "raw_parquet",
            "processed",
            "staging",
            "quality",
            "transform_lock",
        ),
        write=(
            "staging",
            "processed",
            "quarantine",
            "transform_ledger",
            "transform_lock",
            "quality",
            "runs",
        ),
        delete=("staging", "processed", "transform_lock"),
        list_all=True,
    ),
    # dbt reads the processed zone through Athena (with its own credentials) and writes only
    # its run report to the lake: its tables go to the Athena bucket's dbt/ prefix.
    "DbtRole": LakeGrant(read=("processed",), write=("runs",), list_prefixes=("processed",)),
    # The unsubscribe Lambda creates one record per address (a conditional PUT) and nothing else.
    "UnsubscribeRole": LakeGrant(write=("unsubscribes",)),
    "ActivationRole": LakeGrant(
        read=("activation_state", "outbox"),
        write=("activation_state", "outbox", "runs"),
        delete=("activation_state",),
        list_all=True,
    ),
}


def _object_arn(lake: Lake, prefix: str) -> dict[str, str]:
    pattern = prefix.rstrip("/") + "*" if prefix == lake_prefixes()["staging"] else prefix + "*"
    # Spark on Glue may write a "_staging_$folder$" marker beside the staging folder.
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{LakeBucketName}}/{lake.prefix}{pattern}"}


def lake_policy(lake: Lake, grant: LakeGrant) -> dict[str, Any]:
    """The ``lake-access`` inline policy of one role."""
    names = lake_prefixes()
    statements: list[dict[str, Any]] = []
    for sid, actions, areas in (
        ("LakeRead", ["s3:GetObject"], grant.read),
        ("LakeWrite", ["s3:PutObject", "s3:AbortMultipartUpload"], grant.write),
        ("LakeDelete", ["s3:DeleteObject"], grant.delete),
    ):
        if areas:
            statements.append(
                {
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": [_object_arn(lake, names[a]) for a in areas],
                }
            )
    bucket = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${LakeBucketName}"}
    if grant.list_all:
        statements.append(
            {"Sid": "LakeList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket}
        )
    elif grant.list_prefixes:
        statements.append(
            {
                "Sid": "LakeList",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket,
                "Condition": {
                    "StringLike": {
                        "s3:prefix": [lake.prefix + names[a] + "*" for a in grant.list_prefixes]
                    }
                },
            }
        )
    return {
        "PolicyName": "lake-access",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
    }
