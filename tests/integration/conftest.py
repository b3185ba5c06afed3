"""Fixtures the integration tests share: a daemon (one per module), an OTLP sink, a Lambda service, moto."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo_apps.cloud.aws_services import AwsServices
from demo_apps.cloud.lambdas.lambda_service import LambdaService, LambdaSettings
from demo_apps.otlp_sink import OtlpSink
from tests.integration.daemon import Daemon


@pytest.fixture(scope="module")
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """`fluoro serve` on a file of its own, for the module; it must stop cleanly, without a traceback."""
    running = Daemon(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "spans.duckdb").start()
    yield running
    code, output = running.stop()
    assert code == 0, output
    assert "Traceback" not in output, output


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


@pytest.fixture
def service(sink: OtlpSink) -> Iterator[LambdaService]:
    """A Lambda service exporting to `sink`, with room for 50 environments kept 10 minutes."""
    lambdas = LambdaService(LambdaSettings(account_limit=50, idle_timeout_s=600, otlp_endpoint=sink.endpoint))
    yield lambdas
    lambdas.close()


@pytest.fixture
def aws() -> Iterator[AwsServices]:
    """moto in server mode: DynamoDB, S3, SQS and Kinesis on a loopback port."""
    with AwsServices() as running:
        yield running
