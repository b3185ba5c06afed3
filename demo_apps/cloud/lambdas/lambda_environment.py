"""An execution environment seen from the emulator: a worker process, started cold, reused warm.

Starting one spawns ``lambda_worker`` with the function's variables and waits for its init
(the real import of the handler module); an invocation writes one line and waits for the
answer until the function's deadline. Past it the process is killed and the environment is
discarded, as AWS discards a timed-out sandbox. The process is held to the function's CPU share
and memory size by the service's sandbox (``sandbox.py``): past its memory it is killed and the
invocation fails as AWS's out-of-memory does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.layers import PYTHON_FOLDERS
from demo_apps.cloud.lambdas.log_lines import LogShipper, OutputPump
from demo_apps.cloud.lambdas.mount_namespace import make_image
from demo_apps.cloud.lambdas.sandbox import EnvironmentLimits, Isolation
from demo_apps.cloud.lambdas.vpc import ENI_ATTACH_S, Vpc

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


class EnvironmentFailed(RuntimeError):
    """The environment could not start (an init error) or died; it is discarded."""


class InvocationTimedOut(RuntimeError):
    """The handler ran past the function's timeout; the environment was killed."""


class OutOfMemory(EnvironmentFailed):
    """The handler passed the function's memory size and was killed; the environment is gone."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"RequestId: {request_id} Error: Runtime exited with error: signal: killed")


@dataclass(frozen=True)
class Outcome:
    """One invocation's answer: the result or AWS's error shape, and what it cost."""

    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0  # the handler's Duration, as the environment measured the call
    cpu_s: float = 0.0
    max_memory_used_mb: int = 0  # the environment's peak so far, as AWS's REPORT line gives it
    init_ms: float | None = None  # the cold start's Init Duration

    def report(self) -> dict[str, float | int]:
        """AWS's REPORT line as span attributes: Duration, Billed Duration (1 ms steps, as AWS
        bills since 2020), Max Memory Used, and Init Duration on a cold start."""
        report: dict[str, float | int] = {
            "fluoro.lambda.duration_ms": round(self.duration_ms, 3),
            "fluoro.lambda.billed_duration_ms": max(1, math.ceil(self.duration_ms)),
            "fluoro.lambda.max_memory_used_mb": self.max_memory_used_mb,
        }
        if self.init_ms is not None:
            report["fluoro.lambda.init_duration_ms"] = round(self.init_ms, 3)
        return report


def _line(process: subprocess.Popen[str], deadline: float) -> dict[str, Any] | None:
    """The worker's next protocol line, or None at the deadline."""
    assert process.stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([process.stdout], [], [], remaining)
        if ready:
            line = process.stdout.readline()
            if not line:
                raise EnvironmentFailed(f"the environment exited (code {process.poll()})")
            answer: dict[str, Any] = json.loads(line)
            return answer


