"""The local Lambda service: deploy functions, invoke them, with AWS's concurrency rules.

- Environments are real worker processes (``lambda_environment``): a cold start spawns one and
  runs the handler module's init; warm ones are reused; idle ones are reaped after
  ``idle_timeout_s``, so cold starts recur; one that times out is discarded.
- Concurrency: an account limit (AWS's default 1,000), reserved concurrency per function
  carved out of it, the rest shared as the unreserved pool. An invocation past its limit
  fails with TooManyRequestsException (HTTP 429), as a synchronous invoke does on AWS.
- Versions and aliases: $LATEST is mutable; publishing a version snapshots the code folder and
  the configuration; an alias names a version, optionally sending a weight of the traffic to
  a second one; updating $LATEST never moves an alias.
- Tracing, as AWS does it: the Lambda service's own span for each invocation (origin
  ``AWS::Lambda``, named after the function; throttles are flagged on it) is the parent the
  function's code receives in ``_X_AMZN_TRACE_ID``, so the function's span
  (``AWS::Lambda::Function``, from tracer's ``@traced.handler``) sits beneath it on the map.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.trace import Link, SpanKind

from demo_apps.cloud.lambdas.lambda_config import DeployError, FunctionConfig, function_variables, validate
from demo_apps.cloud.lambdas.lambda_environment import (
    EnvironmentFailed,
    ExecutionEnvironment,
    InvocationTimedOut,
    Outcome,
    OutOfMemory,
)
from demo_apps.cloud.lambdas.lambda_errors import FunctionError, ResourceNotFound, TooManyRequests
from demo_apps.cloud.lambdas.lambda_refs import ACCOUNT, REGION, split_reference
from demo_apps.cloud.lambdas.layers import LayerStore
from demo_apps.cloud.lambdas.sandbox import Isolation, SandboxKind
from demo_apps.cloud.lambdas.telemetry_relay import FunctionTelemetry
from demo_apps.cloud.lambdas.vpc import Vpc, VpcError
from demo_apps.cloud.service_tracers import ServiceTracers
from tracer import extract_from, semconv, xray_header

_logger = logging.getLogger(__name__)
_XRAY = AwsXRayPropagator()
DEFAULT_ACCOUNT_LIMIT: Final = 1000
LATEST: Final = "$LATEST"
FUNCTION_ERROR: Final = "fluoro.lambda.function_error"


@dataclass(frozen=True)
class Alias:
    """A name for a version, optionally sending `weight` of the invocations to a second one."""

    version: str
    additional_version: str | None = None
    weight: float = 0.0


@dataclass
class _Function:
    config: FunctionConfig
    version: str = LATEST
    idle: list[ExecutionEnvironment] = field(default_factory=list)
    busy: int = 0
    cold_starts: int = 0
    throttles: int = 0  # invocations its concurrency refused, any version (on $LATEST's record)
    invocations: int = 0


@dataclass(frozen=True)
class LambdaSettings:
    account_limit: int = DEFAULT_ACCOUNT_LIMIT
    idle_timeout_s: float = 300.0
    otlp_endpoint: str | None = None  # where functions and the service send spans
    xray_daemon: str | None = None  # host:port of the X-Ray daemon protocol, for X-Ray SDK handlers
    # How many environments may initialize at once, account-wide: the local stand-in for
    # Lambda's scaling rate. A cold start waits up to `init_wait_s` for a slot, then is
    # throttled (429) as a burst past AWS's scaling rate is. None: no limit.
    max_concurrent_inits: int | None = None
    init_wait_s: float = 5.0
    sandbox: SandboxKind = "auto"  # how CPU share and memory size are held (sandbox.py)
    private_tmp: bool = True  # each environment's own /tmp where the machine allows (mount_namespace.py)
    relay: bool = True  # functions export through an ADOT-extension-like relay (telemetry_relay.py)


class LambdaService:
    """Functions by name; thread-safe: invocations run on the caller's thread."""

    def __init__(self, settings: LambdaSettings = LambdaSettings(), vpc: Vpc | None = None) -> None:
        self.settings = settings
        self.vpc = vpc
        self._functions: dict[str, _Function] = {}  # $LATEST of each function
        self._versions: dict[tuple[str, str], _Function] = {}
        self._aliases: dict[tuple[str, str], Alias] = {}
        self._snapshots = Path(tempfile.mkdtemp(prefix="fluoro-lambda-versions-"))
        self._random = random.Random(7)
        self._lock = threading.Lock()
        self.isolation = Isolation(settings.sandbox, settings.private_tmp)
        self.layers = LayerStore(self._snapshots / "layers")  # published layer versions, merged /opt
        self._tracers = ServiceTracers(settings.otlp_endpoint, "demo_apps.cloud.lambda")
        self.telemetry = FunctionTelemetry(settings.otlp_endpoint, settings.relay)  # spans (relayed), log lines
        self._stopping = threading.Event()
        inits = settings.max_concurrent_inits
        self._init_slots = threading.BoundedSemaphore(inits) if inits else None
        self._reaper = threading.Thread(target=self._reap_forever, name="lambda-reaper", daemon=True)
        self._reaper.start()

    # ------------------------------------------------------------------ deploy

    def deploy(self, config: FunctionConfig) -> str:
        """Create or update a function ($LATEST); its ARN. Raises DeployError for bad settings."""
        validate(config, self.settings.account_limit)
        self.isolation.private_tmp()  # the first deploy names a fallback
        if config.vpc is not None:
            if self.vpc is None:
                raise DeployError(f"function {config.name!r}: VpcConfig given but this cloud has no VPC")
            try:
                self.vpc.check(config.vpc)
            except VpcError as exc:
                raise DeployError(f"function {config.name!r}: VpcConfig: {exc}") from None
        with self._lock:
            reserved = sum(f.config.reserved_concurrency or 0 for n, f in self._functions.items() if n != config.name)
            if reserved + (config.reserved_concurrency or 0) > self.settings.account_limit:
                raise DeployError(f"function {config.name!r}: reserved concurrency exceeds the account limit")
            previous = self._functions.get(config.name)
            self._functions[config.name] = _Function(config)
        if previous is not None:  # new code: environments of the old one never serve again
            for environment in previous.idle:
                environment.stop()
        return self.arn(config.name)

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"

    # ------------------------------------------------------------------ invoke

    def config(self, reference: str) -> FunctionConfig:
        """A function's configuration; `reference` may name a version or alias (``name:live``, or
        its ARN), which must exist (ResourceNotFound, a KeyError, otherwise)."""
        name, qualifier = split_reference(reference)
        self._resolve(name, qualifier)
        return self._functions[name].config

    # ------------------------------------------------------------------ versions and aliases

    def publish_version(self, name: str) -> str:
        """Snapshot $LATEST's code and configuration as the next numbered version."""
        with self._lock:
            latest = self._function(name)
            number = str(1 + sum(1 for n, _ in self._versions if n == name))
        snapshot = self._snapshots / f"{name}-{number}"
        shutil.copytree(latest.config.code_dir, snapshot)
        with self._lock:
            self._versions[(name, number)] = _Function(replace(latest.config, code_dir=snapshot), version=number)
        return number

    def put_alias(
        self, name: str, alias: str, version: str, additional_version: str | None = None, weight: float = 0.0
    ) -> None:
        """Create or move an alias; with `additional_version`, `weight` of the traffic goes there."""
        for wanted in (version, additional_version):
            if wanted is not None and wanted != LATEST and (name, wanted) not in self._versions:
                raise ResourceNotFound(f"function {name} has no version {wanted}")
        if not 0.0 <= weight <= 1.0:
            raise DeployError(f"alias {alias}: the weight {weight} is outside 0-1")
        if additional_version is not None and LATEST in (version, additional_version):
            raise DeployError(f"alias {alias}: $LATEST is not supported for an alias pointing to more than 1 version")
        self._aliases[(name, alias)] = Alias(version, additional_version, weight)

    def alias(self, name: str, alias: str) -> Alias:
        try:
            return self._aliases[(name, alias)]
        except KeyError:
            raise ResourceNotFound(f"function {name} has no alias {alias}") from None

    def _function(self, name: str) -> _Function:
        try:
            return self._functions[name]
        except KeyError:
            raise ResourceNotFound(f"Function not found: {self.arn(name)}") from None

    def _resolve(self, name: str, qualifier: str | None) -> _Function:
        """The version a qualifier ($LATEST, a number or an alias) invokes now."""
        latest = self._function(name)
        if qualifier in (None, LATEST):
            return latest
        alias = self._aliases.get((name, str(qualifier)))
        version = str(qualifier)
        if alias is not None:
            chosen = alias.additional_version is not None and self._random.random() < alias.weight
            version = alias.additional_version if chosen and alias.additional_version else alias.version
        if version == LATEST:
            return latest
        try:
            return self._versions[(name, version)]
        except KeyError:
            raise ResourceNotFound(f"Function not found: {self.arn(name)}:{qualifier}") from None

    def invoke(self, name: str, event: Any, trace_header: str | None = None, **options: Any) -> Any:
        """A synchronous (RequestResponse) invocation: the handler's result (invoke_versioned's)."""
        return self.invoke_versioned(name, event, trace_header, **options)[0]

    def invoke_versioned(
        self,
        name: str,
        event: Any,
        trace_header: str | None = None,
        *,
        qualifier: str | None = None,
        queued_since_ns: int | None = None,
        span_attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] = (),
    ) -> tuple[Any, str]:
        """A synchronous (RequestResponse) invocation: the handler's result and the version that
        ran it (an alias's, or a weighted alias's pick). `name` may carry its qualifier
        (``withdraw:live``, or the function's ARN with one), as event sources name functions.

        Raises TooManyRequests (429), FunctionError (the handler raised, or timed out), KeyError
        for an unknown function. `queued_since_ns`: when an asynchronous event was queued (the
        service's span starts there, showing the wait); `span_attributes` go on the service's span
        (an event source mapping's batch size, iterator age); `links`: the producers of a
        batch's records, which the batch's own trace starts from."""
        name, named_qualifier = split_reference(name)
        function = self._resolve(name, qualifier or named_qualifier)
        tracer = self._tracers.tracer(name)
        parent = extract_from({semconv.XRAY_HEADER: trace_header}, _XRAY) if trace_header else None
        with tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, start_time=queued_since_ns, links=links
        ) as span:
            span.set_attributes({**self._span_attributes(function), **(span_attributes or {})})
            try:
                environment, cold = self._acquire(function)
            except TooManyRequests:
                with self._lock:  # counted for the function, whichever version or alias was asked
                    self._function(name).throttles += 1
                span.set_attributes({semconv.THROTTLE: True, semconv.ERROR: True, "http.response.status_code": 429})
                raise
            try:
                outcome = self._run(function, environment, event, xray_header(span.get_span_context()))
            except FunctionError as exc:
                span.set_attributes({semconv.FAULT: True, FUNCTION_ERROR: exc.payload.get("errorType", "Error")})
                raise
            span.set_attributes(
                {
                    "fluoro.lambda.cold_start": cold,
                    semconv.FAAS_VERSION: function.version,
                    **outcome.report(),  # AWS's REPORT line
                }
            )
            if outcome.error is not None:
                span.set_attribute(FUNCTION_ERROR, outcome.error.get("errorType", "Error"))
                raise FunctionError(outcome.error, function.version)
            return outcome.result, function.version

    def _span_attributes(self, function: _Function) -> dict[str, Any]:
        """What the service's span of an invocation says before it runs."""
        return {
            semconv.ORIGIN: semconv.ORIGIN_LAMBDA_SERVICE,
            semconv.RPC_SYSTEM: "aws-api",
            semconv.RPC_SERVICE: "Lambda",
            semconv.RPC_METHOD: "Invoke",
            semconv.CLOUD_RESOURCE_ID: self.arn(function.config.name),
            "fluoro.lambda.memory_size_mb": function.config.memory_mb,
        }

    def _acquire(self, function: _Function) -> tuple[ExecutionEnvironment, bool]:
        """A warm environment, or a new (cold) one when concurrency allows."""
        with self._lock:
            if not self._has_capacity(function):
                raise TooManyRequests(f"Rate Exceeded: {function.config.name} is at its concurrency limit")
            function.busy += 1
            while function.idle:
                environment = function.idle.pop()
                if environment.alive:
                    return environment, False
        settings = self.settings
        variables = function_variables(
            function.config, function.version, self.telemetry.traces_url, settings.xray_daemon
        )
        opt = self.layers.opt_for(function.config.layers)
        environment = ExecutionEnvironment(
            function.config, variables, self.vpc, self.telemetry.logs, isolation=self.isolation, opt=opt
        )
        if self._init_slots is not None and not self._init_slots.acquire(timeout=self.settings.init_wait_s):
            self._release(function, None)
            raise TooManyRequests(f"Rate Exceeded: {function.config.name} cannot scale up faster")
        try:
            environment.start()
        except EnvironmentFailed as exc:
            self._release(function, None)
            raise FunctionError({"errorType": "Runtime.InitError", "errorMessage": str(exc)}) from exc
        finally:
            if self._init_slots is not None:
                self._init_slots.release()
        with self._lock:
            function.cold_starts += 1
        return environment, True

    def _has_capacity(self, function: _Function) -> bool:
        """Reserved concurrency counts every version of the function; the rest share the pool."""
        name = function.config.name
        every = [*self._functions.values(), *self._versions.values()]
        reserved = self._functions[name].config.reserved_concurrency
        if reserved is not None:
            return sum(f.busy for f in every if f.config.name == name) < reserved
        pool = self.settings.account_limit - sum(f.config.reserved_concurrency or 0 for f in self._functions.values())
        unreserved = {n for n, f in self._functions.items() if f.config.reserved_concurrency is None}
        return sum(f.busy for f in every if f.config.name in unreserved) < pool

    def _run(self, function: _Function, environment: ExecutionEnvironment, event: Any, header: str) -> Outcome:
        with self._lock:
            function.invocations += 1
        try:
            arn = self.arn(function.config.name) + (f":{function.version}" if function.version != LATEST else "")
            outcome = environment.invoke(event, header, arn, function.version)
        except InvocationTimedOut as exc:
            self._release(function, None)  # a timed-out environment is discarded
            raise FunctionError({"errorType": "Sandbox.Timedout", "errorMessage": str(exc)}) from exc
        except EnvironmentFailed as exc:
            self._release(function, None)
            error_type = "Runtime.OutOfMemory" if isinstance(exc, OutOfMemory) else "Runtime.ExitError"
            raise FunctionError({"errorType": error_type, "errorMessage": str(exc)}) from exc
        self._release(function, environment)
        return outcome

    def _release(self, function: _Function, environment: ExecutionEnvironment | None) -> None:
        with self._lock:
            function.busy -= 1
            if environment is not None and self._is_current(function):
                function.idle.append(environment)
                return
        if environment is not None:  # the function was redeployed meanwhile
            environment.stop()

    def _is_current(self, function: _Function) -> bool:
        key = function.config.name
        current = (
            self._functions.get(key) if function.version == LATEST else self._versions.get((key, function.version))
        )
        return current is function

    # ------------------------------------------------------------------ lifecycle

    def stats(self, name: str, version: str = LATEST) -> Mapping[str, int]:
        function = self._function(name) if version == LATEST else self._versions[(name, version)]
        with self._lock:
            return {
                "cold_starts": function.cold_starts,
                "invocations": function.invocations,
                "throttles": function.throttles,
                "idle": len(function.idle),
                "busy": function.busy,
            }

    def reap_idle(self, now: float | None = None) -> int:
        """Stop environments idle past the timeout; how many."""
        at = time.monotonic() if now is None else now
        reaped: list[ExecutionEnvironment] = []
        with self._lock:
            for function in [*self._functions.values(), *self._versions.values()]:
                keep = [e for e in function.idle if at - e.last_used < self.settings.idle_timeout_s]
                reaped += [e for e in function.idle if e not in keep]
                function.idle = keep
        for environment in reaped:
            environment.stop()
        return len(reaped)

    def _reap_forever(self) -> None:
        while not self._stopping.wait(reap_period_s(self.settings.idle_timeout_s)):
            self.reap_idle()

    def close(self) -> None:
        """Stop every environment and flush the service's spans."""
        self._stopping.set()
        with self._lock:
            every = [*self._functions.values(), *self._versions.values()]
            environments = [e for f in every for e in f.idle]
            for function in every:
                function.idle = []
        for environment in environments:
            environment.stop()
        self.isolation.close()
        self._tracers.shutdown()
        self.telemetry.close()
        shutil.rmtree(self._snapshots, ignore_errors=True)


def reap_period_s(idle_timeout_s: float) -> float:
    """How often idle environments are looked for: one idle past its timeout is gone within
    timeout + this period (so a pause longer than both always ends in a cold start)."""
    return min(5.0, idle_timeout_s / 2)
