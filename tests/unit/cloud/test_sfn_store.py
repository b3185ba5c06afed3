"""The Step Functions store's histories: a stopped execution's ends with its ExecutionAborted."""

from __future__ import annotations

import time

from demo_apps.cloud.stepfunctions.sfn_store import Execution, ExecutionStore

ARN = "arn:aws:states:us-east-1:123456789012:execution:m:e"


def running_execution(store: ExecutionStore) -> None:
    started = Execution(ARN, "arn:m", "e", "RUNNING", "{}", None, None, None, time.time(), None, None, None, None)
    store.create(started)
    store.add_event(ARN, "ExecutionStarted", {})


def test_a_state_event_is_history_while_the_execution_runs() -> None:
    store = ExecutionStore()
    running_execution(store)
    assert store.add_state_event(ARN, "TaskStateEntered", {}) == 2
    assert [kind for _, kind, _, _ in store.events(ARN)] == ["ExecutionStarted", "TaskStateEntered"]


def test_an_interrupted_task_unwinding_after_a_stop_adds_nothing_after_the_abort() -> None:
    store = ExecutionStore()
    running_execution(store)
    store.add_state_event(ARN, "TaskStarted", {})
    assert store.finish(ARN, "ABORTED", None, "Cancelled", "by the customer")
    store.add_event(ARN, "ExecutionAborted", {})
    # the interpreter's thread, woken by the stop, reports its Task failed
    assert store.add_state_event(ARN, "TaskFailed", {"taskFailedEventDetails": {}}) is None
    assert store.add_state_event(ARN, "TaskStateExited", {}) is None
    assert [kind for _, kind, _, _ in store.events(ARN)][-2:] == ["TaskStarted", "ExecutionAborted"]
