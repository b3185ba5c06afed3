"""Running an Amazon States Language definition: states, paths, retries, catches, branches, maps.

Each state's data flows as the language specifies: ``InputPath`` -> ``Parameters`` -> the work ->
``ResultSelector`` -> ``ResultPath`` (onto the state's raw input) -> ``OutputPath``. A failing
Task, Parallel or Map is retried by the first retrier whose ``ErrorEquals`` names its error
(``IntervalSeconds`` x ``BackoffRate`` ^ attempt, up to ``MaxAttempts``), then handed to the
first matching catcher, else it fails the execution. ``States.ALL`` matches every error but
``States.Runtime``; ``States.TaskFailed`` every error but ``States.Timeout``. Parallel branches
and Map iterations run on threads. Every state is a span (a Task's is a client span naming the
resource it calls, and the trace context it passes on), and every step is a history event.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind

from demo_apps.cloud.stepfunctions.asl_choice import evaluate
from demo_apps.cloud.stepfunctions.asl_errors import StatesError, TaskRunner
from demo_apps.cloud.stepfunctions.asl_paths import PathError, fill_template, select, with_result
from demo_apps.cloud.stepfunctions.asl_task import CALLBACK, NestedExecutions, TaskServices, TaskWork
from demo_apps.cloud.stepfunctions.sfn_callbacks import TaskTokens
from demo_apps.cloud.stepfunctions.sfn_progress import BRANCH, TASK, ExecutionProgress
from tracer import semconv

__all__ = ["Interpreter", "RunLimits", "StatesError", "TaskRunner", "matches_error"]


AddEvent = Callable[[str, dict[str, Any]], object]  # (history event type, its details); the result is unused
_SCOPE: contextvars.ContextVar[str] = contextvars.ContextVar("asl_scope", default="")  # the branch being run
IN_FLIGHT_AT_RESTART = (
    "the emulator stopped while this task ran: its outcome is unknown, and a standard workflow does not "
    "start a task twice (a Retry on States.TaskFailed may start it again)"
)


@dataclass(frozen=True)
class _Step:
    """One attempt of a Task, Parallel or Map: the state, its filled input, where it runs."""

    name: str
    state: Mapping[str, Any]
    effective: Any  # the input after InputPath and Parameters
    context: dict[str, Any]
    span: trace_api.Span
    state_input: Any  # the input after InputPath only


@dataclass(frozen=True)
class RunLimits:
    deadline: float | None = None  # monotonic; an express workflow's 5-minute limit
    time_scale: float = 1.0  # multiplies waits and retry intervals (tests run them faster)


def matches_error(names: list[str], error: str) -> bool:
    if error in names:
        return True
    if error == "States.HeartbeatTimeout" and "States.Timeout" in names:  # a kind of timeout, as AWS says
        return True
    if "States.ALL" in names:
        return error != "States.Runtime"
    return "States.TaskFailed" in names and error not in ("States.Timeout", "States.HeartbeatTimeout", "States.Runtime")


class Interpreter:
    """Runs one execution's definition; shared by its branches and iterations."""

    def __init__(
        self,
        runner: TaskRunner,
        tracer: trace_api.Tracer,
        add_event: AddEvent,
        limits: RunLimits = RunLimits(),
        tokens: TaskTokens | None = None,
        nested: NestedExecutions | None = None,
        progress: ExecutionProgress | None = None,
    ) -> None:
        self.runner, self.tracer, self.add_event, self.limits = runner, tracer, add_event, limits
        self._stopped = threading.Event()
        self.tokens = tokens or TaskTokens()
        self._issued: set[str] = set()  # tokens of callbacks waiting now (branches may wait at once)
        self._issued_lock = threading.Lock()
        services = TaskServices(runner, self.tokens, nested)
        self._tasks = TaskWork(services, add_event, limits.time_scale, self._stopped)
        self.progress = progress  # a standard execution's durable records below its top level

    def stop(self) -> None:
        """End the run at its next step; its callbacks' tokens are refused from now on."""
        self._stopped.set()
        with self._issued_lock:
            issued = list(self._issued)
        for token in issued:
            self.tokens.forget(token)

    def run(
        self,
        definition: Mapping[str, Any],
        document: Any,
        context: dict[str, Any],
        start_at: str | None = None,
        scope: str = "",
    ) -> Any:
        """Run from StartAt (or `start_at`) to the end; the output. Raises StatesError. A branch
        or iteration (`scope`) resumes where its progress records say it had got to."""
        name: str | None = start_at or definition["StartAt"]
        resumed = self.progress.position(scope) if scope and self.progress is not None else None
        if resumed is not None:
            name, document = resumed
        states = definition["States"]
        reset = _SCOPE.set(scope)
        try:
            while name is not None:
                self._check_time()
                state = states[name]
                state_context = {**context, "State": {"Name": name, "EnteredTime": _now()}}
                document, following = self._state(name, state, document, state_context)
                if self.progress is not None:
                    self.progress.exited(scope, name, following, document)
                name = following
        finally:
            _SCOPE.reset(reset)
        return document

    def _check_time(self) -> None:
        if self._stopped.is_set():
            raise StatesError("States.Runtime", "the execution was stopped")
        if self.limits.deadline is not None and time.monotonic() > self.limits.deadline:
            raise StatesError("States.Timeout", "the execution ran past its time limit")

    def _sleep(self, seconds: float) -> None:
        scaled = max(0.0, seconds * self.limits.time_scale)
        if self.limits.deadline is not None and time.monotonic() + scaled > self.limits.deadline:
            self._stopped.wait(max(0.0, self.limits.deadline - time.monotonic()))
            self._check_time()
        self._stopped.wait(scaled)
        self._check_time()

    # ------------------------------------------------------------------ one state

    def _state(self, name: str, state: Mapping[str, Any], raw: Any, context: dict[str, Any]) -> tuple[Any, str | None]:
        kind = state["Type"]
        self.add_event(f"{kind}StateEntered", {"stateEnteredEventDetails": {"name": name, "input": _text(raw)}})
        span_kind = SpanKind.CLIENT if kind == "Task" else SpanKind.INTERNAL
        with self.tracer.start_as_current_span(name, kind=span_kind) as span:
            span.set_attributes({semconv.ORIGIN: semconv.ORIGIN_STATE_MACHINE, "aws.stepfunctions.state.type": kind})
            try:
                output, following = self._work(name, state, raw, context, span)
            except StatesError as exc:
                span.set_attributes({semconv.FAULT: True, "aws.stepfunctions.error": exc.error})
                if kind == "Fail":
                    span.set_attribute(semconv.FAULT, False)
                    span.set_attribute(semconv.ERROR, True)
                raise
        self.add_event(f"{kind}StateExited", {"stateExitedEventDetails": {"name": name, "output": _text(output)}})
        return output, following

    def _work(
        self, name: str, state: Mapping[str, Any], raw: Any, context: dict[str, Any], span: trace_api.Span
    ) -> tuple[Any, str | None]:
        kind = state["Type"]
        following = None if state.get("End") else state.get("Next")
        try:
            effective = _input(state, raw)
            if kind == "Choice":
                return _output(state, raw), self._choose(state, effective, context)
            if kind == "Succeed":
                return _output(state, effective), None
            if kind == "Fail":
                raise StatesError(str(state.get("Error", "States.Fail")), str(state.get("Cause", "")))
            if kind == "Wait":
                self._sleep(_wait_seconds(state, effective))
                return _output(state, effective), following
            if kind == "Pass":
                result = state["Result"] if "Result" in state else _parameters(state, effective, context)
                return _finish(state, raw, result, context), following
        except PathError as exc:
            raise StatesError(exc.error, str(exc)) from None
        return self._with_retries(name, state, raw, context, span)

    def _choose(self, state: Mapping[str, Any], effective: Any, context: dict[str, Any]) -> str:
        for rule in state["Choices"]:
            if evaluate(rule, effective, context):
                return str(rule["Next"])
        if "Default" in state:
            return str(state["Default"])
        raise StatesError("States.NoChoiceMatched", "no choice rule matched and there is no Default")

    # ------------------------------------------------------------------ Task, Parallel, Map

    def _with_retries(
        self, name: str, state: Mapping[str, Any], raw: Any, context: dict[str, Any], span: trace_api.Span
    ) -> tuple[Any, str | None]:
        following = None if state.get("End") else state.get("Next")
        attempts: dict[int, int] = {}
        while True:
            token = None
            if state["Type"] == "Task" and str(state["Resource"]).endswith(CALLBACK):  # a token per attempt
                token = self.tokens.issue()
                with self._issued_lock:
                    self._issued.add(token)
                context = {**context, "Task": {"Token": token}}
            try:
                state_input = _input(state, raw)
                effective = _parameters(state, state_input, context)
                result = self._attempt(_Step(name, state, effective, context, span, state_input))
                return _finish(state, raw, result, context), following
            except PathError as exc:
                raise StatesError(exc.error, str(exc)) from None
            except StatesError as exc:
                delay = self._retry_delay(state, exc, attempts)
                if delay is None:
                    return self._catch(state, raw, exc)
                span.add_event("retry", {"error": exc.error, "attempt": sum(attempts.values())})
                self._sleep(delay)
            finally:
                if token is not None:
                    self.tokens.forget(token)  # answered, timed out, or never handed on
                    with self._issued_lock:
                        self._issued.discard(token)

    def _retry_delay(self, state: Mapping[str, Any], exc: StatesError, attempts: dict[int, int]) -> float | None:
        for index, retrier in enumerate(state.get("Retry") or []):
            if not matches_error(retrier["ErrorEquals"], exc.error):
                continue
            done = attempts.get(index, 0)
            if done >= int(retrier.get("MaxAttempts", 3)):
                return None
            attempts[index] = done + 1
            return float(retrier.get("IntervalSeconds", 1)) * float(retrier.get("BackoffRate", 2.0)) ** done
        return None

    def _catch(self, state: Mapping[str, Any], raw: Any, exc: StatesError) -> tuple[Any, str | None]:
        for catcher in state.get("Catch") or []:
            if matches_error(catcher["ErrorEquals"], exc.error):
                caught = {"Error": exc.error, "Cause": exc.cause}
                try:
                    return with_result(raw, catcher.get("ResultPath", "$"), caught), str(catcher["Next"])
                except PathError as path_error:
                    raise StatesError("States.Runtime", str(path_error)) from None
        raise exc

    def _attempt(self, step: _Step) -> Any:
        """One attempt; a standard execution's Task attempt is recorded started, then its result,
        so a restart never starts it twice (sfn_progress.py)."""
        if step.state["Type"] != "Task" or self.progress is None:
            return self._perform(step)
        key = _SCOPE.get() + step.name + TASK
        recorded = self.progress.task(key)
        if recorded is not None and recorded[0] == "succeeded":
            return recorded[1]
        if recorded is not None:
            self.progress.task_forgotten(key)  # a retry may start it again, by the user's Retry
            raise StatesError("States.TaskFailed", IN_FLIGHT_AT_RESTART)
        self.progress.task_started(key)
        try:
            result = self._perform(step)
        except StatesError:
            self.progress.task_forgotten(key)
            raise
        self.progress.task_succeeded(key, result)
        return result

    def _perform(self, step: _Step) -> Any:
        kind = step.state["Type"]
        if kind == "Parallel":
            return self._parallel(step.name, step.state, step.effective, step.context)
        if kind == "Map":
            return self._map(step.name, step.state, step.effective, step.context)
        return self._tasks.perform(step.state, step.effective, step.context, step.span, step.state_input)

    def _parallel(self, name: str, state: Mapping[str, Any], effective: Any, context: dict[str, Any]) -> list[Any]:
        branches = state["Branches"]
        self.add_event("ParallelStateStarted", {})
        outputs = self._fan_out(name, [(branch, effective, context) for branch in branches], len(branches))
        self.add_event("ParallelStateSucceeded", {})
        return outputs

    def _map(self, name: str, state: Mapping[str, Any], effective: Any, context: dict[str, Any]) -> list[Any]:
        items = select(state.get("ItemsPath", "$"), effective, context)
        if not isinstance(items, list):
            raise StatesError("States.Runtime", "the Map state's ItemsPath did not select an array")
        processor = state.get("ItemProcessor", state.get("Iterator"))
        selector = state.get("ItemSelector", state.get("Parameters"))
        self.add_event("MapStateStarted", {"mapStateStartedEventDetails": {"length": len(items)}})
        runs = []
        for index, item in enumerate(items):
            item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
            item_input = fill_template(selector, effective, item_context) if selector is not None else item
            runs.append((processor, item_input, item_context))
        concurrency = int(state.get("MaxConcurrency", 0)) or len(items)
        outputs = self._fan_out(name, runs, concurrency)
        self.add_event("MapStateSucceeded", {})
        return outputs

    def _fan_out(
        self, name: str, runs: list[tuple[Mapping[str, Any], Any, dict[str, Any]]], concurrency: int
    ) -> list[Any]:
        """Each (definition, input, context) on a thread, under the current span; outputs in order.
        A standard execution's branch that had finished before a restart is not run again."""
        if not runs:
            return []
        parent = context_api.get_current()
        scopes = [f"{_SCOPE.get()}{name}{BRANCH}{index}{BRANCH}" for index in range(len(runs))]

        def run(definition: Mapping[str, Any], document: Any, context: dict[str, Any], scope: str) -> Any:
            if self.progress is not None:
                done, output = self.progress.branch_done(scope)
                if done:
                    return output
            token = context_api.attach(parent)
            try:
                output = self.run(definition, document, context, scope=scope)
            finally:
                context_api.detach(token)
            if self.progress is not None:
                self.progress.branch_finished(scope, output)
            return output

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, 40))) as pool:
            futures = [pool.submit(run, *arguments, scope) for arguments, scope in zip(runs, scopes, strict=True)]
            return [future.result() for future in futures]  # the first failure fails the state


