"""Deploying SAM templates into a real local cloud: what is deployed works, what is outside the
supported subset fails at deploy with the resource and property named."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo_apps.cloud.lambdas.lambda_config import DeployError
from demo_apps.cloud.lambdas.lambda_service import LambdaSettings
from demo_apps.cloud.local_cloud import CloudSettings, LocalCloud
from demo_apps.cloud.sam.sam_deploy import deploy_template
from demo_apps.cloud.sam.sam_template import load_template
from demo_apps.otlp_sink import OtlpSink
from tests.waiting import wait_until

CODE = Path(__file__).parent / "lambda_code"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with OtlpSink(keep=False) as sink:
        settings = CloudSettings(lambdas=LambdaSettings(otlp_endpoint=sink.endpoint))
        with LocalCloud(settings) as running:
            yield running


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text).replace("CODE", str(CODE)))
    return path


def test_an_implicit_api_route_and_a_queue_are_deployed(cloud: LocalCloud, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        Resources:
          Inbox:
            Type: AWS::SQS::Queue
          Echo:
            Type: AWS::Serverless::Function
            Properties:
              FunctionName: sam-echo
              CodeUri: CODE
              Handler: api.handler
              Timeout: 10
              Architectures: [arm64]
              Environment: {Variables: {INBOX: !Ref Inbox}}
              Events:
                Get:
                  Type: Api
                  Properties: {Path: "/items/{id}", Method: get}
        """,
    )
    stack = deploy_template(cloud, load_template(path, "sam", cloud.aws.endpoint))
    try:
        answer = httpx.get(f"{stack.api_url()}/items/42", timeout=30)
        assert answer.status_code == 200 and json.loads(answer.text)["id"] == "42"
        assert stack.queues["Inbox"].endswith("/123456789012/sam-Inbox")
        environment = dict(cloud.lambdas.config("sam-echo").environment)
        assert environment["INBOX"] == stack.queues["Inbox"]
        assert environment["OTEL_RESOURCE_ATTRIBUTES"] == "host.arch=arm64"  # what its tracer says, to be priced
    finally:
        stack.close()


def test_the_event_sources_of_a_function_with_an_alias_invoke_the_alias(cloud: LocalCloud, tmp_path: Path) -> None:
    """SAM points a function's event sources at its AutoPublishAlias: the queue's mapping runs
    version 1 (what the alias names), never $LATEST."""
    path = write(
        tmp_path,
        """
        Resources:
          Jobs:
            Type: AWS::SQS::Queue
          Worker:
            Type: AWS::Serverless::Function
            Properties:
              FunctionName: sam-worker
              CodeUri: CODE
              Handler: functions.echo
              Timeout: 10
              AutoPublishAlias: live
              Events:
                Job:
                  Type: SQS
                  Properties: {Queue: !GetAtt Jobs.Arn, BatchSize: 1}
        """,
    )
    stack = deploy_template(cloud, load_template(path, "sam", cloud.aws.endpoint))
    try:
        cloud.client("sqs").send_message(QueueUrl=stack.queues["Jobs"], MessageBody="{}")
        wait_until(lambda: cloud.lambdas.stats("sam-worker", "1")["invocations"] >= 1, timeout_s=30, poll_s=0.2)
        assert cloud.lambdas.stats("sam-worker")["invocations"] == 0  # $LATEST never ran
    finally:
        stack.close()


@pytest.mark.parametrize(
    ("function_properties", "where"),
    [
        ("Runtime: nodejs20.x", "Resources.Bad.Properties.Runtime"),
        ("Events: {Topic: {Type: SNS, Properties: {Topic: arn}}}", "Resources.Bad.Properties.Events.Topic.Type"),
        ("EventInvokeConfig: {MaximumRetryAttempts: 0}", "Resources.Bad.Properties.EventInvokeConfig"),
        ("MemorySize: 20000", "Resources.Bad"),
        ("DeadLetterQueue: {Type: SNS, TargetArn: arn}", "Resources.Bad.Properties.DeadLetterQueue"),
        ("Architectures: [sparc]", "Resources.Bad.Properties.Architectures"),
        ("Architectures: [arm64, x86_64]", "Resources.Bad.Properties.Architectures"),
    ],
)
def test_unsupported_properties_fail_at_deploy(
    cloud: LocalCloud, tmp_path: Path, function_properties: str, where: str
) -> None:
    path = write(
        tmp_path,
        f"""
        Resources:
          Bad:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: CODE
              Handler: api.handler
              {function_properties}
        """,
    )
    with pytest.raises(DeployError, match=where.replace(".", r"\.")):
        deploy_template(cloud, load_template(path, "bad", cloud.aws.endpoint)).close()


def test_layers_from_the_template_and_from_the_account_merge_in_order(cloud: LocalCloud, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "python").mkdir(parents=True)
    (shared / "python" / "shared.py").write_text("VALUE = 'account layer'\n")
    account_arn = cloud.lambdas.layers.publish("org-shared", shared)
    own = tmp_path / "own"
    (own / "python").mkdir(parents=True)
    (own / "python" / "shared.py").write_text("VALUE = 'template layer'\n")
    (own / "python" / "own_only.py").write_text("VALUE = 'own'\n")
    path = write(
        tmp_path,
        f"""
        Globals:
          Function:
            Layers: ["{account_arn}"]
        Resources:
          OwnLayer:
            Type: AWS::Serverless::LayerVersion
            Properties: {{LayerName: sam-own, ContentUri: own, CompatibleRuntimes: [python3.11]}}
          Layered:
            Type: AWS::Serverless::Function
            Properties:
              FunctionName: sam-layered
              CodeUri: CODE
              Handler: functions.module_files
              Layers: [!Ref OwnLayer]
        """,
    )
    stack = deploy_template(cloud, load_template(path, "sam", cloud.aws.endpoint))
    try:
        found = cloud.lambdas.invoke("sam-layered", {"modules": ["shared", "own_only"]})
        assert found["shared"][1] == "template layer"  # Globals' layer first, the function's after it
        assert found["own_only"][1] == "own"
    finally:
        stack.close()
    unknown = write(
        tmp_path,
        """
        Resources:
          Orphan:
            Type: AWS::Serverless::Function
            Properties:
              FunctionName: sam-orphan
              CodeUri: CODE
              Handler: functions.echo
              Layers: ["arn:aws:lambda:us-east-1:123456789012:layer:never-published:1"]
        """,
    )
    with pytest.raises(DeployError, match="never-published:1' does not exist"):
        deploy_template(cloud, load_template(unknown, "bad", cloud.aws.endpoint)).close()
