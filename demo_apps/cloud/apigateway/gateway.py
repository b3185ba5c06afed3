"""API Gateway: a REST API's stages served on one loopback port, at ``/{stage}/{path}``.

The URL shape follows AWS's ``https://{api}.execute-api.{region}.amazonaws.com/{stage}/{path}``;
each stage is its own app (apigw_stage) with its own throttle, cache and span name.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import Mount

from demo_apps.cloud.apigateway.apigw_definition import ApiDefinition
from demo_apps.cloud.apigateway.apigw_stage import Stage, StageSettings
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from demo_apps.cloud.threaded_server import ThreadedServer, closing_at_shutdown


class ApiGateway:
    """One API deployed to its stages, served until stopped."""

    def __init__(
        self,
        api: ApiDefinition,
        stages: Sequence[StageSettings],
        lambdas: LambdaService | None = None,
        otlp_endpoint: str | None = None,
    ) -> None:
        self.api = api
        self.stages = {s.name: Stage(api, s, lambdas, otlp_endpoint) for s in stages}
        app = Starlette(
            routes=[Mount(f"/{name}", app=stage.app) for name, stage in self.stages.items()],
            lifespan=closing_at_shutdown(*(stage.integrations.http for stage in self.stages.values())),
        )
        self._server = ThreadedServer(app, name=f"apigw-{api.name}")

    def url(self, stage: str) -> str:
        """The stage's invoke URL (append the resource path)."""
        return f"{self._server.endpoint}/{stage}"

    def start(self) -> ApiGateway:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        for stage in self.stages.values():
            stage.close()
