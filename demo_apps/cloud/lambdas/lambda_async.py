"""Asynchronous invocation (InvocationType=Event): Lambda's internal event queue, as AWS runs it.

``submit`` answers at once (202) and the event waits in the queue. A function error is
retried twice (AWS waits about 1 and 2 minutes; here ``retry_delays_s``), a throttle is
retried with growing backoff until the event is older than ``max_event_age_s``. Then the
event goes to the on-failure destination, else the dead-letter queue (SQS); a success goes to
the on-success destination. Destinations are ``sqs:<queue url>`` or ``lambda:<function>``,
and receive AWS's invocation record. The Lambda service's span of each attempt starts when
the event was queued, so the map shows the time it waited.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from demo_apps.cloud.lambdas.lambda_errors import FunctionError, TooManyRequests
from demo_apps.cloud.lambdas.lambda_refs import split_reference
from demo_apps.cloud.lambdas.lambda_service import LambdaService

_logger = logging.getLogger(__name__)
SendToQueue = Callable[[str, str], None]  # (queue url, message body)


@dataclass(frozen=True)
class AsyncSettings:
    workers: int = 4
    retry_delays_s: tuple[float, ...] = (1.0, 2.0)  # AWS: two retries, about 1 and 2 minutes apart
    throttle_backoff_s: float = 0.5
    max_event_age_s: float = 60.0  # AWS: up to 6 hours
    max_queued: int = 10_000


@dataclass
class _Event:
    name: str
    payload: Any
    trace_header: str | None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    queued_ns: int = field(default_factory=time.time_ns)
    queued_at: float = field(default_factory=time.monotonic)
    attempts: int = 0
    throttles: int = 0
    version: str = "$LATEST"  # the version the last attempt ran (an alias's)


class EventQueueFull(RuntimeError):
    """The internal queue is at its bound: the async invoke is refused (429), not buffered."""

    status = 429


class AsyncInvoker:
    """The event queue and its workers for one LambdaService."""

    def __init__(self, service: LambdaService, send: SendToQueue, settings: AsyncSettings = AsyncSettings()) -> None:
        self.service = service
        self.settings = settings
        self._send = send
        self._due: list[tuple[float, int, _Event]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False
        # (condition, function) of the latest finished events: bounded, as the demo runs for hours
        self.delivered: deque[tuple[str, str]] = deque(maxlen=1000)
        self._threads = [
            threading.Thread(target=self._work, name=f"lambda-async-{i}", daemon=True) for i in range(settings.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, name: str, payload: Any, trace_header: str | None = None) -> str:
        """Queue an event for `name` (``name:qualifier`` or an ARN invoke that version or alias;
        KeyError if unknown, as Invoke answers); its request id."""
        self.service.config(name)
        event = _Event(name, payload, trace_header)
        with self._changed:
            if len(self._due) >= self.settings.max_queued:
                raise EventQueueFull(f"the event queue for asynchronous invocations is full ({len(self._due)})")
            self._schedule(event, 0.0)
        return event.request_id

    def _schedule(self, event: _Event, delay_s: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay_s, next(self._order), event))
        self._changed.notify()

    def _next(self) -> _Event | None:
        with self._changed:
            while not self._stopping:
                if self._due and self._due[0][0] <= time.monotonic():
                    return heapq.heappop(self._due)[2]
                timeout = self._due[0][0] - time.monotonic() if self._due else None
                self._changed.wait(timeout)
            return None

    def _work(self) -> None:
        while (event := self._next()) is not None:
            try:
                self._attempt(event)
            except Exception:  # one bad event must not stop the worker
                _logger.exception("asynchronous invocation of %s failed unexpectedly", event.name)

    def _attempt(self, event: _Event) -> None:
        try:
            result, event.version = self.service.invoke_versioned(
                event.name, event.payload, event.trace_header, queued_since_ns=event.queued_ns
            )
        except TooManyRequests:
            event.throttles += 1
            if time.monotonic() - event.queued_at < self.settings.max_event_age_s:
                with self._changed:
                    self._schedule(event, self.settings.throttle_backoff_s * 2 ** min(event.throttles - 1, 6))
                return
            self._finish(event, "EventAgeExceeded", {"errorMessage": "throttled until the event was too old"})
            return
        except FunctionError as exc:
            event.attempts, event.version = event.attempts + 1, exc.version
            if event.attempts <= len(self.settings.retry_delays_s):
                with self._changed:
                    self._schedule(event, self.settings.retry_delays_s[event.attempts - 1])
                return
            self._finish(event, "RetriesExhausted", exc.payload)
            return
        event.attempts += 1
        self._finish(event, "Success", result)

    def _finish(self, event: _Event, condition: str, response: Any) -> None:
        config = self.service.config(event.name)
        record = self._record(event, condition, response)
        target = config.on_success if condition == "Success" else config.on_failure
        if target is not None:
            self._deliver(target, record)
        elif condition != "Success" and config.dead_letter_queue is not None:
            self._send(config.dead_letter_queue, json.dumps(event.payload))  # a DLQ gets the event itself
        self.delivered.append((condition, event.name))

    def _record(self, event: _Event, condition: str, response: Any) -> dict[str, Any]:
        failed = condition != "Success"
        return {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": self.service.arn(f"{split_reference(event.name)[0]}:{event.version}"),
                "condition": condition,
                "approximateInvokeCount": max(1, event.attempts),
            },
            "requestPayload": event.payload,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": event.version,
                **({"functionError": "Unhandled"} if failed else {}),
            },
            "responsePayload": response,
        }

    def _deliver(self, target: str, record: dict[str, Any]) -> None:
        kind, _, where = target.partition(":")
        if kind == "sqs":
            self._send(where, json.dumps(record, default=str))
        elif kind == "lambda":
            self.submit(where, record)
        else:
            _logger.error("unknown destination %r", target)

    def close(self, timeout_s: float = 5.0) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
