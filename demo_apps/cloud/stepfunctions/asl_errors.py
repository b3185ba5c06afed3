"""What a state machine's states fail with, and what runs their Tasks: shared by the interpreter,
a Task's integration patterns and the cloud's integrations."""

from __future__ import annotations

from typing import Any, Protocol


class StatesError(Exception):
    """A named error as Step Functions reports it: `error` (e.g. States.Timeout) and `cause`."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class TaskRunner(Protocol):
    def target(self, resource: str, parameters: Any) -> tuple[str, str]: ...

    def run(self, resource: str, parameters: Any, trace_header: str | None) -> Any: ...
