"""The AWS deployment, proven offline: the template rendered by `peak deploy package` passes
cfn-lint, matches the code it deploys (Glue tables = peak.model.catalog.table_input, lifecycle
rules = peak.ops.prune.RETENTION_DAYS), grants least privilege, deploys into moto (CloudFormation
for every type moto's CloudFormation supports, the service APIs for the rest), and the packaged
artefacts run: the ingestion Lambda's zip on an S3 event and the unsubscribe Lambda's on a
one-click POST, against moto with their roles' permissions, the Glue script with the job's own
arguments; and checkov finds nothing but the exceptions the template declares beside their
resources."""

from __future__ import annotations

import ast
import base64
import copy
import datetime as dt
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import contracts
from activation import runner as activation_runner
from ingestion.land import land_many
from peak.core import layout, locks
from peak.core.lake import Lake
from peak.model import catalog
from peak.ops import deploy, prune
from tests.conftest import CHECKIN, CLASS, MEMBER, csv_bytes, pip_install_wheel
from tests.moto_server import REGION, aws_env, client

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LAKE_URI = "s3://peak-test-lake/lake"
LAKE = Lake.from_uri(LAKE_URI)
ACCOUNT = "123456789012"
PARAMETERS = {
    "EnvironmentName": "test",
    "InboxBucketName": "peak-test-inbox",
    "AthenaBucketName": "peak-test-athena",
    "ArtifactsBucketName": "peak-test-artifacts",
    "ArtifactsPrefix": "peak/",
    "PandasLayerArn": f"arn:aws:lambda:{REGION}:336392948345:layer:AWSSDKPandas-Python311:30",
    "SenderAddress": "hello@peak.example",
    "AlertEmail": "ops@peak.example",
}
#: Resource types of the template that moto's CloudFormation cannot create (moto 5.2.5). A type
#: moto learns shows up here as a failure: then deploy it through CloudFormation instead.
KNOWN_UNSUPPORTED = {
    "AWS::Athena::WorkGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::CodeBuild::Project",
    "AWS::Glue::Database",
    "AWS::Glue::Job",
    "AWS::Glue::SecurityConfiguration",
    "AWS::Lambda::Url",
    "AWS::Glue::Table",
    "AWS::S3::BucketPolicy",
    "AWS::SES::ConfigurationSet",
    "AWS::SES::EmailIdentity",
    "AWS::SecretsManager::Secret",
}
#: The only actions granted on Resource "*": they have no resource-level permissions.
RESOURCELESS_ACTIONS = {"ses:GetAccount", "ses:ListSuppressedDestinations"}


# ---------------------------------------------------------------------------------------------
# Packaging and a small CloudFormation resolver.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("dist")
    deploy.package(LAKE, out)
    return out, json.loads((out / "template.json").read_text())


@pytest.fixture(scope="module")
def template(packaged) -> dict[str, Any]:
    return packaged[1]


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


NOVALUE = object()


class Resolver:
    """Resolves intrinsic functions with the parameters and each resource's physical id as
    CloudFormation (and moto, given explicit names) would assign it."""

    def __init__(self, template: dict[str, Any], params: dict[str, str]):
        self.template = template
        defaults = {
            k: str(p["Default"]) for k, p in template["Parameters"].items() if "Default" in p
        }
        self.params = {**defaults, **params}
        self.overrides: dict[str, str] = {}

    # -- physical ids -------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": "peak-test",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return NOVALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            if self.template["Parameters"].get(name, {}).get("Type") == "Number":
                return int(self.params[name])
            return self.params[name]
        if name in self.overrides:
            return self.overrides[name]
        resource = self.template["Resources"][name]
        props = resource.get("Properties", {})
        kind = resource["Type"]
        named = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::IAM::Role": "RoleName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Glue::Job": "Name",
            "AWS::Glue::SecurityConfiguration": "Name",
            "AWS::Athena::WorkGroup": "Name",
            "AWS::CodeBuild::Project": "Name",
            "AWS::SES::ConfigurationSet": "Name",
            "AWS::SES::EmailIdentity": "EmailIdentity",
            "AWS::Events::Rule": "Name",
            "AWS::CloudWatch::Alarm": "AlarmName",
        }
        if kind in named:
            return self(props[named[kind]])
        if kind == "AWS::Glue::Database":
            return self(props["DatabaseInput"]["Name"])
        if kind == "AWS::Glue::Table":
            return self(props["TableInput"]["Name"])
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self(props['QueueName'])}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{self(props['TopicName'])}"
        if kind == "AWS::StepFunctions::StateMachine":
            return (
                f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self(props['StateMachineName'])}"
            )
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{self(props['Name'])}-AbCdEf"
        if kind == "AWS::Lambda::LayerVersion":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{self(props['LayerName'])}:1"
        return name

    def getatt(self, name: str, attribute: str) -> str:
        kind = self.template["Resources"][name]["Type"]
        ref = self.ref(name)
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{ref}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{ref}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ref}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{ref}:*",
            "AWS::CodeBuild::Project": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{ref}",
        }
        if kind == "AWS::Lambda::Url":
            assert attribute == "FunctionUrl", (name, attribute)
            return self.overrides.get(name) or f"https://{name.lower()}.lambda-url.{REGION}.on.aws/"
        if kind == "AWS::SQS::Queue":
            queue = ref.rsplit("/", 1)[-1]
            return {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", "QueueName": queue}[attribute]
        assert attribute == "Arn", (name, attribute)
        return arns[kind]

    def condition(self, name: str) -> bool:
        return bool(self(self.template["Conditions"][name]))

    # -- evaluation ---------------------------------------------------------------------------
    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                return self.getatt(*expr.split(".", 1))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self(x) for x in node) if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                return self.getatt(*value)
            if key == "Fn::Sub":
                if isinstance(value, str):
                    return self.sub(value, {})
                return self.sub(value[0], {k: self(v) for k, v in value[1].items()})
            if key == "Fn::FindInMap":
                mapping, top, second = (self(v) for v in value)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::If":
                return self(value[1] if self.condition(value[0]) else value[2])
            if key == "Fn::Equals":
                return self(value[0]) == self(value[1])
            if key == "Fn::Not":
                return not self(value[0])
            if key == "Condition":
                return self.condition(value)
        out = {}
        for key, value in node.items():
            resolved = self(value)
            if resolved is not NOVALUE:
                out[key] = resolved
        return out


@pytest.fixture(scope="module")
def resolve(template) -> Resolver:
    return Resolver(template, PARAMETERS)


# ---------------------------------------------------------------------------------------------
# Lint and consistency with the code.
# ---------------------------------------------------------------------------------------------


