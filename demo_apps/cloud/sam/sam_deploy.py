"""Deploying a SAM template (``sam_template``) into the local cloud, in dependency order.

Networking (subnets, security groups, private endpoints) first, then data (tables, buckets,
queues — dead-letter queues before the queues that redrive to them — streams, buses), layers,
functions (with ``AutoPublishAlias``: a version and the alias on it), APIs (a function's
``Api`` events add its route to the API's OpenAPI document as a Lambda proxy integration),
state machines, then event sources (``S3``, ``SQS``, ``Kinesis``, ``EventBridgeRule``) and
distributions. A property outside the supported subset fails with the resource and property
named, before anything of that resource is created.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from demo_apps.cloud.apigateway.apigw_definition import DefinitionError, parse_definition
from demo_apps.cloud.apigateway.apigw_stage import StageSettings
from demo_apps.cloud.apigateway.gateway import ApiGateway
from demo_apps.cloud.aws_json_api import AwsApiError
from demo_apps.cloud.cdn.cdn import Cdn
from demo_apps.cloud.events.eventbridge import InputTransformer, Target
from demo_apps.cloud.lambdas.lambda_config import DeployError, FunctionConfig
from demo_apps.cloud.lambdas.vpc import PrivateResource, VpcConfig
from demo_apps.cloud.local_cloud import LocalCloud
from demo_apps.cloud.sam.sam_event_sources import distribution, event_sources, queue_url
from demo_apps.cloud.sam.sam_groups import announce_group
from demo_apps.cloud.sam.sam_template import ACCOUNT, Resource, Template
from demo_apps.cloud.threaded_server import ThreadedServer
from tracer import semconv

IMPLICIT_API: Final = "ServerlessRestApi"
_LAMBDA_URI: Final = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations"


@dataclass
class Stack:
    """What a deployed template made: names by logical id, and the servers it started."""

    template: Template
    functions: dict[str, str] = field(default_factory=dict)
    apis: dict[str, ApiGateway] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    cdns: dict[str, tuple[Cdn, str]] = field(default_factory=dict)
    _servers: list[Any] = field(default_factory=list)

    def api_url(self, logical_id: str = IMPLICIT_API) -> str:
        return self.apis[logical_id].url(self.stages[logical_id])

    def cdn_url(self, logical_id: str) -> str:
        return self.cdns[logical_id][1]

    def close(self) -> None:
        for api in self.apis.values():
            api.stop()
        for server in reversed(self._servers):
            server.stop()


def deploy_template(cloud: LocalCloud, template: Template) -> Stack:
    stack = Stack(template)
    try:
        _network(cloud, template, stack)
        _data(cloud, template, stack)
        layers = {  # each layer of the template published (Ref gives its name; its version ARN here)
            r.physical_name: cloud.lambdas.layers.publish(
                r.physical_name, template.base_dir / str(r.properties["ContentUri"])
            )
            for r in template.of_type("AWS::Serverless::LayerVersion")
        }
        for resource in template.of_type("AWS::Serverless::Function"):
            _function(cloud, template, resource, layers, stack)
        _apis(cloud, template, stack)
        for resource in template.of_type("AWS::Serverless::StateMachine"):
            _state_machine(cloud, template, resource, stack)
        _rules(cloud, template)
        for resource in template.of_type("AWS::Serverless::Function"):
            event_sources(cloud, resource, resource.properties.get("Events") or {})
        for resource in template.of_type("AWS::CloudFront::Distribution"):
            stack.cdns[resource.logical_id] = cloud.add_cdn(distribution(resource))
    except BaseException:
        stack.close()
        raise
    if cloud.settings.collector_api:
        announce_group(cloud.settings.collector_api, stack)
    return stack


# ---------------------------------------------------------------------- networking and data


def _network(cloud: LocalCloud, template: Template, stack: Stack) -> None:
    network = [r for r in template.resources.values() if r.type.startswith("AWS::EC2::")]
    if network and cloud.vpc is None:
        raise DeployError(f"{network[0].where()}: this local cloud runs without a VPC (CloudSettings.with_vpc)")
    vpc = cloud.vpc
    for resource in template.of_type("AWS::EC2::Subnet"):
        assert vpc is not None
        vpc.add_subnet(resource.physical_name, str(resource.properties["CidrBlock"]))
    for resource in template.of_type("AWS::EC2::SecurityGroup"):
        assert vpc is not None
        ingress = resource.properties.get("SecurityGroupIngress") or []
        vpc.add_security_group(resource.physical_name, tuple(str(rule["SourceSecurityGroupId"]) for rule in ingress))
    for resource in template.of_type("Fluoro::Local::Service"):
        app = _load_app(
            template.base_dir / str(resource.properties["CodeUri"]), str(resource.properties["Handler"]), resource
        )
        port = template.ports[resource.logical_id]
        group = resource.properties.get("SecurityGroupId")
        if group is None:
            stack._servers.append(ThreadedServer(app, port=port, name=f"local-{resource.logical_id}").start())
            continue
        if vpc is None:
            raise DeployError(f"{resource.where('SecurityGroupId')}: this local cloud runs without a VPC")
        server = ThreadedServer(app, name=f"private-{resource.logical_id}").start()
        stack._servers.append(server)
        guard = PrivateResource(vpc, resource.physical_name, (server.host, server.port), str(group), port=port)
        stack._servers.append(guard.start())


def _load_app(folder: Path, handler: str, resource: Resource) -> Any:
    module_name, _, attribute = handler.rpartition(".")
    path = folder / f"{module_name.replace('.', '/')}.py"
    spec = importlib.util.spec_from_file_location(f"fluoro_private_{resource.logical_id}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise DeployError(f"{resource.where('Handler')}: {path} does not exist")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attribute)


def _data(cloud: LocalCloud, template: Template, stack: Stack) -> None:
    dynamodb, s3, sqs, kinesis = (cloud.client(s) for s in ("dynamodb", "s3", "sqs", "kinesis"))
    for resource in template.of_type("AWS::DynamoDB::Table"):
        props = resource.properties
        dynamodb.create_table(
            TableName=resource.physical_name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
            **({"ProvisionedThroughput": props["ProvisionedThroughput"]} if "ProvisionedThroughput" in props else {}),
        )
    for resource in template.of_type("AWS::Serverless::SimpleTable"):
        key = resource.properties.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        kind = {"String": "S", "Number": "N", "Binary": "B"}[str(key.get("Type", "String"))]
        dynamodb.create_table(
            TableName=resource.physical_name,
            KeySchema=[{"AttributeName": key["Name"], "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key["Name"], "AttributeType": kind}],
            BillingMode="PAY_PER_REQUEST",
        )
    for resource in template.of_type("AWS::S3::Bucket"):
        s3.create_bucket(Bucket=resource.physical_name)
    queues = sorted(template.of_type("AWS::SQS::Queue"), key=lambda r: "RedrivePolicy" in r.properties)
    for resource in queues:
        attributes = {
            k: str(v) for k, v in resource.properties.items() if k in ("VisibilityTimeout", "MessageRetentionPeriod")
        }
        if "RedrivePolicy" in resource.properties:
            attributes["RedrivePolicy"] = json.dumps(resource.properties["RedrivePolicy"])
        stack.queues[resource.logical_id] = sqs.create_queue(QueueName=resource.physical_name, Attributes=attributes)[
            "QueueUrl"
        ]
    for resource in template.of_type("AWS::Kinesis::Stream"):
        kinesis.create_stream(
            StreamName=resource.physical_name, ShardCount=int(resource.properties.get("ShardCount", 1))
        )
    for resource in template.of_type("AWS::Events::EventBus"):
        cloud.events.create_event_bus(resource.physical_name)


def _rules(cloud: LocalCloud, template: Template) -> None:
    """AWS::Events::Rule resources (after functions and machines exist to be targets)."""
    for resource in template.of_type("AWS::Events::Rule"):
        props = resource.properties
        bus = str(props.get("EventBusName", "default"))
        targets = []
        for index, spec in enumerate(props.get("Targets") or []):
            transformer = spec.get("InputTransformer")
            targets.append(
                Target(
                    str(spec.get("Id", index)),
                    str(spec["Arn"]),
                    input_path=spec.get("InputPath"),
                    input=spec.get("Input"),
                    transformer=InputTransformer(dict(transformer["InputPathsMap"]), str(transformer["InputTemplate"]))
                    if transformer
                    else None,
                )
            )
        try:
            cloud.events.put_rule(
                resource.physical_name, props["EventPattern"], bus, props.get("State", "ENABLED") == "ENABLED"
            )
            cloud.events.put_targets(resource.physical_name, targets, bus)
        except AwsApiError as exc:
            raise DeployError(f"{resource.where()}: {exc.message}") from None


# ---------------------------------------------------------------------- functions


def _destination(cloud: LocalCloud, spec: Any, where: str) -> str | None:
    if spec is None:
        return None
    kind, arn = spec.get("Type"), str(spec.get("Destination", ""))
    if kind == "SQS":
        return f"sqs:{queue_url(cloud, arn)}"
    if kind == "Lambda":
        return f"lambda:{arn.split(':')[6]}"
    raise DeployError(f"{where}: destination type {kind!r} is not SQS or Lambda")


# Lambda's architectures, as OpenTelemetry's host.arch names them (what cost prices by).
HOST_ARCH: Final = {"x86_64": "amd64", "arm64": "arm64"}


def _environment(template: Template, resource: Resource) -> tuple[tuple[str, str], ...]:
    """The function's variables, after the local services' names (a template's own mapping wins)
    and its architecture as a resource attribute (the environment runs on this machine's CPU,
    so the tracer is told which one AWS would run it on)."""
    props = resource.properties
    variables = {k: str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()}
    mapping = template.peer_services()
    if mapping:
        variables.setdefault(semconv.PEER_SERVICE_MAPPING_ENV, mapping)
    architectures = props.get("Architectures") or ["x86_64"]
    if not isinstance(architectures, list) or len(architectures) != 1 or architectures[0] not in HOST_ARCH:
        raise DeployError(f"{resource.where('Architectures')}: one of x86_64 or arm64, not {architectures!r}")
    resource_attributes = variables.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if "host.arch=" not in resource_attributes:
        arch = f"host.arch={HOST_ARCH[architectures[0]]}"
        variables["OTEL_RESOURCE_ATTRIBUTES"] = f"{resource_attributes},{arch}" if resource_attributes else arch
    return tuple(variables.items())


def _function(
    cloud: LocalCloud, template: Template, resource: Resource, layers: Mapping[str, str], stack: Stack
) -> None:
    props = resource.properties
    runtime = str(props.get("Runtime", "python3.11"))
    if not runtime.startswith("python3"):
        raise DeployError(f"{resource.where('Runtime')}: only python3.x runtimes run locally, not {runtime}")
    invoke_config = props.get("EventInvokeConfig") or {}
    if set(invoke_config) - {"DestinationConfig"}:
        raise DeployError(
            f"{resource.where('EventInvokeConfig')}: only DestinationConfig is supported (retries are AWS's two)"
        )
    destinations = invoke_config.get("DestinationConfig") or {}
    dlq = props.get("DeadLetterQueue")
    if dlq is not None and dlq.get("Type") != "SQS":
        raise DeployError(f"{resource.where('DeadLetterQueue')}: only Type SQS is supported")
    vpc = props.get("VpcConfig")
    config = FunctionConfig(
        name=resource.physical_name,
        handler=str(props.get("Handler", "")),
        code_dir=template.base_dir / str(props.get("CodeUri", ".")),
        memory_mb=int(props.get("MemorySize", 128)),
        timeout_s=float(props.get("Timeout", 3)),
        environment=_environment(template, resource),
        reserved_concurrency=int(props["ReservedConcurrentExecutions"])
        if "ReservedConcurrentExecutions" in props
        else None,
        layers=tuple(cloud.lambdas.layers.content(layers.get(str(arn), str(arn))) for arn in props.get("Layers") or []),
        ephemeral_storage_mb=int((props.get("EphemeralStorage") or {}).get("Size", 512)),
        dead_letter_queue=queue_url(cloud, str(dlq["TargetArn"])) if dlq else None,
        on_success=_destination(cloud, destinations.get("OnSuccess"), resource.where("EventInvokeConfig")),
        on_failure=_destination(cloud, destinations.get("OnFailure"), resource.where("EventInvokeConfig")),
        vpc=VpcConfig(tuple(vpc.get("SubnetIds") or ()), tuple(vpc.get("SecurityGroupIds") or ())) if vpc else None,
    )
    try:
        cloud.deploy(config)
    except DeployError as exc:
        raise DeployError(f"{resource.where()}: {exc}") from None
    stack.functions[resource.logical_id] = resource.physical_name
    alias = props.get("AutoPublishAlias")
    if alias:
        version = cloud.lambdas.publish_version(resource.physical_name)
        cloud.lambdas.put_alias(resource.physical_name, str(alias), version)


# ---------------------------------------------------------------------- APIs and state machines


def _apis(cloud: LocalCloud, template: Template, stack: Stack) -> None:
    documents: dict[str, dict[str, Any]] = {}
    settings: dict[str, StageSettings] = {}
    for resource in template.of_type("AWS::Serverless::Api"):
        documents[resource.physical_name] = _openapi(template, resource)
        settings[resource.physical_name] = _stage(resource)
    logical = {r.physical_name: r.logical_id for r in template.of_type("AWS::Serverless::Api")}
    for function in template.of_type("AWS::Serverless::Function"):
        for event_id, event in (function.properties.get("Events") or {}).items():
            if event.get("Type") != "Api":
                continue
            spec = event.get("Properties") or {}
            api = str(spec.get("RestApiId", IMPLICIT_API))
            if api == IMPLICIT_API and api not in documents:
                documents[api] = {"openapi": "3.0.1", "info": {"title": IMPLICIT_API}, "paths": {}}
                settings[api] = StageSettings("Prod")
                logical[api] = IMPLICIT_API
            if api not in documents:
                raise DeployError(
                    f"{function.where('Events')}.{event_id}: RestApiId {api!r} is not an API of this template"
                )
            arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function.physical_name}"
            operations = documents[api].setdefault("paths", {}).setdefault(str(spec["Path"]), {})
            operations.setdefault(
                str(spec.get("Method", "get")).lower(),
                {
                    "x-amazon-apigateway-integration": {
                        "type": "aws_proxy",
                        "httpMethod": "POST",
                        "uri": _LAMBDA_URI.format(arn=arn),
                    }
                },
            )
    for name, document in documents.items():
        try:
            definition = parse_definition(document, name)
        except DefinitionError as exc:
            raise DeployError(f"Resources.{logical[name]}.Properties.DefinitionBody: {exc}") from None
        stack.apis[logical[name]] = ApiGateway(definition, [settings[name]], cloud.lambdas, cloud.otlp_endpoint).start()
        stack.stages[logical[name]] = settings[name].name


def _openapi(template: Template, resource: Resource) -> dict[str, Any]:
    props = resource.properties
    if "DefinitionBody" in props:
        return copy.deepcopy(dict(props["DefinitionBody"]))
    if "DefinitionUri" in props:
        import yaml

        return dict(yaml.safe_load((template.base_dir / str(props["DefinitionUri"])).read_text()))
    return {"openapi": "3.0.1", "info": {"title": resource.physical_name}, "paths": {}}


def _stage(resource: Resource) -> StageSettings:
    props = resource.properties
    stage = StageSettings(
        str(props.get("StageName", "Prod")), {k: str(v) for k, v in (props.get("Variables") or {}).items()}
    )
    rate, burst, cache, ttl = stage.rate_per_s, stage.burst, bool(props.get("CacheClusterEnabled")), stage.cache_ttl_s
    for setting in props.get("MethodSettings") or []:
        if setting.get("ResourcePath", "/*") != "/*" or setting.get("HttpMethod", "*") != "*":
            raise DeployError(f"{resource.where('MethodSettings')}: only stage-wide settings (/*, *) are supported")
        rate = float(setting.get("ThrottlingRateLimit", rate))
        burst = float(setting.get("ThrottlingBurstLimit", burst))
        cache = cache or bool(setting.get("CachingEnabled"))
        ttl = float(setting.get("CacheTtlInSeconds", ttl))
    return StageSettings(stage.name, stage.variables, rate, burst, cache, ttl)


def _state_machine(cloud: LocalCloud, template: Template, resource: Resource, stack: Stack) -> None:
    props = resource.properties
    if "Definition" in props:
        text = json.dumps(props["Definition"])
    elif "DefinitionUri" in props:
        text = (template.base_dir / str(props["DefinitionUri"])).read_text()
    else:
        raise DeployError(f"{resource.where('Definition')}: a state machine needs a Definition or DefinitionUri")
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        text = text.replace("${" + key + "}", str(value))
    try:
        arn = cloud.stepfunctions.create_state_machine(resource.physical_name, text, str(props.get("Type", "STANDARD")))
    except AwsApiError as exc:
        raise DeployError(f"{resource.where('Definition')}: {exc.message}") from None
    stack.machines[resource.logical_id] = arn
    event_sources(cloud, resource, props.get("Events") or {}, target_arn=arn)
