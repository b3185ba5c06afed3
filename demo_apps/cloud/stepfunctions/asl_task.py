"""One Task state's work: its service integration pattern, its time limits, its history events.

The patterns Step Functions offers, as its resource's suffix names them:
- request-response (no suffix): the call's answer is the result;
- ``.sync`` / ``.sync:2`` (``states:startExecution``): the nested execution is started and waited
  for; the result is its DescribeExecution answer (``Output`` as JSON text, or with ``:2`` as
  JSON), a failed, timed-out or aborted child a ``States.TaskFailed``; stopping the parent stops it;
- ``.waitForTaskToken``: the call is made with ``$$.Task.Token`` in its parameters, then the task
  waits for SendTaskSuccess/Failure (``sfn_callbacks.py``).
``TimeoutSeconds`` (or ``TimeoutSecondsPath``) bounds the whole task, ``States.Timeout``;
``HeartbeatSeconds`` (or ``…Path``) bounds the silence between heartbeats of a callback,
``States.HeartbeatTimeout``. A request-response call past its timeout is abandoned (a Lambda
invocation runs on, its answer unused, as on AWS).
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final, Protocol

from opentelemetry import trace as trace_api

from demo_apps.cloud.stepfunctions.asl_errors import StatesError, TaskRunner
from demo_apps.cloud.stepfunctions.asl_paths import PathError, select
from demo_apps.cloud.stepfunctions.sfn_callbacks import TaskTokens
from tracer import semconv, xray_header

START_EXECUTION: Final = "arn:aws:states:::states:startExecution"
CALLBACK: Final = ".waitForTaskToken"
# Which patterns each integration offers here (a Lambda ARN as the resource: request-response).
PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "arn:aws:states:::lambda:invoke": ("", CALLBACK),
    "arn:aws:states:::sqs:sendMessage": ("", CALLBACK),
    "arn:aws:states:::dynamodb:putItem": ("",),
    "arn:aws:states:::dynamodb:updateItem": ("",),
    "arn:aws:states:::dynamodb:getItem": ("",),
    START_EXECUTION: ("", ".sync", ".sync:2", CALLBACK),
}
AddEvent = Callable[[str, dict[str, Any]], object]


def split_pattern(resource: str) -> tuple[str, str]:
    """(integration, pattern suffix) of a Task's resource."""
    for suffix in (".sync:2", ".sync", CALLBACK):
        if resource.endswith(suffix):
            return resource[: -len(suffix)], suffix
    return resource, ""


class NestedExecutions(Protocol):
    """What ``states:startExecution`` needs of the service: start, wait, stop."""

    def start_nested(self, parameters: Any, trace_header: str | None) -> dict[str, Any]: ...

    def finished(self, arn: str, deadline: float | None, stopped: threading.Event) -> dict[str, Any]: ...

    def stop_nested(self, arn: str) -> None: ...


@dataclass(frozen=True)
class TaskServices:
    runner: TaskRunner
    tokens: TaskTokens
    nested: NestedExecutions | None = None


def limit_seconds(state: Mapping[str, Any], name: str, effective: Any) -> float | None:
    """``TimeoutSeconds``/``HeartbeatSeconds`` or the positive integer their ``…Path`` selects."""
    if name in state:
        return float(state[name])
    if f"{name}Path" not in state:
        return None
    try:
        value = select(state[f"{name}Path"], effective)
    except PathError as exc:
        raise StatesError("States.Runtime", str(exc)) from None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StatesError("States.Runtime", f"{name}Path selected {value!r}, not a positive integer")
    return float(value)