def _input(state: Mapping[str, Any], raw: Any) -> Any:
    if "InputPath" in state and state["InputPath"] is None:
        return {}
    return select(state.get("InputPath", "$"), raw)


def _parameters(state: Mapping[str, Any], effective: Any, context: dict[str, Any]) -> Any:
    if "Parameters" in state and state["Type"] != "Map":
        return fill_template(state["Parameters"], effective, context)
    return effective


def _finish(state: Mapping[str, Any], raw: Any, result: Any, context: dict[str, Any]) -> Any:
    if "ResultSelector" in state:
        result = fill_template(state["ResultSelector"], result, context)
    combined = with_result(raw, state.get("ResultPath", "$"), result)
    return _output(state, combined)


def _output(state: Mapping[str, Any], document: Any) -> Any:
    if "OutputPath" in state and state["OutputPath"] is None:
        return {}
    return select(state.get("OutputPath", "$"), document)


def _wait_seconds(state: Mapping[str, Any], effective: Any) -> float:
    if "Seconds" in state:
        return float(state["Seconds"])
    if "SecondsPath" in state:
        value = select(state["SecondsPath"], effective)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise StatesError("States.Runtime", f"SecondsPath selected {value!r}, not a non-negative number")
        return float(value)
    stamp = state.get("Timestamp") or select(state["TimestampPath"], effective)
    try:
        until = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        raise StatesError("States.Runtime", f"{stamp!r} is not an ISO-8601 timestamp") from None
    return max(0.0, (until - datetime.now(UTC)).total_seconds())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(document: Any) -> str:
    return json.dumps(document, default=str)