def test_the_rendered_template_passes_cfn_lint(packaged):
    out, _ = packaged
    lint = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--regions",
            REGION,
            "--",
            str(out / "template.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_glue_tables_are_the_catalogs_table_inputs(template):
    tables = resources_of(template, "AWS::Glue::Table")
    assert len(tables) == len(contracts.load_all())
    for contract in contracts.load_all().values():
        table = tables[deploy.table_logical_id(contract.dataset)]["Properties"]
        assert table["TableInput"] == catalog.table_input(contract, LAKE)
        assert table["DatabaseName"] == {"Ref": "ProcessedDatabase"}
        params = table["TableInput"]["Parameters"]
        assert params["projection.enabled"] == "true"
        assert params["storage.location.template"].startswith(f"{LAKE_URI}/processed/")


def test_the_lifecycle_rules_are_the_retention(template, resolve):
    def days(bucket: str) -> dict[str, int]:
        rules = template["Resources"][bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
        assert any("AbortIncompleteMultipartUpload" in r for r in rules)
        return {
            r.get("Prefix", ""): r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r
        }

    lake_rules = template["Resources"]["LakeBucket"]["Properties"]["LifecycleConfiguration"]
    assert lake_rules["Rules"] == prune.lifecycle_rules(LAKE.prefix)
    assert days("LakeBucket") == {
        "lake/raw/": 30,
        "lake/raw_parquet/": 30,
        "lake/processed/": 365,
        "lake/quarantine/": 90,
    }
    assert days("InboxBucket") == {"": prune.RETENTION_DAYS["raw"]}
    assert days("AthenaBucket") == {deploy.ATHENA_RESULTS_PREFIX: 7}
    logs = template["Resources"]["AccessLogsBucket"]["Properties"]["LifecycleConfiguration"]
    assert [r["ExpirationInDays"] for r in logs["Rules"]] == [deploy.ACCESS_LOGS_RETENTION_DAYS]
    workgroup = resolve(template["Resources"]["AthenaWorkGroup"]["Properties"])
    output = workgroup["WorkGroupConfiguration"]["ResultConfiguration"]["OutputLocation"]
    assert output == f"s3://peak-test-athena/{deploy.ATHENA_RESULTS_PREFIX}"


def test_every_bucket_is_encrypted_private_and_tls_only(template, resolve):
    buckets = resources_of(template, "AWS::S3::Bucket")
    assert set(buckets) == {"LakeBucket", "InboxBucket", "AthenaBucket", "AccessLogsBucket"}
    policies = {
        r["Properties"]["Bucket"]["Ref"]: r["Properties"]["PolicyDocument"]
        for r in resources_of(template, "AWS::S3::BucketPolicy").values()
    }
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert len(props["PublicAccessBlockConfiguration"]) == 4
        deny = [s for s in policies[name]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny)
        resources = resolve(deny[0]["Resource"])
        bucket_name = resolve({"Ref": name})
        assert set(resources) == {f"arn:aws:s3:::{bucket_name}", f"arn:aws:s3:::{bucket_name}/*"}
        assert bucket["DeletionPolicy"] == "Retain"


def test_every_bucket_holding_data_logs_every_request(template, resolve):
    """S3 server access logs of the lake, the inbox and the Athena bucket (all hold e-mail
    addresses) go to the access-log bucket, which only S3's logging service of this account,
    delivering for those three buckets, may write to."""
    resources = template["Resources"]
    logs = resolve({"Ref": "AccessLogsBucket"})
    prefixes = {}
    for name in ("LakeBucket", "InboxBucket", "AthenaBucket"):
        config = resolve(resources[name]["Properties"]["LoggingConfiguration"])
        assert config["DestinationBucketName"] == logs
        prefixes[name] = config["LogFilePrefix"]
        assert "AccessLogsBucketPolicy" in as_list(resources[name]["DependsOn"])
    assert len(set(prefixes.values())) == 3
    policy = resolve(resources["AccessLogsBucketPolicy"]["Properties"]["PolicyDocument"])
    [grant] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert grant["Action"] == "s3:PutObject" and grant["Resource"] == f"arn:aws:s3:::{logs}/*"
    assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert set(grant["Condition"]["ArnLike"]["aws:SourceArn"]) == {
        f"arn:aws:s3:::{resolve({'Ref': b})}" for b in ("LakeBucket", "InboxBucket", "AthenaBucket")
    }


def test_both_glue_jobs_run_with_a_security_configuration(template, resolve):
    resources = template["Resources"]
    for job in ("TransformJob", "ShellTransformJob"):
        assert resources[job]["Properties"]["SecurityConfiguration"] == {
            "Ref": "GlueSecurityConfiguration"
        }
    config = resources["GlueSecurityConfiguration"]["Properties"]["EncryptionConfiguration"]
    assert config["S3Encryptions"] == [{"S3EncryptionMode": "SSE-S3"}]


def test_the_pipeline_runs_transform_then_dbt_then_activation(template, resolve):
    machine = template["Resources"]["Pipeline"]["Properties"]
    states = machine["Definition"]["States"]
    order, name = [], machine["Definition"]["StartAt"]
    while name:
        order.append(name)
        state = states[name]
        name = state.get("Next") or (state.get("Default") if state["Type"] == "Choice" else None)
    assert order == ["ChooseEngine", "TransformDuckDB", "DbtBuild", "Activate"]
    assert states["ChooseEngine"]["Choices"][0]["Next"] == "TransformSpark"
    assert states["TransformSpark"]["Next"] == "DbtBuild"
    for task in ("TransformDuckDB", "TransformSpark", "DbtBuild", "Activate"):
        state = states[task]
        assert state["Resource"].endswith(".sync"), task  # waits for the job or build
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"]
        assert state["Catch"][0]["Next"] == "NotifyFailure"
    notify = states["NotifyFailure"]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == "${AlertsTopic}"
    assert machine["DefinitionSubstitutions"]["AlertsTopic"] == {"Ref": "AlertsTopic"}
    assert states[notify["Next"]]["Type"] == "Fail"
    schedule = resolve(template["Resources"]["DailySchedule"]["Properties"])
    assert schedule["ScheduleExpression"] == "cron(0 5 * * ? *)"
    assert schedule["Targets"][0]["Arn"] == resolve({"Ref": "Pipeline"})
    assert json.loads(schedule["Targets"][0]["Input"]) == {"engine": "duckdb"}


def test_the_glue_jobs_spark_on_glue_5_and_duckdb_on_the_python_shell(template):
    """Two jobs, one script and one wheel: Spark on Glue 5.0 for large days, DuckDB on a
    Python-shell job (Python 3.9) for the daily runs; both keep their own ledger."""
    resources = template["Resources"]
    spark = resources["TransformJob"]["Properties"]
    assert spark["GlueVersion"] == "5.0" and spark["Command"]["Name"] == "glueetl"
    assert spark["DefaultArguments"]["--engine"] == "spark"
    assert spark["DefaultArguments"]["--job-bookmark-option"] == "job-bookmark-disable"
    assert spark["WorkerType"] == {"Ref": "GlueWorkerType"}
    assert spark["NumberOfWorkers"] == {"Ref": "GlueNumberOfWorkers"}
    shell = resources["ShellTransformJob"]["Properties"]
    assert shell["Command"]["Name"] == "pythonshell" and shell["GlueVersion"] == "3.0"
    assert shell["Command"]["PythonVersion"] == deploy.PYSHELL_PYTHON
    assert shell["MaxCapacity"] == deploy.PYSHELL_MAX_CAPACITY
    assert shell["DefaultArguments"]["--engine"] == "duckdb"
    for job in (spark, shell):
        assert job["ExecutionProperty"]["MaxConcurrentRuns"] == 1  # one transform at a time
        assert job["Role"] == {"Fn::GetAtt": ["TransformRole", "Arn"]}
        # across the two jobs, the lake's lock: only a killed run's lock may look stale
        assert dt.timedelta(minutes=2 * job["Timeout"]) <= locks.TRANSFORM_STALE_AFTER
    activation = resources["ActivationProject"]["Properties"]
    assert dt.timedelta(minutes=2 * activation["TimeoutInMinutes"]) <= activation_runner.STALE_LOCK
    assert shell["Command"]["ScriptLocation"] == spark["Command"]["ScriptLocation"]
    for arg in ("--lake", "--gym_timezone", "--reprocess", "--quality"):
        assert shell["DefaultArguments"][arg] == spark["DefaultArguments"][arg], arg
    wheel = "--additional-python-modules"
    assert shell["DefaultArguments"][wheel] == spark["DefaultArguments"][wheel]
    states = resources["Pipeline"]["Properties"]["Definition"]["States"]
    assert states["TransformDuckDB"]["Parameters"] == {"JobName": "${ShellTransformJob}"}
    assert states["TransformSpark"]["Parameters"]["JobName"] == "${TransformJob}"


def test_athena_caps_bytes_scanned_but_lets_dbt_place_its_tables(template):
    """The cutoff holds for every query; the result location is not enforced, because
    dbt-athena then omits ``external_location`` and Athena writes each table under the results
    prefix, which expires after 7 days, instead of dbt's s3_data_dir."""
    config = template["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is False
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}


def test_dbt_gets_every_setting_its_athena_profile_reads(template, resolve):
    profile = (REPO / "profiles.yml.example").read_text()
    athena = profile.split("athena:", 1)[1]
    wanted = set(re.findall(r"env_var\('([A-Z_]+)'", athena)) - {"AWS_REGION"}  # CodeBuild's
    wanted |= {"PEAK_LAKE", "PEAK_DBT_TARGET", "PEAK_GLUE_DATABASE"}
    env = {
        v["Name"]: v["Value"]
        for v in resolve(template["Resources"]["DbtProject"]["Properties"])["Environment"][
            "EnvironmentVariables"
        ]
    }
    assert wanted <= set(env)
    assert env["PEAK_ATHENA_S3_DATA_DIR"] == f"s3://peak-test-athena/{deploy.DBT_DATA_PREFIX}"
    assert env["PEAK_LAKE"] == LAKE_URI and env["PEAK_DBT_TARGET"] == "athena"
    assert env["PEAK_ATHENA_WORK_GROUP"] == resolve({"Ref": "AthenaWorkGroup"})


# ---------------------------------------------------------------------------------------------
# Least privilege.
# ---------------------------------------------------------------------------------------------


def iam_statements(template, resolve) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, Allow statement) of every identity policy in the template, resolved."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        for document in documents:
            for statement in resolve(document)["Statement"]:
                if statement["Effect"] == "Allow":
                    yield name, statement


def as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def allowed(template, resolve, role: str, action: str, arn: str) -> bool:
    """Whether a role's Allow statements grant ``action`` on ``arn`` (conditions ignored,
    i.e. read as broadly as possible)."""
    for owner, statement in iam_statements(template, resolve):
        if owner != role:
            continue
        if any(fnmatch.fnmatchcase(action, a) for a in as_list(statement["Action"])) and any(
            fnmatch.fnmatchcase(arn, r) for r in as_list(statement["Resource"])
        ):
            return True
    return False


def test_no_policy_grants_wildcard_actions_or_star_resources(template, resolve):
    statements = list(iam_statements(template, resolve))
    assert len({owner for owner, _ in statements}) == 7  # every role has policies
    for owner, statement in statements:
        actions = as_list(statement["Action"])
        assert not [a for a in actions if "*" in a], (owner, statement.get("Sid"), actions)
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= RESOURCELESS_ACTIONS, (owner, statement.get("Sid"))
        for resource in as_list(statement["Resource"]):
            assert resource == "*" or resource.startswith("arn:aws:"), (owner, resource)
            assert resource not in ("arn:aws:s3:::*", "arn:aws:s3:::*/*"), (owner, resource)


def zone_samples() -> dict[str, str]:
    """An object of every zone of the lake, as an ARN."""
    keys = {
        "raw": layout.raw_key("members", "2026-11-24", "ab12", "csv"),
        "raw_parquet": layout.raw_parquet_key("members", "2026-11-24", "ab12"),
        "processed": layout.processed_key("attendance", "2026-11-24"),
        "quarantine_rows": layout.quarantine_rows_key("members", "2026-11-24", "ab12"),
        "quarantine_files": layout.quarantine_file_key("members", "2026-11-24", "ab12", "csv"),
        "transform_lock": layout.TRANSFORM_LOCK_KEY,
        "activation_lock": layout.ACTIVATION_LOCK_KEY,
    }
    return {zone: f"arn:aws:s3:::{LAKE.bucket}/{LAKE.prefix}{key}" for zone, key in keys.items()}


WRITES = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl")


def test_dbt_cannot_write_or_delete_in_the_zones(template, resolve):
    """dbt writes only its own s3_data_dir (and Athena's results, and its run report)."""
    for zone, arn in zone_samples().items():
        for action in WRITES:
            assert not allowed(template, resolve, "DbtRole", action, arn), (zone, action)
    # the checker is not vacuous: what dbt must write, it can
    athena = "arn:aws:s3:::peak-test-athena/"
    assert allowed(template, resolve, "DbtRole", "s3:PutObject", athena + "dbt/fct/x.parquet")
    assert allowed(template, resolve, "DbtRole", "s3:PutObject", athena + "results/q.csv")
    assert not allowed(template, resolve, "DbtRole", "s3:PutObject", athena + "other/x")
    report = f"arn:aws:s3:::{LAKE.bucket}/{LAKE.prefix}{layout.run_report_key('r')}"
    assert allowed(template, resolve, "DbtRole", "s3:PutObject", report)
    assert allowed(template, resolve, "DbtRole", "s3:GetObject", zone_samples()["processed"])


def test_each_role_touches_only_its_own_zones(template, resolve):
    samples = zone_samples()
    assert allowed(template, resolve, "IngestRole", "s3:PutObject", samples["raw"])
    assert not allowed(template, resolve, "IngestRole", "s3:PutObject", samples["processed"])
    assert allowed(template, resolve, "TransformRole", "s3:PutObject", samples["processed"])
    assert allowed(template, resolve, "TransformRole", "s3:DeleteObject", samples["processed"])
    assert not allowed(template, resolve, "TransformRole", "s3:PutObject", samples["raw"])
    assert not allowed(template, resolve, "ActivationRole", "s3:GetObject", samples["processed"])
    # the transforms (Spark and Python shell) take the lake's lock object, read it, release it
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert allowed(template, resolve, "TransformRole", action, samples["transform_lock"])
    assert not allowed(template, resolve, "IngestRole", "s3:PutObject", samples["transform_lock"])
    # activation (CodeBuild) holds its own lock the same way
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert allowed(template, resolve, "ActivationRole", action, samples["activation_lock"])
    # the unsubscribe Lambda creates unsubscribe records and nothing else
    record = f"arn:aws:s3:::{LAKE.bucket}/{LAKE.prefix}{layout.unsubscribe_key('ab' * 32)}"
    assert allowed(template, resolve, "UnsubscribeRole", "s3:PutObject", record)
    for zone, arn in samples.items():
        for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
            assert not allowed(template, resolve, "UnsubscribeRole", action, arn), (zone, action)
    ledger = f"arn:aws:s3:::{LAKE.bucket}/{LAKE.prefix}{layout.activation_state_key('email')}"
    assert not allowed(template, resolve, "UnsubscribeRole", "s3:PutObject", ledger)
    assert not allowed(template, resolve, "UnsubscribeRole", "s3:DeleteObject", record)
    # nobody deletes raw files: retention is the lifecycle rules' job
    roles = resources_of(template, "AWS::IAM::Role")
    for role in roles:
        for zone in ("raw", "raw_parquet"):
            assert not allowed(template, resolve, role, "s3:DeleteObject", samples[zone]), role


# ---------------------------------------------------------------------------------------------
# Deploy into moto.
# ---------------------------------------------------------------------------------------------


#: Log target bucket -> the buckets logging to it, and their prefixes (filled by the stack
#: fixture: moto's CloudFormation ignores LoggingConfiguration, so it goes through the API once
#: the target's policy is there).
LOGGED_BUCKETS: dict[str, list[tuple[str, str]]] = {}


def for_moto(template: dict[str, Any], resolve: Resolver, supported: set[str]):
    """The template without the types moto's CloudFormation lacks; references to them are
    replaced by the physical ids they get when created through their APIs."""
    filtered = copy.deepcopy(template)
    removed = {k for k, r in filtered["Resources"].items() if r["Type"] not in supported}
    for name in removed:
        del filtered["Resources"][name]

    def sub_text(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            target, _, attribute = match.group(1).partition(".")
            if target not in removed:
                return match.group(0)
            return resolve.getatt(target, attribute) if attribute else str(resolve.ref(target))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(x) for x in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] in removed:
            return resolve.ref(node["Ref"])
        if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in removed:
            return resolve.getatt(*node["Fn::GetAtt"])
        if set(node) == {"Fn::Sub"}:
            value = node["Fn::Sub"]
            if isinstance(value, str):
                return {"Fn::Sub": sub_text(value)}
            return {"Fn::Sub": [sub_text(value[0]), fix(value[1])]}
        return {k: fix(v) for k, v in node.items()}

    filtered["Resources"] = fix(filtered["Resources"])
    filtered["Outputs"] = fix(filtered.get("Outputs", {}))
    for resource in filtered["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and "Definition" in props:
            # moto reads DefinitionString only; CloudFormation itself takes either
            props["DefinitionString"] = {
                "Fn::Sub": [
                    json.dumps(props.pop("Definition")),
                    props.pop("DefinitionSubstitutions"),
                ]
            }
    return filtered, removed


def _camel(node: Any) -> Any:
    """CloudFormation's PascalCase properties as CodeBuild's camelCase API parameters."""
    special = {"BuildSpec": "buildspec"}
    if isinstance(node, list):
        return [_camel(x) for x in node]
    if isinstance(node, dict):
        return {special.get(k, k[0].lower() + k[1:]): _camel(v) for k, v in node.items()}
    return node


def create_through_api(endpoint: str, kind: str, props: dict[str, Any]) -> str | None:
    """Create one resource moto's CloudFormation lacks through its service API."""
    if kind == "AWS::Glue::Database":
        client(endpoint, "glue").create_database(DatabaseInput=props["DatabaseInput"])
    elif kind == "AWS::Glue::Table":
        client(endpoint, "glue").create_table(
            DatabaseName=props["DatabaseName"], TableInput=props["TableInput"]
        )
    elif kind == "AWS::Glue::SecurityConfiguration":
        config = props["EncryptionConfiguration"]
        client(endpoint, "glue").create_security_configuration(
            Name=props["Name"],
            EncryptionConfiguration={  # the API spells S3Encryption in the singular
                "S3Encryption": config["S3Encryptions"],
                "CloudWatchEncryption": config["CloudWatchEncryption"],
                "JobBookmarksEncryption": config["JobBookmarksEncryption"],
            },
        )
    elif kind == "AWS::Glue::Job":
        client(endpoint, "glue").create_job(**props)
    elif kind == "AWS::Lambda::Url":
        answer = client(endpoint, "lambda").create_function_url_config(
            FunctionName=props["TargetFunctionArn"],
            AuthType=props["AuthType"],
            InvokeMode=props["InvokeMode"],
        )
        return str(answer["FunctionUrl"])
    elif kind == "AWS::Athena::WorkGroup":
        client(endpoint, "athena").create_work_group(
            Name=props["Name"],
            Description=props["Description"],
            Configuration=props["WorkGroupConfiguration"],
        )
    elif kind == "AWS::CodeBuild::Project":
        camel = _camel(props)
        client(endpoint, "codebuild").create_project(**camel)
    elif kind == "AWS::SES::ConfigurationSet":
        args = {k: v for k, v in props.items() if k != "Name"}
        client(endpoint, "sesv2").create_configuration_set(
            ConfigurationSetName=props["Name"], **args
        )
    elif kind == "AWS::SES::EmailIdentity":
        client(endpoint, "sesv2").create_email_identity(
            EmailIdentity=props["EmailIdentity"],
            ConfigurationSetName=props["ConfigurationSetAttributes"]["ConfigurationSetName"],
        )
    elif kind == "AWS::SecretsManager::Secret":
        generate = props["GenerateSecretString"]
        value = json.loads(generate["SecretStringTemplate"])
        value[generate["GenerateStringKey"]] = secrets.token_hex(generate["PasswordLength"] // 2)
        answer = client(endpoint, "secretsmanager").create_secret(
            Name=props["Name"], Description=props["Description"], SecretString=json.dumps(value)
        )
        return answer["ARN"]
    elif kind == "AWS::CloudWatch::Alarm":
        client(endpoint, "cloudwatch").put_metric_alarm(**props)
    elif kind == "AWS::S3::BucketPolicy":
        s3 = client(endpoint, "s3")
        s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
        stored = json.loads(s3.get_bucket_policy(Bucket=props["Bucket"])["Policy"])
        assert stored == props["PolicyDocument"]
        for bucket, prefix in LOGGED_BUCKETS.get(props["Bucket"], []):
            # S3 takes the logging only with this policy in place on the target
            s3.put_bucket_logging(
                Bucket=bucket,
                BucketLoggingStatus={
                    "LoggingEnabled": {"TargetBucket": props["Bucket"], "TargetPrefix": prefix}
                },
            )
        # moto enforces bucket policies but ignores their Conditions: our TLS-only Deny would
        # deny every request, TLS or not. Stored and read back, then removed again.
        s3.delete_bucket_policy(Bucket=props["Bucket"])
    else:
        raise AssertionError(f"no API deployment for {kind}")
    return None


#: What needs to exist before the stack (others reference it), and what after (it references
#: the stack's roles, queues and buckets).
BEFORE_STACK = (
    "AWS::SecretsManager::Secret",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::Glue::SecurityConfiguration",
)
API_ORDER = (
    *BEFORE_STACK,
    "AWS::SES::ConfigurationSet",
    "AWS::SES::EmailIdentity",
    "AWS::Athena::WorkGroup",
    "AWS::Glue::Job",
    "AWS::Lambda::Url",
    "AWS::CodeBuild::Project",
    "AWS::CloudWatch::Alarm",
    "AWS::S3::BucketPolicy",
)


@pytest.fixture(scope="module")
def stack(packaged, moto_endpoint) -> dict[str, Any]:
    """The whole template deployed into moto: returns what the tests below need."""
    from moto.cloudformation.parsing import get_model_map

    out, template = packaged
    resolve = Resolver(template, PARAMETERS)
    s3 = client(moto_endpoint, "s3")
    bucket = PARAMETERS["ArtifactsBucketName"]
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in sorted((out / "artifacts").rglob("*")):
        if path.is_file():
            key = PARAMETERS["ArtifactsPrefix"] + path.relative_to(out / "artifacts").as_posix()
            s3.upload_file(str(path), bucket, key)

    supported = set(get_model_map())
    filtered, removed = for_moto(template, resolve, supported)
    for bucket in resources_of(template, "AWS::S3::Bucket").values():
        props = resolve(bucket["Properties"])
        if "LoggingConfiguration" in props:
            config = props["LoggingConfiguration"]
            LOGGED_BUCKETS.setdefault(config["DestinationBucketName"], []).append(
                (props["BucketName"], config["LogFilePrefix"])
            )
    skipped = {template["Resources"][name]["Type"] for name in removed}

    def deploy_removed(kinds: tuple[str, ...], exclude: bool) -> None:
        ordered = sorted(removed, key=lambda n: API_ORDER.index(template["Resources"][n]["Type"]))
        for name in ordered:
            resource = template["Resources"][name]
            if (resource["Type"] in kinds) == exclude:
                continue
            if "Condition" in resource and not resolve.condition(resource["Condition"]):
                continue
            arn = create_through_api(
                moto_endpoint, resource["Type"], resolve(resource["Properties"])
            )
            if arn:
                resolve.overrides[name] = arn

    deploy_removed(BEFORE_STACK, exclude=False)
    filtered, _ = for_moto(template, resolve, supported)  # with the ARNs they were given
    cfn = client(moto_endpoint, "cloudformation")
    cfn.create_stack(
        StackName="peak-test",
        TemplateBody=json.dumps(filtered),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    described = cfn.describe_stacks(StackName="peak-test")["Stacks"][0]
    deploy_removed(BEFORE_STACK, exclude=True)
    summaries = cfn.list_stack_resources(StackName="peak-test")["StackResourceSummaries"]
    return {
        "endpoint": moto_endpoint,
        "dist": out,
        "template": template,
        "resolve": resolve,
        "status": described["StackStatus"],
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        "resources": {s["LogicalResourceId"]: s for s in summaries},
        "skipped": skipped,
        "filtered": filtered,
    }


def test_the_stack_deploys_into_moto(stack):
    assert stack["skipped"] == KNOWN_UNSUPPORTED
    assert stack["status"] == "CREATE_COMPLETE"
    expected = set(stack["filtered"]["Resources"])
    assert set(stack["resources"]) == expected
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in stack["resources"].values())
    assert stack["outputs"]["LakeUri"] == LAKE_URI
    assert stack["outputs"]["TransformJobName"] == "peak-test-transform"
    assert stack["outputs"]["ShellTransformJobName"] == "peak-test-transform-shell"


def test_the_deployed_pieces_are_wired_as_the_template_says(stack):
    endpoint = stack["endpoint"]
    config = client(endpoint, "lambda").get_function_configuration(FunctionName="peak-test-ingest")
    assert config["Handler"] == "ingestion.handler.handler" and config["Runtime"] == "python3.11"
    assert config["Environment"]["Variables"]["PEAK_LAKE"] == LAKE_URI
    function_zip = next(
        (stack["dist"] / "artifacts" / "lambda").glob("ingest-" + "[0-9a-f]" * 12 + ".zip")
    )
    digest = base64.b64encode(hashlib.sha256(function_zip.read_bytes()).digest()).decode()
    assert config["CodeSha256"] == digest  # the deployed code is the packaged zip
    machine = client(endpoint, "stepfunctions").describe_state_machine(
        stateMachineArn=stack["outputs"]["PipelineArn"]
    )
    definition = json.loads(machine["definition"])
    states = definition["States"]
    assert states["TransformDuckDB"]["Parameters"]["JobName"] == "peak-test-transform-shell"
    assert states["TransformSpark"]["Parameters"]["JobName"] == "peak-test-transform"
    assert definition["States"]["DbtBuild"]["Parameters"]["ProjectName"] == "peak-test-dbt"
    for name, command in (("transform", "glueetl"), ("transform-shell", "pythonshell")):
        job = client(endpoint, "glue").get_job(JobName=f"peak-test-{name}")["Job"]
        assert job["Command"]["Name"] == command
        assert job["DefaultArguments"]["--lake"] == LAKE_URI
        assert job["Role"] == f"arn:aws:iam::{ACCOUNT}:role/peak-test-transform"
    group = client(endpoint, "athena").get_work_group(WorkGroup="peak-test")["WorkGroup"]
    assert group["Configuration"]["BytesScannedCutoffPerQuery"] == 1073741824
    assert group["Configuration"]["EnforceWorkGroupConfiguration"] is False
    projects = client(endpoint, "codebuild").batch_get_projects(
        names=["peak-test-dbt", "peak-test-activation"]
    )["projects"]
    assert {p["serviceRole"].rsplit("/", 1)[-1] for p in projects} == {
        "peak-test-dbt",
        "peak-test-activation",
    }
    secret = client(endpoint, "secretsmanager").get_secret_value(SecretId="peak/test/activation")
    assert set(json.loads(secret["SecretString"])) == {
        "HUBSPOT_ACCESS_TOKEN",
        "REDIS_URL",
        "PEAK_EMAIL_UNSUBSCRIBE_SECRET",
    }


def test_after_a_deploy_catalog_sync_has_nothing_to_change(stack):
    """The tables CloudFormation creates are exactly what `peak catalog sync` wants."""
    glue = client(stack["endpoint"], "glue")
    result = catalog.sync(glue, "peak_processed", LAKE, dry_run=True)
    assert result.created == [] and result.updated == [] and result.orphaned == []
    assert sorted(result.unchanged) == sorted(contracts.load_all())


def test_the_lifecycle_rules_are_valid_s3_rules(stack):
    """moto's CloudFormation ignores LifecycleConfiguration, so put the rendered rules through
    the S3 API (which parses them) and read them back."""
    s3 = client(stack["endpoint"], "s3")
    resolve = stack["resolve"]
    for name in ("LakeBucket", "InboxBucket", "AthenaBucket"):
        props = resolve(stack["template"]["Resources"][name]["Properties"])
        rules = []
        for rule in props["LifecycleConfiguration"]["Rules"]:
            api = {
                "ID": rule["Id"],
                "Status": rule["Status"],
                "Filter": {"Prefix": rule.get("Prefix", "")},
            }
            if "ExpirationInDays" in rule:
                api["Expiration"] = {"Days": rule["ExpirationInDays"]}
            if "AbortIncompleteMultipartUpload" in rule:
                api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
            rules.append(api)
        s3.put_bucket_lifecycle_configuration(
            Bucket=props["BucketName"], LifecycleConfiguration={"Rules": rules}
        )
        back = s3.get_bucket_lifecycle_configuration(Bucket=props["BucketName"])["Rules"]
        assert [r["ID"] for r in back] == [r["ID"] for r in rules]


# ---------------------------------------------------------------------------------------------
# The packaged artefacts run.
# ---------------------------------------------------------------------------------------------


def _unzip(path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(dest)
    return dest


def managed_layer_stand_in(dest: Path, provided: tuple[str, ...] = deploy.LAMBDA_PROVIDED) -> Path:
    """What the AWS SDK for pandas layer and the Lambda runtime provide (pyarrow, numpy,
    pandas, boto3 and their dependencies; ``("boto3",)``: the runtime alone), linked from this
    environment, and nothing else."""
    import importlib.metadata as metadata

    dest.mkdir(parents=True)
    for name in sorted(deploy.dependency_closure(provided)):
        for item in metadata.distribution(name).files or []:
            top = str(item).split("/", 1)[0]
            if top.startswith("..") or top.endswith(".dist-info") or top == "__pycache__":
                continue
            source = Path(metadata.distribution(name).locate_file(top))
            if source.exists() and not (dest / top).exists():
                (dest / top).symlink_to(source)
    return dest


@contextmanager
def as_role(endpoint: str, role: str) -> Iterator[dict[str, str]]:
    """Credentials of a deployed role, with moto's IAM enforcement on (S3 actions are checked
    against the role's policies, resources included) for the duration.

    No Lambda service runs here to assume the role, so the role's trust policy is widened in
    the emulator to let the test's principal assume it; its permissions stay as deployed.
    """
    import requests

    iam = client(endpoint, "iam")
    user = f"test-admin-{secrets.token_hex(3)}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    admin = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="test-admin", PolicyDocument=json.dumps(admin))
    trust = json.loads(json.dumps(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]))
    widened = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
            }
        ],
    }
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(widened))
    # moto keeps the inline policies of roles CloudFormation created in a shape its own IAM
    # enforcement cannot read: put the deployed documents back through the API, unchanged.
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto answers with the dict's repr
            document = ast.literal_eval(document)
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=30)
    try:
        sts = role_client(
            endpoint,
            {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            },
            "sts",
        )
        assumed = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="peak-test"
        )["Credentials"]
        yield {
            "AWS_ACCESS_KEY_ID": assumed["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": assumed["SecretAccessKey"],
            "AWS_SESSION_TOKEN": assumed["SessionToken"],
        }
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"1000000000", timeout=30)
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))