class TaskWork:
    """Performs Task states for one execution's interpreter."""

    def __init__(self, services: TaskServices, add_event: AddEvent, time_scale: float, stopped: threading.Event):
        self.services, self.add_event, self.time_scale, self.stopped = services, add_event, time_scale, stopped

    def perform(
        self,
        state: Mapping[str, Any],
        effective: Any,
        context: Mapping[str, Any],
        span: trace_api.Span,
        state_input: Any = None,
    ) -> Any:
        """The Task's result from `effective` (its Parameters filled); its ``…Path`` time limits
        are read from `state_input` (after InputPath), as AWS reads them."""
        resource = str(state["Resource"])
        base, pattern = split_pattern(resource)
        target_type, target_name = self.services.runner.target(base, effective)
        span.set_attributes({semconv.TARGET_TYPE: target_type, semconv.TARGET_NAME: target_name})
        if pattern:
            span.set_attribute("aws.stepfunctions.integration_pattern", pattern)
        limits_from = effective if state_input is None else state_input
        timeout_s, heartbeat_s = (limit_seconds(state, n, limits_from) for n in ("TimeoutSeconds", "HeartbeatSeconds"))
        deadline = time.monotonic() + timeout_s * self.time_scale if timeout_s else None
        scheduled = {"resource": resource, "parameters": json.dumps(effective, default=str)}
        self.add_event("TaskScheduled", {"taskScheduledEventDetails": scheduled})
        self.add_event("TaskStarted", {"taskStartedEventDetails": {"resource": resource}})
        header = xray_header(span.get_span_context())
        try:
            result = self._result(base, pattern, effective, context, header, deadline, heartbeat_s)
        except StatesError as exc:
            timed_out = exc.error in ("States.Timeout", "States.HeartbeatTimeout")
            kind, key = (
                ("TaskTimedOut", "taskTimedOutEventDetails") if timed_out else ("TaskFailed", "taskFailedEventDetails")
            )
            self.add_event(kind, {key: {"resource": resource, "error": exc.error, "cause": exc.cause}})
            raise
        self.add_event(
            "TaskSucceeded",
            {"taskSucceededEventDetails": {"resource": resource, "output": json.dumps(result, default=str)}},
        )
        return result

    def _result(
        self,
        base: str,
        pattern: str,
        effective: Any,
        context: Mapping[str, Any],
        header: str,
        deadline: float | None,
        heartbeat_s: float | None,
    ) -> Any:
        if base == START_EXECUTION and pattern != CALLBACK:
            return self._nested(effective, header, pattern, deadline)
        answer = self._call(base, effective, header, deadline)
        if pattern != CALLBACK:
            return answer
        self.add_event(
            "TaskSubmitted",
            {"taskSubmittedEventDetails": {"resource": base, "output": json.dumps(answer, default=str)}},
        )
        token = str(context["Task"]["Token"])
        beat = heartbeat_s * self.time_scale if heartbeat_s else None
        return self.services.tokens.wait(token, deadline, beat, self.stopped)

    def _call(self, resource: str, effective: Any, header: str, deadline: float | None) -> Any:
        """A request-response call, abandoned at the deadline."""
        if deadline is None:
            return self.services.runner.run(resource, effective, header)
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(contextvars.copy_context().run, self.services.runner.run, resource, effective, header)
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise StatesError("States.Timeout", "the task ran past its TimeoutSeconds") from None
        finally:
            pool.shutdown(wait=False)

    def _nested(self, effective: Any, header: str, pattern: str, deadline: float | None) -> Any:
        nested = self.services.nested
        if nested is None:
            raise StatesError("States.Runtime", "this interpreter starts no nested executions")
        started = nested.start_nested(effective, header)
        if not pattern:
            return started
        arn = str(started["ExecutionArn"])
        try:
            described = nested.finished(arn, deadline, self.stopped)
        except StatesError:
            nested.stop_nested(arn)  # a parent timed out or stopped: so is its child, as on AWS
            raise
        answer = _execution_answer(described, parse=pattern == ".sync:2")
        if described["status"] != "SUCCEEDED":
            raise StatesError("States.TaskFailed", json.dumps(answer))
        return answer


def _execution_answer(described: Mapping[str, Any], parse: bool) -> dict[str, Any]:
    """DescribeExecution's answer as a .sync task gives it (``:2``: Input and Output as JSON)."""
    names = {"executionArn": "ExecutionArn", "stateMachineArn": "StateMachineArn", "name": "Name"}
    names.update({"status": "Status", "startDate": "StartDate", "stopDate": "StopDate", "input": "Input"})
    names.update({"output": "Output", "error": "Error", "cause": "Cause"})
    answer = {names[k]: v for k, v in described.items() if k in names}
    if parse:
        for key in ("Input", "Output"):
            if isinstance(answer.get(key), str):
                answer[key] = json.loads(answer[key])
    return answer
