"""The local cloud put together: AWS data services, Lambda, events, streams, workflows and CDNs.

One object owns every piece and its loopback port, starts them in order and stops them in
reverse. Functions get the environment code gets on AWS — region, credentials and endpoints —
pointed at the local pieces: ``AWS_ENDPOINT_URL`` (moto: DynamoDB, SQS, Kinesis), and per
service ``AWS_ENDPOINT_URL_S3`` (S3 with notifications), ``AWS_ENDPOINT_URL_EVENTBRIDGE``,
``AWS_ENDPOINT_URL_LAMBDA`` and ``AWS_ENDPOINT_URL_SFN``, which boto3 reads by itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from demo_apps.cloud.aws_services import AwsServices
from demo_apps.cloud.cdn.cdn import Cdn, Distribution
from demo_apps.cloud.events.eventbridge import EventBridge
from demo_apps.cloud.events.eventbridge_api import create_events_api
from demo_apps.cloud.events.kinesis_source import KinesisEventSource, KinesisMapping
from demo_apps.cloud.events.s3_events import Notification, S3Events
from demo_apps.cloud.events.sqs_source import SqsEventSource, SqsMapping
from demo_apps.cloud.events.targets import TargetRouter
from demo_apps.cloud.lambdas.lambda_api import LambdaApiServer
from demo_apps.cloud.lambdas.lambda_async import AsyncInvoker, AsyncSettings
from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings
from demo_apps.cloud.lambdas.vpc import Vpc
from demo_apps.cloud.stepfunctions.sfn_tasks import CloudTasks
from demo_apps.cloud.stepfunctions.stepfunctions import StepFunctions, StepFunctionsSettings
from demo_apps.cloud.stepfunctions.stepfunctions_api import create_stepfunctions_api
from demo_apps.cloud.threaded_server import ThreadedServer

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloudSettings:
    lambdas: LambdaSettings = field(default_factory=LambdaSettings)
    async_invocation: AsyncSettings = field(default_factory=AsyncSettings)
    stepfunctions: StepFunctionsSettings = field(default_factory=StepFunctionsSettings)
    with_vpc: bool = False
    collector_api: str | None = None  # a running Fluoro's query API: each deployed stack becomes a group


class LocalCloud:
    """Start with `start()` (or `with`); everything listens on 127.0.0.1."""

    def __init__(self, settings: CloudSettings = CloudSettings()) -> None:
        self.settings = settings
        self.otlp_endpoint = settings.lambdas.otlp_endpoint
        self.aws = AwsServices()
        self._clients: list[Any] = []
        self.vpc = Vpc() if settings.with_vpc else None
        self.lambdas = LambdaService(settings.lambdas, self.vpc)
        self._sqs = self.aws.client("sqs")
        self.invoker = AsyncInvoker(self.lambdas, self._send, settings.async_invocation)
        self.router = TargetRouter(self.invoker, self._sqs)
        tasks = CloudTasks(self.lambdas, self._sqs, self.aws.client("dynamodb"))
        sfn_settings = settings.stepfunctions
        if sfn_settings.otlp_endpoint is None:
            sfn_settings = replace(sfn_settings, otlp_endpoint=self.otlp_endpoint)
        self.stepfunctions = StepFunctions(tasks, sfn_settings)
        self.router.machines = self.stepfunctions
        self.events = EventBridge(self.router)
        self.s3 = S3Events(self.aws.endpoint, self.router)
        self._events_server = ThreadedServer(create_events_api(self.events), name="eventbridge")
        self._s3_server = ThreadedServer(self.s3.app(), name="s3")
        self._lambda_server = LambdaApiServer(self.lambdas, self.invoker)
        self._sfn_server = ThreadedServer(create_stepfunctions_api(self.stepfunctions), name="stepfunctions")
        self._sources: list[SqsEventSource | KinesisEventSource] = []
        self._cdns: list[tuple[Cdn, ThreadedServer]] = []

    def _send(self, queue_url: str, body: str) -> None:
        self.router.send_message(queue_url, body)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalCloud:
        self.aws.start()
        for server in self._servers():
            server.start()
        self.stepfunctions.resume()  # standard executions a previous run left RUNNING
        return self

    def _servers(self) -> tuple[ThreadedServer, ...]:
        return (self._events_server, self._s3_server, self._lambda_server, self._sfn_server)

    def close(self) -> None:
        for client in self._clients:  # first: a kept-alive connection holds a server's handler
            client.close()
        for source in self._sources:
            source.stop()
        self.invoker.close()
        for cdn, server in self._cdns:
            server.stop()
            cdn.close()
        for server in reversed(self._servers()):
            server.stop()
        self.stepfunctions.close()
        self.lambdas.close()
        self.aws.stop()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ what functions see

    @property
    def s3_endpoint(self) -> str:
        return self._s3_server.endpoint

    def environment(self) -> dict[str, str]:
        """What a process needs to reach the local cloud through boto3."""
        return {
            **self.aws.environment(),
            "AWS_ENDPOINT_URL_S3": self._s3_server.endpoint,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self._events_server.endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self._lambda_server.endpoint,
            "AWS_ENDPOINT_URL_SFN": self._sfn_server.endpoint,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for `service` against the local cloud, closed with the cloud."""
        import boto3

        endpoint = {
            "s3": self._s3_server.endpoint,
            "events": self._events_server.endpoint,
            "lambda": self._lambda_server.endpoint,
            "stepfunctions": self._sfn_server.endpoint,
        }.get(service, self.aws.endpoint)
        client = boto3.client(service, endpoint_url=endpoint, **_CREDENTIALS)
        self._clients.append(client)
        return client

    # ------------------------------------------------------------------ resources

    def deploy(self, config: FunctionConfig) -> str:
        """Deploy a function with the local cloud's environment under its own variables."""
        environment = {**self.environment(), **dict(config.environment)}
        return self.lambdas.deploy(replace(config, environment=tuple(environment.items())))

    def add_sqs_mapping(self, mapping: SqsMapping) -> SqsEventSource:
        source = SqsEventSource(self.lambdas, self.aws.client("sqs"), mapping).start()
        self._sources.append(source)
        return source

    def add_kinesis_mapping(self, mapping: KinesisMapping) -> KinesisEventSource:
        source = KinesisEventSource(self.lambdas, self.aws.client("kinesis"), mapping, self.router).start()
        self._sources.append(source)
        return source

    def add_s3_notification(self, notification: Notification) -> None:
        self.s3.add(notification)

    def add_cdn(self, distribution: Distribution) -> tuple[Cdn, str]:
        """A distribution in front of its bucket; the CDN and its URL."""
        cdn = Cdn(distribution, self._s3_server.endpoint, self.otlp_endpoint)
        server = ThreadedServer(cdn.app(), name=f"cdn-{distribution.name}").start()
        self._cdns.append((cdn, server))
        return cdn, server.endpoint


_CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}