class ExecutionEnvironment:
    """One warm-able sandbox of one function."""

    def __init__(
        self,
        config: FunctionConfig,
        variables: dict[str, str],
        vpc: Vpc | None = None,
        logs: LogShipper | None = None,
        *,
        isolation: Isolation,
        opt: Path | None = None,
    ) -> None:
        self.config = config
        self.id = uuid.uuid4().hex[:12]
        self.last_used = time.monotonic()
        self.invocations = 0
        self.init_ms = 0.0
        self._variables = variables
        self._vpc = vpc
        self._process: subprocess.Popen[str] | None = None
        self._logs = logs  # where the output's lines with a trace id go (log_lines.py)
        self._output: OutputPump | None = None
        self._isolation = isolation
        self._sandbox = isolation.sandbox  # the service's, shared by its environments
        self._private_tmp = isolation.private_tmp()
        self._opt = opt  # the function's layers merged (layers.py), its /opt
        self._limits: EnvironmentLimits | None = None
        # Holds the image of the environment's own /tmp (mount_namespace.py); where the machine does
        # not allow one, it is the environment's TMPDIR, measured after every invocation.
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"lambda-{config.name}-"))

    def _environment(self) -> dict[str, str]:
        """The worker's variables, its /tmp image made (OSError or SubprocessError if it cannot be)."""
        # AWS's order: the function's code, then its layers' python folders, then the runtime's
        opt = None if self._opt is None else Path("/opt") if self._private_tmp else self._opt
        layer_paths = [str(opt / folder) for folder in PYTHON_FOLDERS] if opt is not None else []
        paths = [str(self.config.code_dir), *layer_paths, str(ROOT)]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_LAMBDA", "_X_AMZN"))},
            **self._variables,
            "PYTHONPATH": os.pathsep.join(paths),
            "AWS_LAMBDA_LOG_STREAM_NAME": f"environment/{self.id}",
            "TMPDIR": "/tmp" if self._private_tmp else str(self.tmp_dir),
        }
        if self._private_tmp:
            image = self.tmp_dir / "tmp.ext4"
            make_image(image, self.config.ephemeral_storage_mb)
            env["FLUORO_LAMBDA_TMP_IMAGE"] = str(image)
            if self._opt is not None:
                env["FLUORO_LAMBDA_OPT"] = str(self._opt)
        return env

    def start(self, init_timeout_s: float = 10.0) -> float:
        """Spawn the worker and run the function's init; the init duration in ms."""
        self._isolation.track(self, alive=True)
        try:
            env = self._environment()
        except (OSError, subprocess.SubprocessError) as exc:  # a full disk, a missing mkfs
            self.stop()
            raise EnvironmentFailed(f"{self.config.name}: the environment could not be made: {exc}") from exc
        started = time.monotonic()
        if self.config.vpc is not None and self._vpc is not None:
            loopback, address = self._vpc.attach(self.config.vpc)
            time.sleep(ENI_ATTACH_S)  # attaching the interface is part of a VPC function's init
            env.update(FLUORO_VPC_ADDRESS=loopback, FLUORO_VPC_PRIVATE_IP=address)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "demo_apps.cloud.lambdas.lambda_worker", self.config.module, self.config.function],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # the function's log: echoed, and its traced lines shipped
            text=True,
            errors="backslashreplace",  # a function may print any bytes: its log is read on, never stuck
            env=env,
            cwd=str(self.config.code_dir),
        )
        assert self._process.stderr is not None
        try:
            self._limits = self._sandbox.enclose(self._process.pid, f"env-{self.id}", self.config.memory_mb * MIB)
        except OSError as exc:  # no room for one more group: the environment is not made
            self.stop()
            raise EnvironmentFailed(f"{self.config.name}: the environment's limits could not be set: {exc}") from exc
        resource = {
            "service.name": self.config.name,
            "faas.name": self.config.name,
            "faas.instance": f"environment/{self.id}",
            "cloud.provider": "aws",
        }
        self._output = OutputPump(self._process.stderr, resource, self._logs)
        try:
            ready = _line(self._process, started + init_timeout_s)
        except EnvironmentFailed as exc:
            ready = {"error": {"errorMessage": str(exc)}}
        if ready is not None and ready.get("ready"):
            self._limits.share_cpu(self.config.cpu_share)
        if ready is None or not ready.get("ready") or self._limits.out_of_memory():
            self.stop()
            reason = (ready or {}).get("error", {}).get("errorMessage", "init timed out")
            if self._limits.out_of_memory():
                reason = f"Runtime exited with error: signal: killed (past {self.config.memory_mb} MB)"
            raise EnvironmentFailed(f"{self.config.name}: init failed: {reason}")
        self.init_ms = (time.monotonic() - started) * 1000
        return self.init_ms

    def invoke(self, event: Any, trace_header: str | None, invoked_arn: str, version: str = "$LATEST") -> Outcome:
        """Run the handler once; raises InvocationTimedOut (environment gone) past the timeout."""
        process, limits = self._process, self._limits
        if process is None or process.poll() is not None or process.stdin is None or limits is None:
            raise EnvironmentFailed(f"{self.config.name}: the environment is not running")
        started = time.monotonic()
        deadline = started + self.config.timeout_s
        request = {
            "event": event,
            "request_id": str(uuid.uuid4()),
            "deadline_ms": int((time.time() + self.config.timeout_s) * 1000),
            "trace_header": trace_header,
            "invoked_arn": invoked_arn,
            "version": version,
        }
        if self._output is not None:
            self._output.header = trace_header
        limits.begin()
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            answer = _line(process, deadline)
        except (EnvironmentFailed, OSError) as exc:  # died: of its memory, or of its own doing
            limits.end()
            out_of_memory = limits.out_of_memory()
            self.stop()
            raise OutOfMemory(request["request_id"]) if out_of_memory else EnvironmentFailed(str(exc)) from exc
        limits.end()
        if answer is None:
            self.stop()
            raise InvocationTimedOut(f"Task timed out after {self.config.timeout_s:.2f} seconds")
        cpu_s = float(answer.get("cpu_s", 0.0))
        self.invocations += 1
        self.last_used = time.monotonic()
        duration_ms = float(answer.get("duration_ms", (self.last_used - started) * 1000))
        init_ms = self.init_ms if self.invocations == 1 else None
        peak_mb = limits.peak_memory_bytes() // MIB
        used = 0 if self._private_tmp else self.tmp_bytes()
        if used > self.config.ephemeral_storage_mb * MIB:
            self.stop()
            error = {
                "errorType": "Runtime.EphemeralStorageExceeded",
                "errorMessage": f"/tmp holds {used:,} bytes, over {self.config.ephemeral_storage_mb} MB",
            }
            return Outcome(None, error, duration_ms, cpu_s, peak_mb, init_ms)
        return Outcome(answer.get("result"), answer.get("error"), duration_ms, cpu_s, peak_mb, init_ms)

    def tmp_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.tmp_dir.rglob("*") if p.is_file())

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """End the environment's process (if it still runs), close its pipes, remove its /tmp."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
            unread = (process.stderr,) if self._output is None else ()  # the pump closes stderr it reads
            for pipe in (process.stdin, process.stdout, *unread):
                if pipe is not None:
                    with contextlib.suppress(OSError):  # a killed worker's stdin may refuse the flush
                        pipe.close()
        if self._limits is not None:
            self._limits.close()
        if self._output is not None:  # the output's last lines, read to its end (the pump closes it)
            self._output.finish()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._isolation.track(self, alive=False)
