"""The three demo architectures and how to run them together in one local cloud.

Each lives in its own folder with a SAM ``template.yaml`` (deployed by the local cloud), its
functions and a ``traffic`` module. ``Demo`` starts the cloud — its spans and the functions'
going to a collector's OTLP endpoint, X-Ray SDK segments to its UDP port — deploys the chosen
architectures and drives each with its traffic; ``snapshot`` reports what has happened so far.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from demo_apps.banking.traffic import BankingTraffic
from demo_apps.cloud.lambdas.lambda_async import AsyncSettings
from demo_apps.cloud.lambdas.lambda_service import LambdaSettings
from demo_apps.cloud.local_cloud import CloudSettings, LocalCloud
from demo_apps.cloud.sam.sam_deploy import Stack, deploy_template
from demo_apps.cloud.sam.sam_template import load_template
from demo_apps.images.traffic import ImagesTraffic
from demo_apps.load import CYCLE, LoadDriver, LoadSettings, Phase, Traffic
from demo_apps.social.traffic import SocialTraffic
from demo_apps.tracer_layer import publish_tracer_layer

HERE: Final = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Architecture:
    name: str
    folder: Path
    traffic: Callable[[LocalCloud, Stack], Traffic]


ARCHITECTURES: Final = {
    "banking": Architecture("banking", HERE / "banking", BankingTraffic),
    "images": Architecture("images", HERE / "images", ImagesTraffic),
    "social": Architecture("social", HERE / "social", SocialTraffic),
}


@dataclass(frozen=True)
class DemoSettings:
    otlp_endpoint: str  # the collector's /v1/traces URL
    xray_daemon: str | None = None  # host:port of its X-Ray UDP listener
    rps: float = 2.0  # per architecture, in the steady phases
    duration_s: float = 3600.0
    fault_rate: float = 0.03
    # With the reaper's period (4 s at 8 s), shorter than the load's idle gap (14 s): every
    # environment is gone by the gap's end, so cold starts recur after each.
    idle_timeout_s: float = 8.0
    retry_delays_s: tuple[float, float] = (2.0, 4.0)  # AWS: about 1 and 2 minutes
    account_limit: int = 20  # a small account, which also bounds the worker processes
    max_concurrent_inits: int = 2  # about one per core: a cold start's init is CPU-bound
    cycle: tuple[Phase, ...] = CYCLE
    # template parameters by architecture, over the templates' defaults (FaultRate is set above)
    parameters: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    collector_api: str | None = None  # the collector's query API: a group per architecture is saved there


@dataclass(frozen=True)
class Snapshot:
    name: str
    phase: str
    requests: int
    ok: int
    client_errors: int
    faults: int
    throttles: int  # API Gateway's own (429)
    lambda_throttles: int  # invocations the functions' concurrency refused (API Gateway answers them 500)
    cold_starts: int


class Demo:
    """The cloud, the stacks and their load; `start()`, `snapshot()`, `stop()`."""

    def __init__(self, names: list[str], settings: DemoSettings) -> None:
        self.names, self.settings = names, settings
        self.cloud = LocalCloud(
            CloudSettings(
                lambdas=LambdaSettings(
                    idle_timeout_s=settings.idle_timeout_s,
                    otlp_endpoint=settings.otlp_endpoint,
                    xray_daemon=settings.xray_daemon,
                    account_limit=settings.account_limit,
                    max_concurrent_inits=settings.max_concurrent_inits,
                ),
                async_invocation=AsyncSettings(retry_delays_s=settings.retry_delays_s),
                with_vpc=True,
                collector_api=settings.collector_api,
            )
        )
        self.stacks: dict[str, Stack] = {}
        self.drivers: dict[str, LoadDriver] = {}

    def start(self) -> Demo:
        self.cloud.start()
        try:
            publish_tracer_layer(self.cloud.lambdas.layers)  # the layer every template's functions list
            for name in self.names:
                architecture = ARCHITECTURES[name]
                parameters = {"FaultRate": str(self.settings.fault_rate)} if name == "banking" else {}
                parameters.update(self.settings.parameters.get(name, {}))
                template = load_template(
                    architecture.folder / "template.yaml", name, self.cloud.aws.endpoint, parameters
                )
                self.stacks[name] = deploy_template(self.cloud, template)
            for name in self.names:
                traffic = ARCHITECTURES[name].traffic(self.cloud, self.stacks[name])
                load = LoadSettings(
                    rps=self.settings.rps,
                    duration_s=self.settings.duration_s,
                    seed=len(name),
                    cycle=self.settings.cycle,
                )
                self.drivers[name] = LoadDriver(traffic, load).start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return any(driver.running for driver in self.drivers.values())

    def snapshot(self) -> list[Snapshot]:
        rows = []
        for name, driver in self.drivers.items():
            counts = driver.counts.copy()
            stats = [self.cloud.lambdas.stats(f) for f in self.stacks[name].functions.values()]
            colds = sum(s["cold_starts"] for s in stats)
            rows.append(
                Snapshot(
                    name,
                    driver.phase,
                    counts["requests"],
                    counts["ok"],
                    counts["4xx"],
                    counts["5xx"] + counts["failed"],
                    counts["429"],
                    sum(s["throttles"] for s in stats),
                    colds,
                )
            )
        return rows

    def stop(self) -> None:
        for driver in self.drivers.values():
            driver.stop()
        for driver in self.drivers.values():
            driver.join(35)
        for stack in self.stacks.values():
            stack.close()
        self.cloud.close()
