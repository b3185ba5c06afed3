"""Step Functions for the local cloud: state machines, executions, histories, two workflow types.

- STANDARD: runs on a worker thread; its history and a checkpoint after every top-level state
  are committed to the durable store (``sfn_store``), so an emulator restarted mid-execution
  resumes every RUNNING execution at the state it had reached, and no finished state runs
  again. ``close()`` leaves running executions RUNNING in the store, exactly as a crash would.
- EXPRESS: in memory only, limited to ``express_limit_s`` (AWS: 5 minutes; past it the
  execution fails with States.Timeout), at-least-once (nothing is checkpointed: a restart
  forgets it, a retried start runs it again). StartSyncExecution waits for the result.

Each execution is a span (origin ``AWS::StepFunctions::StateMachine``, named after the
machine, continuing the caller's trace) with a child per state; Task spans parent the
functions they call. Invalid definitions are refused at create time with the fault's path.

StopExecution aborts a standard execution (ABORTED, an ExecutionAborted event; its waits end, its
callbacks' tokens are refused, a ``.sync`` child is stopped with it). Tasks may wait for a token
(``sfn_callbacks.py``: SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat) or for a nested
execution (``.sync``, ``asl_task.py``). As on AWS, DescribeExecution, GetExecutionHistory and
StopExecution refuse an express execution's ARN (InvalidArn).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.trace import SpanKind

from demo_apps.cloud.aws_json_api import AwsApiError
from demo_apps.cloud.service_tracers import ServiceTracers
from demo_apps.cloud.stepfunctions.asl_definition import InvalidDefinition, check_definition
from demo_apps.cloud.stepfunctions.asl_interpreter import Interpreter, RunLimits, StatesError, TaskRunner
from demo_apps.cloud.stepfunctions.sfn_callbacks import TaskTokens
from demo_apps.cloud.stepfunctions.sfn_store import Execution, ExecutionStore
from tracer import extract_from, semconv

_logger = logging.getLogger(__name__)
_XRAY = AwsXRayPropagator()
REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"
EXPRESS_KEPT: Final = 1000
WorkflowType = Literal["STANDARD", "EXPRESS"]


@dataclass(frozen=True)
class StepFunctionsSettings:
    store_path: Path | None = None  # the durable store of standard workflows (None: in memory)
    otlp_endpoint: str | None = None
    express_limit_s: float = 300.0
    time_scale: float = 1.0  # multiplies Wait states and retry intervals
    workers: int = 32


@dataclass(frozen=True)
class _Machine:
    arn: str
    name: str
    definition: Mapping[str, Any]
    kind: str


class StepFunctions:
    """Machines by name; executions on worker threads."""

    def __init__(self, runner: TaskRunner, settings: StepFunctionsSettings = StepFunctionsSettings()) -> None:
        self.runner, self.settings = runner, settings
        self.store = ExecutionStore(settings.store_path)
        self._express = ExecutionStore(None)
        self._machines: dict[str, _Machine] = {}
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="sfn")
        self._running: dict[str, tuple[Interpreter, Future[None]]] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._tracers = ServiceTracers(settings.otlp_endpoint, "demo_apps.cloud.stepfunctions")
        self.tokens = TaskTokens()  # every waiting callback Task's (SendTaskSuccess and its kin)
        for arn, name, definition, kind in self.store.machines():
            self._machines[name] = _Machine(arn, name, json.loads(definition), kind)

    # ------------------------------------------------------------------ machines

    def create_state_machine(self, name: str, definition: str | Mapping[str, Any], kind: str = "STANDARD") -> str:
        try:
            document = json.loads(definition) if isinstance(definition, str) else definition
        except ValueError as exc:
            raise AwsApiError("InvalidDefinition", f"/: the definition is not JSON: {exc}") from None
        try:
            check_definition(document)
        except InvalidDefinition as exc:
            raise AwsApiError("InvalidDefinition", str(exc)) from None
        if kind not in ("STANDARD", "EXPRESS"):
            raise AwsApiError("ValidationException", f"type {kind!r} is neither STANDARD nor EXPRESS")
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        with self._lock:
            self._machines[name] = _Machine(arn, name, document, kind)
        if kind == "STANDARD":
            self.store.put_machine(arn, name, json.dumps(document), kind)
        return arn

    def _machine(self, name_or_arn: str) -> _Machine:
        name = name_or_arn.rsplit(":", 1)[-1]
        try:
            return self._machines[name]
        except KeyError:
            raise AwsApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{name_or_arn}'") from None

    # ------------------------------------------------------------------ executions

    def start_execution(
        self, machine: str, payload: Any = None, *, name: str | None = None, trace_header: str | None = None
    ) -> str:
        """Start an execution; its ARN. `payload` is the input (a JSON text or a value)."""
        found = self._machine(machine)
        text = payload if isinstance(payload, str) else json.dumps({} if payload is None else payload)
        try:
            json.loads(text)
        except ValueError:
            raise AwsApiError("InvalidExecutionInput", "the input is not JSON") from None
        name = name or str(uuid.uuid4())
        if found.kind == "EXPRESS":
            arn = f"arn:aws:states:{REGION}:{ACCOUNT}:express:{found.name}:{name}:{uuid.uuid4()}"
        else:
            arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{found.name}:{name}"
            if self.store.get(arn) is not None:
                raise AwsApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
        store = self._store(found)
        start = found.definition["StartAt"]
        store.create(
            Execution(
                arn, found.arn, name, "RUNNING", text, None, None, None, time.time(), None, trace_header, start, text
            )
        )
        store.add_event(arn, "ExecutionStarted", {"executionStartedEventDetails": {"input": text}})
        self._launch(found, store.get(arn))  # type: ignore[arg-type]
        if found.kind == "EXPRESS":
            self._express.prune(EXPRESS_KEPT)
        return arn

    def start_sync_execution(
        self, machine: str, payload: Any = None, *, trace_header: str | None = None
    ) -> dict[str, Any]:
        """An express execution, waited for; DescribeExecution's answer."""
        if self._machine(machine).kind != "EXPRESS":
            raise AwsApiError("StateMachineTypeNotSupported", "StartSyncExecution runs express workflows only")
        arn = self.start_execution(machine, payload, trace_header=trace_header)
        self.wait(arn, self.settings.express_limit_s + 10)
        return self._described(self._find(arn)[1])

    def resume(self) -> int:
        """Go on with every standard execution the store has RUNNING (after a restart); how many."""
        pending = [e for e in self.store.running() if e.arn not in self._running]
        for execution in pending:
            machine = self._machine(execution.machine_arn)
            self.store.add_event(execution.arn, "ExecutionResumed", {"state": execution.next_state})
            self._launch(machine, execution)
        return len(pending)

    def _store(self, machine: _Machine) -> ExecutionStore:
        return self._express if machine.kind == "EXPRESS" else self.store

    def _launch(self, machine: _Machine, execution: Execution) -> None:
        store = self._store(machine)
        limit = self.settings.express_limit_s if machine.kind == "EXPRESS" else None
        limits = RunLimits(time.monotonic() + limit if limit else None, self.settings.time_scale)
        interpreter = Interpreter(
            self.runner,
            self._tracers.tracer(machine.name),
            lambda kind, details: store.add_state_event(execution.arn, kind, details),
            limits,
            tokens=self.tokens,
            nested=self,
            progress=store.progress(execution.arn) if machine.kind == "STANDARD" else None,
        )
        with self._lock:
            future = self._pool.submit(self._run, machine, execution, interpreter, store)
            self._running[execution.arn] = (interpreter, future)

    def _run(self, machine: _Machine, execution: Execution, interpreter: Interpreter, store: ExecutionStore) -> None:
        context = {
            "Execution": {"Id": execution.arn, "Name": execution.name, "Input": json.loads(execution.input)},
            "StateMachine": {"Id": machine.arn, "Name": machine.name},
        }
        parent = extract_from({semconv.XRAY_HEADER: execution.trace_header}, _XRAY) if execution.trace_header else None
        tracer = self._tracers.tracer(machine.name)
        try:
            with tracer.start_as_current_span(machine.name, context=parent, kind=SpanKind.SERVER) as span:
                span.set_attributes(
                    {
                        semconv.ORIGIN: semconv.ORIGIN_STATE_MACHINE,
                        semconv.CLOUD_RESOURCE_ID: machine.arn,
                        "aws.stepfunctions.execution_arn": execution.arn,
                        "aws.stepfunctions.workflow_type": machine.kind,
                    }
                )
                try:
                    output = interpreter.run(
                        machine.definition,
                        json.loads(execution.next_input or execution.input),
                        context,
                        start_at=execution.next_state,
                    )
                except StatesError as exc:
                    if self._closing:
                        return  # an emulator going down: the execution stays RUNNING, to resume
                    span.set_attributes({semconv.FAULT: True, "aws.stepfunctions.error": exc.error})
                    self._fail(store, execution.arn, exc)
                    return
            if store.finish(execution.arn, "SUCCEEDED", output):  # unless a StopExecution came first
                details = {"executionSucceededEventDetails": {"output": json.dumps(output)}}
                store.add_event(execution.arn, "ExecutionSucceeded", details)
        except Exception as exc:  # a bug must fail the execution, not leave it RUNNING forever
            _logger.exception("execution %s failed unexpectedly", execution.arn)
            self._fail(store, execution.arn, StatesError("States.Runtime", str(exc)))
        finally:
            with self._lock:
                self._running.pop(execution.arn, None)

    @staticmethod
    def _fail(store: ExecutionStore, arn: str, exc: StatesError) -> None:
        timed_out = exc.error == "States.Timeout" and "time limit" in exc.cause
        kind, status = ("ExecutionTimedOut", "TIMED_OUT") if timed_out else ("ExecutionFailed", "FAILED")
        if store.finish(arn, status, None, exc.error, exc.cause):  # unless a StopExecution came first
            store.add_event(arn, kind, {"executionFailedEventDetails": {"error": exc.error, "cause": exc.cause}})

    # ------------------------------------------------------------------ reading

    def _find(self, arn: str) -> tuple[ExecutionStore, Execution]:
        for store in (self.store, self._express):
            found = store.get(arn)
            if found is not None:
                return store, found
        raise AwsApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")

    def standard(self, arn: str) -> Execution:
        """A standard execution: AWS's API answers DescribeExecution, GetExecutionHistory and
        StopExecution for these only (an express one is found in CloudWatch Logs there; this
        emulator's own methods, its logs, describe both)."""
        store, execution = self._find(arn)
        if store is self._express:
            raise AwsApiError("InvalidArn", "Invalid Arn: 'Resource type not valid in this context: express'")
        return execution

    def started_at(self, arn: str) -> float:
        """When any execution, standard or express, started (StartExecution's answer)."""
        return self._find(arn)[1].started

    def describe_execution(self, arn: str) -> dict[str, Any]:
        return self._described(self._find(arn)[1])

    def _described(self, execution: Execution) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "executionArn": execution.arn,
            "stateMachineArn": execution.machine_arn,
            "name": execution.name,
            "status": execution.status,
            "startDate": execution.started,
            "input": execution.input,
        }
        optional = {
            "stopDate": execution.stopped,
            "output": execution.output,
            "error": execution.error,
            "cause": execution.cause,
        }
        answer.update({k: v for k, v in optional.items() if v is not None})
        return answer

    def get_execution_history(self, arn: str) -> dict[str, Any]:
        store, _ = self._find(arn)
        events = []
        for number, kind, stamp, details in store.events(arn):
            events.append({"id": number, "previousEventId": number - 1, "timestamp": stamp, "type": kind, **details})
        return {"events": events}

    def executions(self, machine_arn: str) -> list[Execution]:
        """The machine's executions, newest first (express ones while they are remembered)."""
        found = self.store.list(machine_arn) + self._express.list(machine_arn)
        return sorted(found, key=lambda e: -e.started)

    def stop_execution(self, arn: str, error: str | None = None, cause: str | None = None) -> float:
        """StopExecution: a running standard execution ABORTED (its waits end, a callback's token is
        refused from now on, a .sync child stopped too); its stop date."""
        execution = self.standard(arn)
        if self.store.finish(arn, "ABORTED", None, error, cause):
            details = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
            self.store.add_event(arn, "ExecutionAborted", {"executionAbortedEventDetails": details})
            with self._lock:
                running = self._running.get(arn)
            if running is not None:
                running[0].stop()
        return float(self._find(arn)[1].stopped or execution.started)

    # ------------------------------------------------------------------ nested executions

    def start_nested(self, parameters: Any, trace_header: str | None) -> dict[str, Any]:
        """``states:startExecution``: a child execution of ``StateMachineArn`` (``Input``, ``Name``)."""
        if not isinstance(parameters, dict) or not isinstance(parameters.get("StateMachineArn"), str):
            raise StatesError("States.Runtime", "states:startExecution needs Parameters with a StateMachineArn")
        given = parameters.get("Input", {})
        try:
            arn = self.start_execution(
                parameters["StateMachineArn"], given, name=parameters.get("Name"), trace_header=trace_header
            )
        except AwsApiError as exc:
            raise StatesError(f"StepFunctions.{exc.code}Exception", exc.message) from None
        return {"ExecutionArn": arn, "StartDate": self.started_at(arn)}

    def finished(self, arn: str, deadline: float | None, stopped: threading.Event) -> dict[str, Any]:
        """The child's DescribeExecution answer once it stops; StatesError at the deadline or a stop."""
        while (execution := self._find(arn)[1]).status == "RUNNING":
            if stopped.is_set():
                raise StatesError("States.Runtime", "the execution was stopped")
            if deadline is not None and time.monotonic() >= deadline:
                raise StatesError("States.Timeout", "the task ran past its TimeoutSeconds")
            stopped.wait(0.05)
        return self._described(execution)

    def stop_nested(self, arn: str) -> None:
        with contextlib.suppress(AwsApiError):  # an express child cannot be stopped, as on AWS
            self.stop_execution(arn, "States.Aborted", "the parent execution stopped")

    def wait(self, arn: str, timeout_s: float = 30.0) -> str:
        """Block until the execution stops (or the timeout); its status."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self._find(arn)[1].status
            if status != "RUNNING":
                return status
            time.sleep(0.05)
        return "RUNNING"

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop: running standard executions stay RUNNING in the store, as after a crash."""
        self._closing = True
        with self._lock:
            running = list(self._running.values())
        for interpreter, _ in running:
            interpreter.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._tracers.shutdown()
        self.store.close()
        self._express.close()
