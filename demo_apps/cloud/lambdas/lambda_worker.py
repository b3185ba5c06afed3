"""One Lambda execution environment: a process that imports a handler once, then invokes it.

Started by the emulator with the function's environment variables (the ``AWS_LAMBDA_*`` set,
``OTEL_SERVICE_NAME``, the user's), it imports the handler module — the function's init code
runs here, so a cold start's init duration is the real one — then reads one invocation per
line on stdin and answers one line on the protocol pipe. The handler's own prints go to
stderr (the function's log), so they cannot corrupt the protocol. Each invocation gets
``_X_AMZN_TRACE_ID`` and a context object, as on AWS. The CPU time the handler used is
reported so the emulator can stretch the invocation to the function's CPU share. For a
handler instrumented with the X-Ray SDK rather than Fluoro's tracer, the runtime records the
function segment and runs the environment's X-Ray daemon (``lambda_xray``), as Lambda does.

Protocol (JSON lines): in ``{"event", "request_id", "deadline_ms", "trace_header",
"invoked_arn", "version"}``; out ``{"ready": true, "init_ms"}`` once, then ``{"result"}`` or
``{"error": {"errorType", "errorMessage", "stackTrace"}}``, each with ``"cpu_s"`` and ``"duration_ms"``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from demo_apps.cloud.lambdas.lambda_xray import from_environment
from demo_apps.cloud.lambdas.mount_namespace import enter


class LambdaContext:
    """What AWS passes as `context`: ids, names, limits and the time left."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.aws_request_id = request["request_id"]
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = request.get("version", "$LATEST")
        self.invoked_function_arn = request["invoked_arn"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline_ms = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__),
    }


def leave_from(address: str) -> None:
    """Make this environment's TCP connections to loopback leave from its VPC interface address."""
    original = socket.socket.connect

    def connect(self: socket.socket, target: Any) -> None:
        if self.family == socket.AF_INET and isinstance(target, tuple) and str(target[0]).startswith("127."):
            with contextlib.suppress(OSError):  # already bound by the caller
                self.bind((address, 0))
        original(self, target)

    socket.socket.connect = connect  # type: ignore[method-assign]


def traced_by_fluoro() -> bool:
    """Whether the handler's module configured Fluoro's tracer (which records the function span)."""
    runtime = sys.modules.get("tracer.runtime")
    return runtime is not None and getattr(runtime, "ACTIVE", None) is not None and runtime.ACTIVE.tracing is not None


def main() -> None:
    process_started = time.time()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # the handler's prints are its log, not protocol lines
    module_name, function_name = sys.argv[1], sys.argv[2]
    image = os.environ.pop("FLUORO_LAMBDA_TMP_IMAGE", None)
    if image:  # before any of the function's code runs: its /tmp is its own (mount_namespace.py)
        try:
            # the host's folders the function is configured with: its code, the runtime, and any
            # folder a variable names (as a test hands a function a folder to write its records to)
            named = [v for v in os.environ.values() if v.startswith("/") and os.path.isdir(v)]
            keep = [Path(p) for p in (*sys.path, os.getcwd(), sys.prefix, sys.executable, *named) if p]
            opt = os.environ.pop("FLUORO_LAMBDA_OPT", None)
            enter(Path(image), keep, Path(opt) if opt else None)
            sys.path_importer_cache.clear()  # /opt/python was looked up (absent) before the mount
        except (OSError, subprocess.SubprocessError) as exc:
            protocol.write(json.dumps({"ready": False, "error": _error(exc)}) + "\n")
            return
    if os.environ.get("FLUORO_VPC_ADDRESS"):
        leave_from(os.environ["FLUORO_VPC_ADDRESS"])
    segments = from_environment(process_started)
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except BaseException as exc:  # noqa: BLE001 - any init failure is Runtime.InitError, as on AWS
        protocol.write(json.dumps({"ready": False, "error": _error(exc)}) + "\n")
        return
    init_ended: float | None = time.time()
    # Fluoro's tracer records the function span itself; otherwise this runtime does, as Lambda does
    own_segments = segments is not None and not traced_by_fluoro()
    protocol.write(json.dumps({"ready": True, "init_ms": (time.perf_counter() - started) * 1000}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        header, invocation = request.get("trace_header"), None
        if own_segments and segments is not None:
            header, invocation = segments.begin(header)
        os.environ["_X_AMZN_TRACE_ID"] = header or ""
        answer = _invoke(handler, request)
        if segments is not None and invocation is not None:
            segments.finish(invocation, init_ended=init_ended, returned=time.time(), error=answer.get("error"))
            init_ended = None
        elif segments is not None:
            segments.forward_pending()
        try:
            protocol.write(json.dumps(answer, default=str) + "\n")
        except TypeError as exc:
            protocol.write(json.dumps({"error": _error(exc), "cpu_s": answer["cpu_s"]}) + "\n")


def _invoke(handler: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The handler's answer, its CPU time and its Duration (AWS's REPORT line: the handler call,
    its wrappers' work included, as a tracer's flush before returning)."""
    cpu_started, started = time.process_time(), time.perf_counter()
    try:
        answer: dict[str, Any] = {"result": handler(request["event"], LambdaContext(request))}
    except Exception as exc:  # noqa: BLE001 - whatever the handler raises is its error, as on AWS
        answer = {"error": _error(exc)}
    answer["duration_ms"] = (time.perf_counter() - started) * 1000
    answer["cpu_s"] = time.process_time() - cpu_started
    return answer


if __name__ == "__main__":
    main()
