"""Reading an AWS SAM template: YAML with CloudFormation's short tags, Globals, intrinsics.

Supported (anything else fails with the resource and property named):

- Sections: ``Transform``, ``Description``, ``Parameters`` (their ``Default``, or a value given
  at deploy), ``Globals`` (``Function``: merged under each function's own properties, maps
  merged key by key), ``Resources``, ``Outputs`` (resolved, for the caller).
- Intrinsics: ``!Ref`` / ``Ref``, ``!GetAtt`` / ``Fn::GetAtt``, ``!Sub`` / ``Fn::Sub`` (string or
  ``[text, variables]``), ``!Join``; pseudo parameters ``AWS::Region``, ``AWS::AccountId``,
  ``AWS::StackName``, ``AWS::Partition``.
- Resource types: see ``RESOURCE_PROPERTIES`` (SAM functions, APIs, state machines, layers and
  simple tables; DynamoDB tables, S3 buckets, SQS queues, Kinesis streams, event buses, EC2
  subnets and security groups, event rules, CloudFront distributions, and
  ``Fluoro::Local::Service`` — the local cloud's own: an ASGI app (``Handler`` in ``CodeUri``)
  on a loopback port, behind ``SecurityGroupId`` when given; its Ref is ``127.0.0.1:port``, and
  functions' HTTP calls to it are named ``ServiceName`` on the map).

Physical names are deterministic — the name property when given, else ``{stack}-{LogicalId}``
— so every reference resolves before anything is deployed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from demo_apps.cloud.lambdas.lambda_config import DeployError
from demo_apps.local_collector import free_port

REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"
_COMMON: Final = {"DependsOn", "Metadata", "Condition", "DeletionPolicy", "UpdateReplacePolicy"}
IGNORED_PROPERTIES: Final = frozenset({"Policies", "Role", "Tracing", "TracingEnabled", "Description", "Tags"})
RESOURCE_PROPERTIES: Final[dict[str, frozenset[str]]] = {
    "AWS::Serverless::Function": frozenset(
        {
            "FunctionName",
            "Handler",
            "CodeUri",
            "Runtime",
            "MemorySize",
            "Timeout",
            "Environment",
            "ReservedConcurrentExecutions",
            "EphemeralStorage",
            "VpcConfig",
            "DeadLetterQueue",
            "EventInvokeConfig",
            "AutoPublishAlias",
            "Layers",
            "Events",
            "Architectures",
        }
    ),
    "AWS::Serverless::LayerVersion": frozenset({"LayerName", "ContentUri", "CompatibleRuntimes"}),
    "AWS::Serverless::Api": frozenset(
        {
            "Name",
            "StageName",
            "DefinitionBody",
            "DefinitionUri",
            "Variables",
            "MethodSettings",
            "CacheClusterEnabled",
            "CacheClusterSize",
        }
    ),
    "AWS::Serverless::StateMachine": frozenset(
        {"Name", "Definition", "DefinitionUri", "DefinitionSubstitutions", "Type", "Events"}
    ),
    "AWS::Serverless::SimpleTable": frozenset({"TableName", "PrimaryKey"}),
    "AWS::DynamoDB::Table": frozenset(
        {"TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "ProvisionedThroughput"}
    ),
    "AWS::S3::Bucket": frozenset({"BucketName"}),
    "AWS::SQS::Queue": frozenset({"QueueName", "VisibilityTimeout", "RedrivePolicy", "MessageRetentionPeriod"}),
    "AWS::Kinesis::Stream": frozenset({"Name", "ShardCount"}),
    "AWS::Events::EventBus": frozenset({"Name"}),
    "AWS::EC2::Subnet": frozenset({"CidrBlock", "VpcId"}),
    "AWS::EC2::VPC": frozenset({"CidrBlock"}),
    "AWS::EC2::SecurityGroup": frozenset({"GroupDescription", "SecurityGroupIngress", "VpcId"}),
    "AWS::CloudFront::Distribution": frozenset({"DistributionConfig"}),
    "AWS::Events::Rule": frozenset({"Name", "EventBusName", "EventPattern", "Targets", "State"}),
    "Fluoro::Local::Service": frozenset({"Handler", "CodeUri", "SecurityGroupId", "ServiceName"}),
}
NAME_PROPERTY: Final = {
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Serverless::Api": "Name",
    "AWS::Serverless::StateMachine": "Name",
    "AWS::Serverless::SimpleTable": "TableName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "Fluoro::Local::Service": "ServiceName",
}
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML with CloudFormation's short-form tags."""


