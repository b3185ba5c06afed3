"""An execution environment seen from the emulator: a worker process, started cold, reused warm.

Starting one spawns ``lambda_worker`` with the function's variables and waits for its init
(the real import of the handler module); an invocation writes one line and waits for the
answer until the function's deadline. Past it the process is killed and the environment is
discarded, as AWS discards a timed-out sandbox. The memory model: a function gets
``memory / 1,769 MB`` of a core, so an invocation is stretched by the CPU time it used times
``1 / share - 1`` — more memory, shorter duration, as AWS's tuning advice says.
"""

from __future__ import annotations

import contextlib
import json
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
from demo_apps.cloud.lambdas.log_lines import LogShipper, OutputPump
from demo_apps.cloud.lambdas.vpc import ENI_ATTACH_S, Vpc

ROOT = Path(__file__).resolve().parents[2]


class EnvironmentFailed(RuntimeError):
    """The environment could not start (an init error) or died; it is discarded."""


class InvocationTimedOut(RuntimeError):
    """The handler ran past the function's timeout; the environment was killed."""


@dataclass(frozen=True)
class Outcome:
    """One invocation's answer: the result or AWS's error shape, and what it cost."""

    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    cpu_s: float = 0.0


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
        # The environment's own /tmp: TMPDIR (tempfile and most libraries use it), its size
        # checked against the function's ephemeral storage after every invocation.
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"lambda-{config.name}-"))

    def start(self, init_timeout_s: float = 10.0) -> float:
        """Spawn the worker and run the function's init; the init duration in ms."""
        paths = [str(self.config.code_dir), *(str(layer) for layer in self.config.layers), str(ROOT)]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_LAMBDA", "_X_AMZN"))},
            **self._variables,
            "PYTHONPATH": os.pathsep.join(paths),
            "AWS_LAMBDA_LOG_STREAM_NAME": f"environment/{self.id}",
            "TMPDIR": str(self.tmp_dir),
        }
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
        resource = {
            "service.name": self.config.name,
            "faas.name": self.config.name,
            "faas.instance": f"environment/{self.id}",
            "cloud.provider": "aws",
        }
        self._output = OutputPump(self._process.stderr, resource, self._logs)
        ready = _line(self._process, started + init_timeout_s)
        if ready is None or not ready.get("ready"):
            self.stop()
            reason = (ready or {}).get("error", {}).get("errorMessage", "init timed out")
            raise EnvironmentFailed(f"{self.config.name}: init failed: {reason}")
        self.init_ms = (time.monotonic() - started) * 1000
        return self.init_ms

    def invoke(self, event: Any, trace_header: str | None, invoked_arn: str, version: str = "$LATEST") -> Outcome:
        """Run the handler once; raises InvocationTimedOut (environment gone) past the timeout."""
        process = self._process
        if process is None or process.poll() is not None or process.stdin is None:
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
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        answer = _line(process, deadline)
        if answer is None:
            self.stop()
            raise InvocationTimedOut(f"Task timed out after {self.config.timeout_s:.2f} seconds")
        cpu_s = float(answer.get("cpu_s", 0.0))
        self._stretch(cpu_s, deadline)
        if time.monotonic() >= deadline:  # the CPU it needed at its share did not fit in the timeout
            self.stop()
            raise InvocationTimedOut(f"Task timed out after {self.config.timeout_s:.2f} seconds")
        self.invocations += 1
        self.last_used = time.monotonic()
        duration_ms = (self.last_used - started) * 1000
        used = self.tmp_bytes()
        if used > self.config.ephemeral_storage_mb * 1024 * 1024:
            self.stop()
            error = {
                "errorType": "Runtime.EphemeralStorageExceeded",
                "errorMessage": f"/tmp holds {used:,} bytes, over {self.config.ephemeral_storage_mb} MB",
            }
            return Outcome(None, error, duration_ms, cpu_s)
        return Outcome(answer.get("result"), answer.get("error"), duration_ms, cpu_s)

    def tmp_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.tmp_dir.rglob("*") if p.is_file())

    def _stretch(self, cpu_s: float, deadline: float) -> None:
        """Hold the answer as long as the CPU time would take at the function's CPU share."""
        extra_s = cpu_s * (1 / self.config.cpu_share - 1)
        if extra_s > 0:
            time.sleep(max(0.0, min(extra_s, deadline - time.monotonic())))

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
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):  # a killed worker's stdin may refuse the flush
                        pipe.close()
        if self._output is not None:  # the output's last lines, read to its end (the pump closes it)
            self._output.finish()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
