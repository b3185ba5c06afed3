"""A Lambda function's definition, checked at deploy as AWS checks it.

Limits are AWS's: memory 128-10,240 MB, timeout 1-900 s, ephemeral storage 512-10,240 MB,
reserved concurrency 0 up to the account limit. The handler is ``module.function`` and its
module must exist in the code folder (or a layer); anything else fails at deploy with the
function and the setting named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from demo_apps.cloud.lambdas.lambda_errors import DeployError
from demo_apps.cloud.lambdas.lambda_refs import REGION
from demo_apps.cloud.lambdas.layers import MAX_LAYERS, content_bytes, layer_holds
from demo_apps.cloud.lambdas.vpc import VpcConfig

__all__ = ["DeployError", "FunctionConfig", "function_variables", "validate"]

MIN_MEMORY_MB: Final = 128
MAX_MEMORY_MB: Final = 10_240
FULL_CORE_MB: Final = 1_769  # AWS: at 1,769 MB a function has the equivalent of one vCPU
MAX_TIMEOUT_S: Final = 900
MAX_ZIPPED_BYTES: Final = 50 * 1024 * 1024  # AWS: a deployment package, zipped
MAX_UNZIPPED_BYTES: Final = 250 * 1024 * 1024  # AWS: code and layers, unzipped
_HANDLER = re.compile(r"([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    handler: str
    code_dir: Path
    memory_mb: int = 128
    timeout_s: float = 3.0
    environment: tuple[tuple[str, str], ...] = ()
    reserved_concurrency: int | None = None
    layers: tuple[Path, ...] = field(default=())
    ephemeral_storage_mb: int = 512
    dead_letter_queue: str | None = None  # an SQS queue URL
    on_success: str | None = None  # "sqs:<queue url>" or "lambda:<function>"
    on_failure: str | None = None
    vpc: VpcConfig | None = None

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def function(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    @property
    def cpu_share(self) -> float:
        """The cores this memory size buys: AWS allocates CPU in proportion (6 vCPUs at 10,240 MB)."""
        return self.memory_mb / FULL_CORE_MB


def function_variables(
    config: FunctionConfig, version: str, otlp_endpoint: str | None, xray_daemon: str | None
) -> dict[str, str]:
    """The environment variables AWS sets for the function's runtime, then the function's own."""
    variables = {
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "OTEL_SERVICE_NAME": config.name,
        "FLUORO_LAMBDA_PHASES": "1",  # the local Lambda records no Invocation/Overhead of its own
        "LAMBDA_TASK_ROOT": str(config.code_dir),
    }
    if otlp_endpoint:
        variables["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = otlp_endpoint
    if xray_daemon:  # the X-Ray SDK's Lambda mode: a facade segment from _X_AMZN_TRACE_ID
        variables["AWS_XRAY_DAEMON_ADDRESS"] = xray_daemon
    return {**variables, **dict(config.environment)}


def validate(
    config: FunctionConfig,
    account_limit: int,
    max_zipped_bytes: int = MAX_ZIPPED_BYTES,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
) -> None:
    """Raise DeployError for anything AWS would refuse at create time."""
    where = f"function {config.name!r}"
    if not _NAME.fullmatch(config.name):
        raise DeployError(f"{where}: the name must be 1-64 letters, digits, '-' or '_'")
    if not MIN_MEMORY_MB <= config.memory_mb <= MAX_MEMORY_MB:
        raise DeployError(f"{where}: MemorySize {config.memory_mb} is outside {MIN_MEMORY_MB}-{MAX_MEMORY_MB} MB")
    if not 1 <= config.timeout_s <= MAX_TIMEOUT_S:
        raise DeployError(f"{where}: Timeout {config.timeout_s} is outside 1-{MAX_TIMEOUT_S} s")
    if not 512 <= config.ephemeral_storage_mb <= 10_240:
        raise DeployError(f"{where}: EphemeralStorage {config.ephemeral_storage_mb} is outside 512-10240 MB")
    if config.reserved_concurrency is not None and not 0 <= config.reserved_concurrency <= account_limit:
        raise DeployError(
            f"{where}: ReservedConcurrentExecutions {config.reserved_concurrency} is outside 0-{account_limit}"
        )
    for setting, target in (("OnSuccess", config.on_success), ("OnFailure", config.on_failure)):
        if target is not None and not target.startswith(("sqs:", "lambda:")):
            raise DeployError(f"{where}: {setting} destination {target!r} is not sqs:<queue url> or lambda:<function>")
    if not _HANDLER.fullmatch(config.handler):
        raise DeployError(f"{where}: Handler {config.handler!r} is not module.function")
    if not config.code_dir.is_dir():
        raise DeployError(f"{where}: code folder {config.code_dir} does not exist")
    if len(config.layers) > MAX_LAYERS:
        raise DeployError(f"{where}: {len(config.layers)} layers, over the {MAX_LAYERS} a function may use")
    sizes = [content_bytes(content) for content in (config.code_dir, *config.layers)]
    zipped, unzipped = sizes[0][0], sum(size[1] for size in sizes)
    if zipped > max_zipped_bytes:
        raise DeployError(f"{where}: the package is {zipped:,} bytes zipped, over {max_zipped_bytes:,}")
    if unzipped > max_unzipped_bytes:
        raise DeployError(f"{where}: code and layers are {unzipped:,} bytes unzipped, over {max_unzipped_bytes:,}")
    relative = Path(*config.module.split("."))
    candidates = (relative.with_suffix(".py"), relative / "__init__.py")
    in_code = any((config.code_dir / candidate).is_file() for candidate in candidates)
    if not in_code and not any(layer_holds(layer, c) for layer in config.layers for c in candidates):
        raise DeployError(f"{where}: Handler module {config.module!r} is not in {config.code_dir} or its layers")