def _tag(name: str, split_dots: bool = False) -> None:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if split_dots:
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    _Loader.add_constructor(f"!{name.removeprefix('Fn::')}", construct)


for _name in ("Ref", "Fn::Sub", "Fn::Join"):
    _tag(_name)
_tag("Fn::GetAtt", split_dots=True)


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    properties: Mapping[str, Any]
    physical_name: str

    def where(self, prop: str | None = None) -> str:
        return f"Resources.{self.logical_id}" + (f".Properties.{prop}" if prop else "")


@dataclass(frozen=True)
class Template:
    stack: str
    base_dir: Path
    resources: Mapping[str, Resource]
    outputs: Mapping[str, Any]
    ports: Mapping[str, int]  # loopback ports chosen for the local services

    def of_type(self, kind: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == kind]

    def peer_services(self) -> str:
        """The local services' addresses named, as OTEL_INSTRUMENTATION_COMMON_PEER_SERVICE_MAPPING takes
        them: a function's HTTP calls to one make a map node with the service's name, not a port."""
        return ",".join(
            f"127.0.0.1:{self.ports[r.logical_id]}={r.physical_name}" for r in self.of_type("Fluoro::Local::Service")
        )


def load_template(path: Path, stack: str, queue_url_base: str, parameters: Mapping[str, str] | None = None) -> Template:
    """The template at `path`, every intrinsic resolved; DeployError names what is not supported."""
    try:
        document = yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader with CloudFormation tags
    except yaml.YAMLError as exc:
        raise DeployError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise DeployError(f"{path}: a template needs a Resources section")
    unknown = set(document) - {
        "AWSTemplateFormatVersion",
        "Transform",
        "Description",
        "Parameters",
        "Globals",
        "Resources",
        "Outputs",
        "Metadata",
    }
    if unknown:
        raise DeployError(f"{path}: section {sorted(unknown)[0]} is not supported")
    raw = _with_globals(document)
    names = _physical_names(raw, stack)
    values = _Values(stack, queue_url_base, names, raw, _parameters(document, parameters or {}))
    resources = {}
    for logical_id, body in raw.items():
        kind = body.get("Type")
        if kind not in RESOURCE_PROPERTIES:
            supported = ", ".join(sorted(RESOURCE_PROPERTIES))
            raise DeployError(f"Resources.{logical_id}.Type: {kind!r} is not supported (supported: {supported})")
        properties = body.get("Properties") or {}
        for prop in properties:
            if prop not in RESOURCE_PROPERTIES[kind] and prop not in IGNORED_PROPERTIES:
                raise DeployError(f"Resources.{logical_id}.Properties.{prop}: not supported for {kind}")
        extra = set(body) - {"Type", "Properties"} - _COMMON
        if extra:
            raise DeployError(f"Resources.{logical_id}.{sorted(extra)[0]}: not supported")
        resolved = values.resolve(properties, f"Resources.{logical_id}.Properties")
        resources[logical_id] = Resource(logical_id, kind, resolved, names[logical_id])
    outputs = {k: values.resolve(v.get("Value"), f"Outputs.{k}") for k, v in (document.get("Outputs") or {}).items()}
    return Template(stack, path.parent, resources, outputs, values.ports)


