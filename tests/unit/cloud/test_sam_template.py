"""Reading SAM templates: Globals, Parameters, intrinsics, and the supported subset enforced
with the resource and property named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from demo_apps.cloud.lambdas.lambda_config import DeployError
from demo_apps.cloud.sam.sam_template import load_template

QUEUES = "http://127.0.0.1:5000"


def template(tmp_path: Path, text: str, **parameters: str) -> object:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return load_template(path, "shop", QUEUES, parameters)


GOOD = """
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Rate: {Type: Number, Default: 5}
    Globals:
      Function:
        Timeout: 10
        Environment:
          Variables: {TABLE: !Ref Orders, SHARED: everywhere}
    Resources:
      Orders:
        Type: AWS::Serverless::SimpleTable
      Jobs:
        Type: AWS::SQS::Queue
        Properties: {QueueName: jobs}
      Worker:
        Type: AWS::Serverless::Function
        Properties:
          Handler: app.handler
          Timeout: 20
          Environment:
            Variables:
              QUEUE: !Ref Jobs
              QUEUE_ARN: !GetAtt Jobs.Arn
              RATE: !Ref Rate
              WHERE: !Sub "${AWS::Region}/${Jobs.QueueName}/${!stageVariables.alias}"
              BOTH: !Join ["-", [a, !Ref Rate]]
    Outputs:
      Queue: {Value: !Ref Jobs}
"""


def test_globals_parameters_and_intrinsics_resolve(tmp_path: Path) -> None:
    loaded = template(tmp_path, GOOD, Rate="9")
    worker = loaded.resources["Worker"]  # type: ignore[attr-defined]
    assert worker.physical_name == "shop-Worker"  # no FunctionName: stack-LogicalId
    assert worker.properties["Timeout"] == 20  # its own value over the Globals'
    variables = worker.properties["Environment"]["Variables"]
    assert variables == {
        "TABLE": "shop-Orders",  # merged in from Globals, key by key
        "SHARED": "everywhere",
        "QUEUE": f"{QUEUES}/123456789012/jobs",  # Ref of a queue is its URL
        "QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
        "RATE": "9",  # the value given at deploy over the Default
        "WHERE": "us-east-1/jobs/${stageVariables.alias}",  # ${!x} stays a literal ${x}
        "BOTH": "a-9",
    }
    assert loaded.outputs == {"Queue": f"{QUEUES}/123456789012/jobs"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("Resources:\n  T:\n    Type: AWS::AppSync::GraphQLApi\n", "Resources.T.Type"),
        (
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {FifoQueue: true}\n",
            "Resources.Q.Properties.FifoQueue",
        ),
        (
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Ref Nope}\n",
            "Resources.Q.Properties.QueueName",
        ),
        (
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n  B:\n    Type: AWS::S3::Bucket\n"
            "    Properties: {BucketName: !GetAtt Q.Missing}\n",
            "Resources.B.Properties.BucketName",
        ),
        (
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Select [0, [a]]}\n",
            "not valid YAML",
        ),
        ("Conditions: {}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n", "section Conditions"),
        ("Parameters:\n  P: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n", "Parameters.P"),
    ],
)
def test_anything_outside_the_subset_names_the_resource_and_property(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(DeployError, match=where.replace(".", r"\.")):
        template(tmp_path, text)


@pytest.mark.parametrize("architecture", ["banking", "images", "social"])
def test_every_demo_function_lists_the_shared_tracer_layer(architecture: str) -> None:
    folder = Path(__file__).parents[3] / "demo_apps" / architecture
    loaded = load_template(folder / "template.yaml", architecture, QUEUES, {})
    functions = loaded.of_type("AWS::Serverless::Function")
    assert functions
    for function in functions:
        assert function.properties["Layers"][0] == "arn:aws:lambda:us-east-1:123456789012:layer:fluoro-tracer:1"


def test_globals_lists_come_before_a_function_s_own(tmp_path: Path) -> None:
    loaded = template(
        tmp_path,
        """
        Globals:
          Function:
            Layers: [global-layer]
        Resources:
          Worker:
            Type: AWS::Serverless::Function
            Properties: {Handler: app.handler, Layers: [own-layer]}
        """,
    )
    worker = loaded.of_type("AWS::Serverless::Function")[0]  # type: ignore[attr-defined]
    assert worker.properties["Layers"] == ["global-layer", "own-layer"]
