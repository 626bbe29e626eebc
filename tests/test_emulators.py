"""The locked botocore and moto agree on every AWS service the platform calls.

botocore changes a service's wire protocol from time to time (1.44 moved Athena to REST-JSON);
moto follows later. When they disagree, the infra, dbt-on-Athena and e-mail tests fail far from
the cause. Here one write and one read per service against moto's server name the service and
both versions, so `make test-latest` says plainly which protocol moved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from typing import Any

import pytest

from tests.moto_server import REGION, client

ROLE_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
    '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)


def athena(c: Any) -> None:
    c.create_work_group(Name="agree", Configuration={"BytesScannedCutoffPerQuery": 10**9})
    assert c.get_work_group(WorkGroup="agree")["WorkGroup"]["Name"] == "agree"
    started = c.start_query_execution(QueryString="select 1", WorkGroup="agree")
    assert c.get_query_execution(QueryExecutionId=started["QueryExecutionId"])


def glue(c: Any) -> None:
    c.create_database(DatabaseInput={"Name": "agree"})
    assert c.get_database(Name="agree")["Database"]["Name"] == "agree"


def s3(c: Any) -> None:
    c.create_bucket(Bucket="agree", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    c.put_object(Bucket="agree", Key="k", Body=b"v", IfNoneMatch="*")
    assert c.get_object(Bucket="agree", Key="k")["Body"].read() == b"v"


def ses(c: Any) -> None:
    c.verify_email_identity(EmailAddress="sender@example.com")
    c.create_template(Template={"TemplateName": "agree", "SubjectPart": "s", "TextPart": "t"})
    sent = c.send_bulk_templated_email(
        Source="sender@example.com",
        Template="agree",
        DefaultTemplateData="{}",
        Destinations=[{"Destination": {"ToAddresses": ["a@example.com"]}}],
    )
    assert sent["Status"][0]["MessageId"]  # moto leaves out "Status"; the sink reads either


def sesv2(c: Any) -> None:
    c.create_email_identity(EmailIdentity="sender@example.com")
    assert c.get_email_identity(EmailIdentity="sender@example.com")


def iam(c: Any) -> None:
    c.create_role(RoleName="agree", AssumeRolePolicyDocument=ROLE_POLICY)
    assert c.get_role(RoleName="agree")["Role"]["RoleName"] == "agree"


def sts(c: Any) -> None:
    assert c.get_caller_identity()["Account"]


def awslambda(c: Any) -> None:
    assert "Functions" in c.list_functions()


def cloudformation(c: Any) -> None:
    body = '{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}'
    c.create_stack(StackName="agree", TemplateBody=body)
    assert c.describe_stacks(StackName="agree")["Stacks"][0]["StackName"] == "agree"


def stepfunctions(c: Any) -> None:
    assert "stateMachines" in c.list_state_machines()


def events(c: Any) -> None:
    c.put_rule(Name="agree", ScheduleExpression="rate(1 day)")
    assert c.describe_rule(Name="agree")["Name"] == "agree"


def codebuild(c: Any) -> None:
    assert "projects" in c.list_projects()


def secretsmanager(c: Any) -> None:
    c.create_secret(Name="agree", SecretString="s")
    assert c.get_secret_value(SecretId="agree")["SecretString"] == "s"


def sqs(c: Any) -> None:
    url = c.create_queue(QueueName="agree")["QueueUrl"]
    assert c.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def sns(c: Any) -> None:
    arn = c.create_topic(Name="agree")["TopicArn"]
    assert c.get_topic_attributes(TopicArn=arn)["Attributes"]


def cloudwatch(c: Any) -> None:
    c.put_metric_data(Namespace="Agree", MetricData=[{"MetricName": "m", "Value": 1.0}])
    assert "Metrics" in c.list_metrics(Namespace="Agree")


def logs(c: Any) -> None:
    c.create_log_group(logGroupName="agree")
    assert c.describe_log_groups(logGroupNamePrefix="agree")["logGroups"]


CALLS: dict[str, Callable[[Any], None]] = {
    "athena": athena,
    "glue": glue,
    "s3": s3,
    "ses": ses,
    "sesv2": sesv2,
    "iam": iam,
    "sts": sts,
    "lambda": awslambda,
    "cloudformation": cloudformation,
    "stepfunctions": stepfunctions,
    "events": events,
    "codebuild": codebuild,
    "secretsmanager": secretsmanager,
    "sqs": sqs,
    "sns": sns,
    "cloudwatch": cloudwatch,
    "logs": logs,
}


@pytest.mark.parametrize("service", sorted(CALLS))
def test_botocore_and_moto_agree_on(service, moto_endpoint):
    try:
        CALLS[service](client(moto_endpoint, service))
    except Exception as exc:
        pytest.fail(
            f"botocore {metadata.version('botocore')} and moto {metadata.version('moto')} "
            f"disagree on {service}: {type(exc).__name__}: {exc}. Pin botocore below the "
            "release that changed it in pyproject.toml's [tool.uv] constraints, or upgrade moto."
        )


def test_moto_authorises_s3_reads_as_aws_does(moto_endpoint):
    """Under IAM enforcement (the infra tests deploy roles and act as them), a principal allowed
    s3:GetObject may GET and HEAD the object: AWS authorises HeadObject as s3:GetObject. moto
    5.2.6 checks a non-existent s3:HeadObject instead (pyproject.toml's [tool.uv] excludes it)."""
    import boto3
    import requests

    s3, iam = client(moto_endpoint, "s3"), client(moto_endpoint, "iam")
    s3.create_bucket(Bucket="agree-iam", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="agree-iam", Key="k", Body=b"v")
    iam.create_user(UserName="agree-reader")
    key = iam.create_access_key(UserName="agree-reader")["AccessKey"]
    read = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::agree-iam/*"}
    iam.put_user_policy(
        UserName="agree-reader",
        PolicyName="read",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [read]}),
    )
    reader = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=30)
    try:
        assert reader.get_object(Bucket="agree-iam", Key="k")["Body"].read() == b"v"
        try:
            reader.head_object(Bucket="agree-iam", Key="k")
        except Exception as exc:
            pytest.fail(f"moto {metadata.version('moto')} refuses HeadObject to a reader: {exc}")
    finally:
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"1000000000", timeout=30)