def _with_globals(document: dict[str, Any]) -> dict[str, Any]:
    globals_ = (document.get("Globals") or {}).get("Function") or {}
    unknown = set(document.get("Globals") or {}) - {"Function", "Api"}
    if unknown:
        raise DeployError(f"Globals.{sorted(unknown)[0]}: not supported")
    resources: dict[str, Any] = copy.deepcopy(document["Resources"])
    for logical_id, body in resources.items():
        if not isinstance(body, dict):
            raise DeployError(f"Resources.{logical_id}: a resource must be a mapping")
        if body.get("Type") == "AWS::Serverless::Function":
            body["Properties"] = _merge(globals_, body.get("Properties") or {})
    return resources


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(copy.deepcopy(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and not _is_intrinsic(value):
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):  # SAM: lists add, globals first
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in ("Ref", "Fn::Sub", "Fn::GetAtt", "Fn::Join")


def _physical_names(resources: Mapping[str, Any], stack: str) -> dict[str, str]:
    names = {}
    for logical_id, body in resources.items():
        given = (body.get("Properties") or {}).get(NAME_PROPERTY.get(str(body.get("Type")), ""))
        name = given if isinstance(given, str) else f"{stack}-{logical_id}"
        names[logical_id] = name.lower() if body.get("Type") == "AWS::S3::Bucket" else name
    return names


def _parameters(document: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for name, spec in (document.get("Parameters") or {}).items():
        if name in given:
            values[name] = given[name]
        elif isinstance(spec, dict) and "Default" in spec:
            values[name] = spec["Default"]
        else:
            raise DeployError(f"Parameters.{name}: no value given and no Default")
    return values


class _Values:
    """What Ref and GetAtt give for each resource, parameter and pseudo parameter."""

    def __init__(
        self,
        stack: str,
        queue_url_base: str,
        names: Mapping[str, str],
        raw: Mapping[str, Any],
        parameters: Mapping[str, Any],
    ) -> None:
        self.names, self.raw, self.queue_url_base = names, raw, queue_url_base.rstrip("/")
        self.ports = {k: free_port() for k, v in raw.items() if v.get("Type") == "Fluoro::Local::Service"}
        self.refs: dict[str, Any] = {
            **parameters,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": stack,
            "AWS::Partition": "aws",
        }

    def ref(self, name: str, where: str) -> Any:
        if name in self.refs:
            return self.refs[name]
        if name not in self.names:
            raise DeployError(f"{where}: Ref to {name!r}, which is neither a resource nor a parameter")
        kind, physical = self.raw[name]["Type"], self.names[name]
        if kind == "AWS::SQS::Queue":
            return f"{self.queue_url_base}/{ACCOUNT}/{physical}"
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{physical}"
        if kind == "Fluoro::Local::Service":
            return f"127.0.0.1:{self.ports[name]}"
        return physical

    def get_att(self, name: str, attribute: str, where: str) -> Any:
        if name not in self.names:
            raise DeployError(f"{where}: GetAtt of {name!r}, which is not a resource")
        kind, physical = self.raw[name]["Type"], self.names[name]
        arns = {
            "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical}",
            "AWS::Kinesis::Stream": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{physical}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
            "AWS::Serverless::SimpleTable": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
            "AWS::Events::EventBus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{physical}",
            "AWS::Serverless::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{physical}",
        }
        known = {
            "Arn": arns.get(kind),
            "Name": physical,
            "QueueName": physical if kind == "AWS::SQS::Queue" else None,
            "QueueUrl": self.ref(name, where) if kind == "AWS::SQS::Queue" else None,
            "RegionalDomainName": f"{physical}.s3.{REGION}.amazonaws.com" if kind == "AWS::S3::Bucket" else None,
            "DomainName": f"{physical}.s3.amazonaws.com" if kind == "AWS::S3::Bucket" else None,
            "GroupId": physical if kind == "AWS::EC2::SecurityGroup" else None,
        }
        value = known.get(attribute)
        if value is None:
            raise DeployError(f"{where}: GetAtt {name}.{attribute} is not supported for {kind}")
        return value

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            return [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(str(argument), where)
            if key == "Fn::GetAtt":
                parts = argument.split(".", 1) if isinstance(argument, str) else argument
                return self.get_att(str(parts[0]), str(parts[1]), where)
            if key == "Fn::Sub":
                return self._sub(argument, where)
            if key == "Fn::Join":
                separator, items = argument
                return str(separator).join(str(self.resolve(i, where)) for i in items)
            if key.startswith("Fn::"):
                raise DeployError(f"{where}: the intrinsic {key} is not supported")
        return {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}

    def _sub(self, argument: Any, where: str) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        resolved = {k: self.resolve(v, where) for k, v in variables.items()}

        def replace(found: re.Match[str]) -> str:
            name = found.group(1)
            if name in resolved:
                return str(resolved[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute, where))
            return str(self.ref(name, where))

        return _SUB.sub(replace, str(text)).replace("${!", "${")  # ${!x} is a literal ${x}