def role_client(endpoint: str, credentials: dict[str, str], service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
    )


LAMBDA_SCRIPT = """
import importlib, json, sys
sys.path[:0] = json.loads(sys.argv[1])
module, function = sys.argv[2].rsplit(".", 1)
result = getattr(importlib.import_module(module), function)(json.loads(sys.argv[3]), None)
files = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}
print(json.dumps({"result": result, "files": {n: f for n, f in files.items() if f}}))
"""


def test_the_packaged_lambda_lands_an_s3_event_end_to_end(stack, tmp_path):
    """Given the Lambda zip and deps layer from `peak deploy package` unzipped beside a
    stand-in of the managed layer (no site-packages at all), when the deployed function's
    handler, with the deployed role's credentials and moto enforcing its policies, gets a real
    S3 event for two uploads to the inbox, then both land in the lake."""
    endpoint, dist = stack["endpoint"], stack["dist"]
    lam = client(endpoint, "lambda").get_function_configuration(FunctionName="peak-test-ingest")
    s3 = client(endpoint, "s3")
    inbox = stack["outputs"]["InboxBucket"]
    uploads = {
        "exports/Camden gym/attendance_2026-11-24.csv": csv_bytes([CHECKIN]),
        "exports/members+2026-11-24.json": json.dumps([MEMBER]).encode(),
    }
    for key, body in uploads.items():
        s3.put_object(Bucket=inbox, Key=key, Body=body)
    event = json.loads((HERE / "events" / "s3_object_created.json").read_text())
    for record in event["Records"]:
        record["s3"]["bucket"]["name"] = inbox
        record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{inbox}"

    artifacts = dist / "artifacts" / "lambda"
    role = stack["resolve"].ref("IngestRole")
    function = _unzip(next(artifacts.glob("ingest-" + "[0-9a-f]" * 12 + ".zip")), tmp_path / "task")
    layer = _unzip(next(artifacts.glob("ingest-deps-*.zip")), tmp_path / "opt") / "python"
    provided = managed_layer_stand_in(tmp_path / "managed")
    env = {
        **aws_env(endpoint),
        **lam["Environment"]["Variables"],
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
    }
    paths = [str(function), str(layer), str(provided)]
    with as_role(endpoint, role) as credentials:
        run = subprocess.run(
            [
                sys.executable,
                "-S",
                "-c",
                LAMBDA_SCRIPT,
                json.dumps(paths),
                lam["Handler"],
                json.dumps(event),
            ],
            env={**env, **credentials},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        # the same credentials cannot write outside the ingestion's prefixes
        denied = role_client(endpoint, credentials, "s3")
        with pytest.raises(Exception, match="AccessDenied"):
            denied.put_object(
                Bucket=LAKE.bucket, Key=LAKE.prefix + layout.processed_key("members", "x"), Body=b""
            )
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["result"]["landed"] == 2 and answer["result"]["rejected"] == 0
    stdlib = os.path.dirname(os.__file__)
    for name, path in answer["files"].items():
        assert path.startswith((*paths, stdlib)), (name, path)
    assert answer["files"]["ingestion.handler"].startswith(str(function))
    assert answer["files"]["pydantic"].startswith(str(layer))

    listed = {
        o["Key"] for o in s3.list_objects_v2(Bucket=LAKE.bucket, Prefix=LAKE.prefix)["Contents"]
    }
    for key, body in uploads.items():
        sha = hashlib.sha256(body).hexdigest()
        dataset = "attendance" if "attendance" in key else "members"
        raw = [k for k in listed if k.startswith(f"{LAKE.prefix}raw/{dataset}/") and sha in k]
        assert len(raw) == 1, (key, sorted(listed))
        stored = s3.get_object(Bucket=LAKE.bucket, Key=raw[0])["Body"].read()
        assert stored == body
        assert f"{LAKE.prefix}{layout.ingest_ledger_key(dataset, sha)}" in listed
        assert any(k.startswith(f"{LAKE.prefix}raw_parquet/{dataset}/") for k in listed)
    run_id = answer["result"]["run_id"]
    assert f"{LAKE.prefix}{layout.run_report_key(run_id)}" in listed


def one_click(url: str) -> dict[str, Any]:
    """What a function URL hands the function when a mail client POSTs a one-click unsubscribe
    (RFC 8058) to ``url`` (payload format 2.0)."""
    return {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": url.split("?", 1)[1],
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": "List-Unsubscribe=One-Click",
        "isBase64Encoded": False,
    }


def test_the_unsubscribe_function_is_public_behind_its_url_and_reads_only_its_key(stack):
    endpoint = stack["endpoint"]
    lam = client(endpoint, "lambda")
    config = lam.get_function_configuration(FunctionName="peak-test-unsubscribe")
    assert config["Handler"] == deploy.UNSUBSCRIBE_HANDLER
    env = config["Environment"]["Variables"]
    assert env["PEAK_LAKE"] == LAKE_URI
    assert env["PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID"].startswith(
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:peak/test/unsubscribe"
    )
    function_zip = next((stack["dist"] / "artifacts" / "lambda").glob("unsubscribe-*.zip"))
    digest = base64.b64encode(hashlib.sha256(function_zip.read_bytes()).digest()).decode()
    assert config["CodeSha256"] == digest
    url = lam.get_function_url_config(FunctionName="peak-test-unsubscribe")
    assert url["AuthType"] == "NONE"
    # the e-mails link to it: the activation project's PEAK_EMAIL_UNSUBSCRIBE_URL is its URL
    [project] = client(endpoint, "codebuild").batch_get_projects(names=["peak-test-activation"])[
        "projects"
    ]
    variables = {v["name"]: v["value"] for v in project["environment"]["environmentVariables"]}
    assert variables["PEAK_EMAIL_UNSUBSCRIBE_URL"] == url["FunctionUrl"]
    assert variables["PEAK_EMAIL_UNSUBSCRIBE_SECRET"].startswith(
        env["PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID"]
    )
    secret = client(endpoint, "secretsmanager").get_secret_value(
        SecretId=env["PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID"]
    )
    assert set(json.loads(secret["SecretString"])) == {"PEAK_EMAIL_UNSUBSCRIBE_SECRET"}


def test_the_packaged_unsubscribe_function_records_a_one_click_post(stack, tmp_path):
    """Given the unsubscribe zip and the deps layer from `peak deploy package` beside a
    stand-in of the runtime's boto3 (no pandas layer, no site-packages), when the deployed
    function's handler gets a one-click POST for a link signed with the deployed secret, then
    the address is on the register in the S3 lake; with the deployed role's credentials and
    moto enforcing its policies, the same, and those credentials can write nowhere else.

    moto judges every action but S3's against the resource "*", so a role allowed one secret
    is refused it there: the run that reads the key from Secrets Manager (by the id in the
    function's environment) uses the emulator's own credentials; the role's run is given the
    key, and its secret grant is checked on the template (`allowed`) instead."""
    from activation.addresses import address_key
    from activation.unsubscribe.links import unsubscribe_url

    endpoint, dist, resolve = stack["endpoint"], stack["dist"], stack["resolve"]
    lam = client(endpoint, "lambda").get_function_configuration(
        FunctionName="peak-test-unsubscribe"
    )
    variables = lam["Environment"]["Variables"]
    secret_id = variables["PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID"]
    secret = client(endpoint, "secretsmanager").get_secret_value(SecretId=secret_id)
    key = json.loads(secret["SecretString"])["PEAK_EMAIL_UNSUBSCRIBE_SECRET"]
    base = "https://abc.lambda-url.eu-west-1.on.aws/"
    links = {a: unsubscribe_url(base, a, key) for a in ("a@example.com", "Member42@Example.com")}
    forged = unsubscribe_url(base, "x@example.com", "not-the-key")
    role = resolve.ref("UnsubscribeRole")
    template = stack["template"]
    assert allowed(template, resolve, "UnsubscribeRole", "secretsmanager:GetSecretValue", secret_id)
    activation_secret = resolve.ref("ActivationSecret")
    assert not allowed(
        template, resolve, "UnsubscribeRole", "secretsmanager:GetSecretValue", activation_secret
    )

    artifacts = dist / "artifacts" / "lambda"
    function = _unzip(next(artifacts.glob("unsubscribe-*.zip")), tmp_path / "task")
    layer = _unzip(next(artifacts.glob("ingest-deps-*.zip")), tmp_path / "opt") / "python"
    runtime = managed_layer_stand_in(tmp_path / "runtime", ("boto3",))
    env = {
        **aws_env(endpoint),
        **variables,
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
    }
    paths = [str(function), str(layer), str(runtime)]

    def invoke(event: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
        argv = [sys.executable, "-S", "-c", LAMBDA_SCRIPT, json.dumps(paths), lam["Handler"]]
        run = subprocess.run(
            [*argv, json.dumps(event)],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        answer = json.loads(run.stdout.strip().splitlines()[-1])
        assert answer["result"]["statusCode"] != 500, run.stderr[-3000:]
        return answer

    first = invoke(one_click(links["a@example.com"]), {})  # the key read from Secrets Manager
    assert first["result"]["statusCode"] == 200
    with as_role(endpoint, role) as credentials:
        given_key = {**credentials, "PEAK_EMAIL_UNSUBSCRIBE_SECRET": key}
        given_key["PEAK_EMAIL_UNSUBSCRIBE_SECRET_ID"] = ""
        answer = invoke(one_click(links["Member42@Example.com"]), given_key)
        refused = invoke(one_click(forged), given_key)
        again = invoke(one_click(links["Member42@Example.com"]), given_key)
        s3 = role_client(endpoint, credentials, "s3")
        with pytest.raises(Exception, match="AccessDenied"):  # not the send ledger
            s3.put_object(
                Bucket=LAKE.bucket,
                Key=LAKE.prefix + layout.activation_state_key("email", "ledger.json"),
                Body=b"{}",
            )
        with pytest.raises(Exception, match="AccessDenied"):  # nor read the register
            s3.get_object(Bucket=LAKE.bucket, Key=LAKE.prefix + layout.unsubscribe_key("ab" * 32))
    assert answer["result"]["statusCode"] == 200 and again["result"]["statusCode"] == 200
    assert refused["result"]["statusCode"] == 400
    stdlib = os.path.dirname(os.__file__)
    for name, path in [*first["files"].items(), *answer["files"].items()]:
        assert path.startswith((*paths, stdlib)), (name, path)
    assert answer["files"]["activation.unsubscribe.handler"].startswith(str(function))
    assert not {"pyarrow", "duckdb", "activation.email", "activation.base"} & set(answer["files"])

    listed = client(endpoint, "s3").list_objects_v2(
        Bucket=LAKE.bucket, Prefix=LAKE.prefix + layout.UNSUBSCRIBES_PREFIX
    )
    records = {o["Key"] for o in listed["Contents"]}
    assert records == {  # the forged one left nothing
        LAKE.prefix + layout.unsubscribe_key(address_key(a)) for a in links
    }
    stored = client(endpoint, "s3").get_object(Bucket=LAKE.bucket, Key=min(records))["Body"]
    assert json.loads(stored.read())["source"] == "one-click"


def test_the_buckets_log_to_the_access_log_bucket_in_moto(stack):
    s3 = client(stack["endpoint"], "s3")
    logs = stack["resolve"].ref("AccessLogsBucket")
    for name, prefix in (("LakeBucket", "lake/"), ("InboxBucket", "inbox/")):
        status = s3.get_bucket_logging(Bucket=stack["resolve"].ref(name))["LoggingEnabled"]
        assert status == {"TargetBucket": logs, "TargetPrefix": prefix}
    glue = client(stack["endpoint"], "glue")
    for job in ("peak-test-transform", "peak-test-transform-shell"):
        assert glue.get_job(JobName=job)["Job"]["SecurityConfiguration"] == "peak-test-transform"


# -- checkov -------------------------------------------------------------------------------------

#: checkov, in its own locked environment (tools/checkov/, installed by `make install`).
CHECKOV = REPO / ".venv-tools" / "checkov" / "bin" / "checkov"
#: The checks the issue names, which must pass (or be skipped with a reason) where they apply.
PERSONAL_DATA_CHECKS = {"CKV_AWS_18", "CKV_AWS_195", "CKV_AWS_82"}


def declared_skips(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(resource, check) -> why, as the template declares them beside each resource."""
    out = {}
    for name, resource in template["Resources"].items():
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            out[(name, skip["id"])] = skip.get("comment", "")
    return out


def test_checkov_finds_nothing_but_the_exceptions_declared_beside_their_resources(packaged):
    """checkov (offline) on the source template and the rendered one: no failed check; every
    skipped one is declared once, beside its resource, with its reason; and the checks on
    personal data at rest pass on the buckets and Glue jobs (the Athena workgroup's one
    exception is the documented one)."""
    assert CHECKOV.exists(), "checkov is missing: run `make install`"
    out, rendered = packaged
    run = subprocess.run(
        [
            str(CHECKOV),
            "-f",
            str(REPO / "infra" / "template.yaml"),
            "-f",
            str(out / "template.json"),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    report = json.loads(run.stdout)
    results = report["results"]
    failed = [(c["resource"], c["check_id"]) for c in results["failed_checks"]]
    assert failed == [] and run.returncode == 0, failed or run.stderr[-2000:]
    assert report["summary"]["parsing_errors"] == 0

    declared = declared_skips(rendered)
    assert declared == declared_skips(deploy.load_template())  # the render adds none
    skipped = {(c["resource"].split(".", 1)[1], c["check_id"]) for c in results["skipped_checks"]}
    assert skipped == set(declared)  # no stale exception, none taken silently
    for (name, check), why in declared.items():
        assert len(why.split()) >= 8, (name, check, why)  # a reason, not a shrug
    passed = {(c["resource"].split(".", 1)[1], c["check_id"]) for c in results["passed_checks"]}
    for bucket in ("LakeBucket", "InboxBucket", "AthenaBucket"):
        assert (bucket, "CKV_AWS_18") in passed
    for job in ("TransformJob", "ShellTransformJob"):
        assert (job, "CKV_AWS_195") in passed
    assert "external_location" in declared[("AthenaWorkGroup", "CKV_AWS_82")]
    assert {c for _, c in declared} & PERSONAL_DATA_CHECKS == {"CKV_AWS_18", "CKV_AWS_82"}
    assert [n for n, c in declared if c == "CKV_AWS_18"] == ["AccessLogsBucket"]


# -- the Glue job, with the arguments the job definition passes --------------------------------


@pytest.fixture(scope="module")
def glue_site(packaged, tmp_path_factory) -> Path:
    """The packaged wheel installed the way Glue's --additional-python-modules does (pip)."""
    out, _ = packaged
    wheel = next((out / "artifacts" / "glue").glob("peak_glue-*.whl"))
    return pip_install_wheel(wheel, tmp_path_factory.mktemp("glue-site"))


def job_arguments(
    template, resolve, lake_root: str, run_arguments: dict[str, str], job_id: str = "TransformJob"
) -> list[str]:
    """What Glue passes the script: --JOB_NAME, the job's DefaultArguments, a run's Arguments
    (a run's replace the defaults), with the lake swapped for a local one."""
    job = resolve(template["Resources"][job_id]["Properties"])
    arguments = {**job["DefaultArguments"], **run_arguments}
    assert arguments["--lake"] == LAKE_URI
    arguments["--lake"] = lake_root
    argv = ["--JOB_NAME", job["Name"]]
    for key, value in arguments.items():
        argv += [key, value]
    return argv


def small_local_lake(root: Path, uri: str | None = None) -> Lake:
    """Three small exports landed into a lake (a local folder under ``root`` by default)."""
    lake = Lake.from_uri(uri or str(root / "lake"))
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    files = {
        "members_2026-11-23.csv": csv_bytes([MEMBER]),
        "classes_2026-11-23.csv": csv_bytes([CLASS]),
        "attendance_2026-11-23.csv": csv_bytes(
            [CHECKIN, dict(CHECKIN, attendance_id="A2", user_id="U2")]
        ),
    }
    for name, body in files.items():
        (inbox / name).write_bytes(body)
    land_many(lake, [str(inbox / n) for n in files], ingested_at=dt.datetime(2026, 11, 24, 6))
    return lake


def run_glue_script(
    packaged, argv: list[str], cwd: Path, *, site: Path | None = None, python: Path | None = None,
    **env: str,
):  # fmt: skip
    """The packaged script as a Glue job runs it: the wheel installed by pip, either into
    ``site`` (on PYTHONPATH of this Python 3.11, the Spark job's) or into ``python``'s own
    environment (the Python-shell job's 3.9). Our packages must come from there, not the
    repository."""
    out, _ = packaged
    script = next((out / "artifacts" / "glue").glob("peak_transform-*.py"))
    interpreter = str(python or sys.executable)
    environ = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "JAVA_HOME": os.environ.get("JAVA_HOME", ""),
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        **({"PYTHONPATH": str(site)} if site else {}),
        **env,
    }
    installed = str(site) if site else str(Path(interpreter).parent.parent)
    which = subprocess.run(
        [interpreter, "-c",
         "import glue, peak, contracts; print(glue.__file__, peak.__file__, contracts.__file__)"],
        env=environ, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert which.returncode == 0, which.stderr
    assert all(path.startswith(installed) for path in which.stdout.split()), which.stdout
    return subprocess.run(
        [interpreter, str(script), *argv],
        env=environ, cwd=cwd, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def transform_report(lake: Lake) -> dict[str, Any]:
    reports = [json.loads(lake.read_bytes(k)) for k in lake.list("_runs/")]
    return next(r for r in reports if r["command"] == "transform")


def check_transformed(lake: Lake, engine: str, job_name: str = "peak-test-transform") -> None:
    report = transform_report(lake)
    assert report["status"] == "ok", report.get("error")
    assert report["options"]["engine"] == engine
    assert report["options"]["job_name"] == job_name
    assert report["options"]["quality"] is True
    assert report["datasets"]["attendance"]["rows_valid"] == 2
    assert lake.list(layout.processed_prefix("attendance")) == [
        layout.processed_key("attendance", "2026-11-23")
    ]
    assert lake.list(layout.quality_docs_prefix())  # Great Expectations ran


def python39() -> str | None:
    """A Python 3.9 interpreter (the Python-shell job's): $PEAK_PYTHON39, one of pyenv's, or
    python3.9 on PATH (not a pyenv shim, which answers only where 3.9 is the local version)."""
    if os.environ.get("PEAK_PYTHON39"):
        return os.environ["PEAK_PYTHON39"]
    roots = [Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")), Path("/root/.pyenv")]
    for root in roots:
        candidates = sorted(root.glob("versions/3.9*/bin/python3.9"))
        if candidates:
            return str(candidates[-1])
    found = shutil.which("python3.9")
    return found if found and "shims" not in Path(found).parts else None


@pytest.fixture(scope="module")
def pyshell_python(packaged) -> Path:
    """A Python 3.9 environment into which pip installed the packaged Glue wheel, resolving its
    Requires-Dist for Python 3.9 from the package index: what the Python-shell job's
    ``--additional-python-modules`` does. The environment is kept between runs (keyed by the
    pins, under $PEAK_TEST_CACHE or ~/.cache/peak-tests) so only the first run downloads."""
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no Python 3.9 interpreter (set PEAK_PYTHON39): the Python-shell job's")
    pins = "\n".join(deploy.pyshell_requirements())
    key = hashlib.sha256(f"{interpreter}\n{pins}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("PEAK_TEST_CACHE", Path.home() / ".cache" / "peak-tests"))
    env_dir = cache / f"pyshell-{key}"
    python = env_dir / "bin" / "python"
    cache.mkdir(parents=True, exist_ok=True)
    out, _ = packaged
    wheel = next((out / "artifacts" / "glue").glob("peak_glue-*.whl"))
    with open(cache / f"pyshell-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time (parallel test runs)
        if not (env_dir / ".ready").exists():
            shutil.rmtree(env_dir, ignore_errors=True)
            subprocess.run([interpreter, "-m", "venv", str(env_dir)], check=True, timeout=300)
            (env_dir / ".ready").touch()
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             str(wheel)],
            capture_output=True,
            text=True,
            timeout=1200,
        )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "(3, 9)"
    return python


def test_the_glue_wheel_serves_both_pythons():
    """The Spark job's pins (what the tests run with) for 3.11, the shell job's for 3.9."""
    requires = deploy.glue_wheel_requires()
    shell = [r for r in requires if r.endswith('python_version < "3.11"')]
    spark = [r for r in requires if r.endswith('python_version >= "3.11"')]
    assert len(shell) + len(spark) == len(requires)
    assert [r.split(";")[0] for r in shell] == deploy.pyshell_requirements()
    assert any(r.startswith("duckdb==") for r in shell)
    assert any(r.startswith("great-expectations==") for r in shell)


def test_the_python_shell_job_runs_its_script_on_python_3_9(
    packaged, pyshell_python, resolve, tmp_path
):
    """The daily run: the state machine starts the Python-shell job with its DefaultArguments;
    the packaged script runs on Python 3.9 from the pip-installed wheel and transforms the lake
    with DuckDB, Great Expectations included."""
    template = packaged[1]
    states = template["Resources"]["Pipeline"]["Properties"]["Definition"]["States"]
    assert "Arguments" not in states["TransformDuckDB"]["Parameters"]
    lake = small_local_lake(tmp_path)
    argv = job_arguments(template, resolve, lake.root, {}, job_id="ShellTransformJob")
    assert argv[argv.index("--engine") + 1] == "duckdb"
    run = run_glue_script(packaged, argv, tmp_path, python=pyshell_python)
    assert run.returncode == 0, run.stderr[-3000:]
    check_transformed(lake, "duckdb", job_name="peak-test-transform-shell")


def test_the_python_shell_job_transforms_an_s3_lake(
    packaged, pyshell_python, resolve, moto_endpoint, tmp_path, monkeypatch
):
    """The same on an S3 lake (moto's server), as in AWS: staging through /tmp, the lake's
    lock taken by conditional PUT and released, everything on Python 3.9's boto3."""
    for key, value in aws_env(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    bucket = "peak-shell-lake"
    client(moto_endpoint, "s3").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    lake = small_local_lake(tmp_path, f"s3://{bucket}/lake")
    argv = job_arguments(packaged[1], resolve, lake.root, {}, job_id="ShellTransformJob")
    run = run_glue_script(packaged, argv, tmp_path, python=pyshell_python, **aws_env(moto_endpoint))
    assert run.returncode == 0, run.stderr[-3000:]
    check_transformed(lake, "duckdb", job_name="peak-test-transform-shell")
    assert not lake.exists(layout.TRANSFORM_LOCK_KEY)


@pytest.mark.spark
def test_the_glue_script_runs_spark_with_the_jobs_arguments(packaged, glue_site, resolve, tmp_path):
    template = packaged[1]
    lake = small_local_lake(tmp_path)
    argv = job_arguments(template, resolve, lake.root, {})
    assert argv[argv.index("--engine") + 1] == "spark"
    run = run_glue_script(
        packaged,
        argv,
        tmp_path,
        site=glue_site,
        PEAK_SPARK_DRIVER_MEMORY="1g",
        PEAK_SPARK_SHUFFLE_PARTITIONS="2",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    check_transformed(lake, "spark")
