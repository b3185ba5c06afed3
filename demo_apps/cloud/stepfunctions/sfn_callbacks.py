"""Task tokens: the callback pattern (``.waitForTaskToken``) and its API, as Step Functions keeps them.

A Task whose resource ends ``.waitForTaskToken`` gets a token in ``$$.Task.Token``, hands it to
whatever it calls (a queue message, a function's payload) and waits until someone answers with
SendTaskSuccess (its output, JSON) or SendTaskFailure (an error and a cause). SendTaskHeartbeat
restarts the heartbeat clock: a Task with ``HeartbeatSeconds`` that hears nothing for that long
fails with ``States.HeartbeatTimeout``, one past ``TimeoutSeconds`` with ``States.Timeout``
(either way a TaskTimedOut event), and an answer that comes after is refused ``TaskTimedOut``,
as AWS refuses it. A token never issued, or already answered, is ``TaskDoesNotExist``; a
stopped execution's token goes with it. Answered and timed-out tokens are remembered (the
latest 10,000) so a late answer gets the right refusal.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from demo_apps.cloud.aws_json_api import AwsApiError
from demo_apps.cloud.stepfunctions.asl_errors import StatesError

REMEMBERED: Final = 10_000
MAX_TOKEN_CHARS: Final = 2048  # AWS's limit on a token's length
MAX_CAUSE_CHARS: Final = 32_768
MAX_OUTPUT_BYTES: Final = 256 * 1024  # AWS: a state's payload


@dataclass
class _Pending:
    heartbeat_at: float  # monotonic: when the task started, or its latest heartbeat
    answered: threading.Event = field(default_factory=threading.Event)
    output: Any = None
    failure: StatesError | None = None


class TaskTokens:
    """The tokens of every waiting callback Task of one Step Functions service."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._finished: OrderedDict[str, str] = OrderedDict()  # token -> "answered" | "timed out"
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(96)
        with self._lock:
            self._pending[token] = _Pending(time.monotonic())
        return token

    def wait(self, token: str, deadline: float | None, heartbeat_s: float | None, stopped: threading.Event) -> Any:
        """The output SendTaskSuccess gave; raises its StatesError, a timeout's, or one for `stopped`."""
        pending = self._pending[token]
        try:
            while not pending.answered.is_set():
                if stopped.is_set():
                    raise StatesError("States.Runtime", "the execution was stopped")
                now = time.monotonic()
                limits = [0.1]  # how often `stopped` is looked at
                if deadline is not None:
                    if now >= deadline:
                        raise self._timed_out(token, "States.Timeout", "the task ran past its TimeoutSeconds")
                    limits.append(deadline - now)
                if heartbeat_s is not None:
                    due = pending.heartbeat_at + heartbeat_s
                    if now >= due:
                        raise self._timed_out(token, "States.HeartbeatTimeout", "no heartbeat within HeartbeatSeconds")
                    limits.append(due - now)
                pending.answered.wait(min(limits))
            if pending.failure is not None:
                raise pending.failure
            return pending.output
        finally:
            self._finish(token, "answered")

    def _timed_out(self, token: str, error: str, cause: str) -> StatesError:
        self._finish(token, "timed out")
        return StatesError(error, cause)

    def _finish(self, token: str, how: str) -> None:
        with self._lock:
            if self._pending.pop(token, None) is not None or how == "timed out":
                self._finished[token] = how
            while len(self._finished) > REMEMBERED:
                self._finished.popitem(last=False)

    def _claim(self, token: Any) -> _Pending:
        """The waiting task of `token`, or AWS's refusal."""
        if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_CHARS:
            raise AwsApiError("InvalidToken", "Invalid token")
        with self._lock:
            pending = self._pending.get(token)
            finished = self._finished.get(token)
        if pending is not None and not pending.answered.is_set():
            return pending
        if finished == "timed out":
            raise AwsApiError("TaskTimedOut", "Task Timed Out")
        raise AwsApiError("TaskDoesNotExist", "Task Does Not Exist")

    def succeed(self, token: Any, output: Any) -> None:
        pending = self._claim(token)
        if not isinstance(output, str) or len(output.encode()) > MAX_OUTPUT_BYTES:
            raise AwsApiError("InvalidOutput", "the output must be JSON text of at most 256 KiB")
        try:
            pending.output = json.loads(output)
        except ValueError:
            raise AwsApiError("InvalidOutput", "Invalid Output: the output is not JSON") from None
        pending.answered.set()

    def fail(self, token: Any, error: Any = None, cause: Any = None) -> None:
        pending = self._claim(token)
        if error is not None and (not isinstance(error, str) or len(error) > 256):
            raise AwsApiError("ValidationException", "error must be a string of at most 256 characters")
        if cause is not None and (not isinstance(cause, str) or len(cause) > MAX_CAUSE_CHARS):
            raise AwsApiError("ValidationException", f"cause must be a string of at most {MAX_CAUSE_CHARS} characters")
        pending.failure = StatesError(error or "", cause or "")
        pending.answered.set()

    def heartbeat(self, token: Any) -> None:
        pending = self._claim(token)
        pending.heartbeat_at = time.monotonic()

    def forget(self, token: str) -> None:
        """A stopped execution's token: answers to it are refused from now on."""
        self._finish(token, "answered")
