"""An SQS event source mapping: Lambda's pollers reading a queue into batched invocations.

As AWS runs it: pollers long-poll the queue (up to 10 messages a call) and gather a batch until
it holds ``batch_size`` messages or ``batching_window_s`` has passed; the function is invoked
synchronously with the batch. On success every message is deleted — or, with
``ReportBatchItemFailures``, all but the ``batchItemFailures`` the function returned. On a
function error or a throttle nothing is deleted: the messages come back after the queue's
visibility timeout, and the queue's redrive policy moves one to its dead-letter queue after
``maxReceiveCount`` receives. Each record carries the message's ``AWSTraceHeader``, so the
function's span (one per batch) links to every producer.

Pollers scale with the backlog, with AWS's numbers: five at the start ("Lambda starts processing
five batches at a time"), then up to ``scale_step`` more each ``scale_every_s`` (AWS: up to 300
a minute) while the queue holds more than a batch for each poller, up to ``max_pollers`` (AWS's
1,000, or SAM's ``ScalingConfig.MaximumConcurrency``, 2-1,000, the start lowered to it). They
scale down as Lambda's do: a poller beyond the start retires after ``idle_polls_to_retire``
empty polls in a row, or when the function throttles its batch. Each batch's Lambda service span
says how many pollers were reading (``aws.lambda.sqs.pollers``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from demo_apps.cloud.events.batch_links import producer_links
from demo_apps.cloud.events.pollers import Pollers
from demo_apps.cloud.lambdas.lambda_errors import FunctionError, TooManyRequests
from demo_apps.cloud.lambdas.lambda_service import LambdaService

_logger = logging.getLogger(__name__)
REGION: Final = "us-east-1"
MAX_RECEIVE: Final = 10  # SQS returns at most 10 messages per ReceiveMessage
START_POLLERS: Final = 5  # AWS: "Lambda starts processing five batches at a time"
MAX_POLLERS: Final = 1000  # AWS: the most batches a mapping processes at once


@dataclass(frozen=True)
class SqsMapping:
    function: str
    queue_url: str
    batch_size: int = 10
    batching_window_s: float = 0.0
    report_batch_item_failures: bool = False
    pollers: int = START_POLLERS  # at the start, and the fewest there are
    wait_time_s: int = 1  # long polling per ReceiveMessage (AWS's pollers use 20 s)
    max_pollers: int = MAX_POLLERS  # ScalingConfig.MaximumConcurrency (AWS: 2-1000)
    scale_every_s: float = 1.0
    scale_step: int = 5  # pollers added at most each period: AWS's 300 a minute, per second
    idle_polls_to_retire: int = 3

    def check(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"BatchSize {self.batch_size} is outside 1-10000")
        if self.batch_size > MAX_RECEIVE and self.batching_window_s <= 0:
            raise ValueError("a BatchSize over 10 needs a MaximumBatchingWindowInSeconds")
        if not 0 <= self.batching_window_s <= 300:
            raise ValueError(f"MaximumBatchingWindowInSeconds {self.batching_window_s} is outside 0-300")
        if not 1 <= self.pollers <= self.max_pollers <= MAX_POLLERS:
            raise ValueError(
                f"pollers {self.pollers} and MaximumConcurrency {self.max_pollers}: need 1 <= min <= max <= 1000"
            )


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A message as Lambda's SQS event record."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class SqsEventSource:
    """The pollers of one mapping; `start()` and `stop()`."""

    def __init__(self, lambdas: LambdaService, sqs_client: Any, mapping: SqsMapping) -> None:
        mapping.check()
        lambdas.config(mapping.function)  # KeyError for an unknown function, at create time
        self.lambdas, self.sqs, self.mapping = lambdas, sqs_client, mapping
        attributes = sqs_client.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = str(attributes["Attributes"]["QueueArn"])
        self._pollers = Pollers()
        self._lock = threading.Lock()
        self.active = self.peak = 0  # pollers reading now, and the most there were
        self.retired_throttled = 0  # pollers that stopped because the function throttled their batch
        for _ in range(mapping.pollers):
            self._add_poller()
        self._pollers.add(self._scale, f"sqs-scaler-{mapping.function}")
        self._stopping = self._pollers.stopping

    def start(self) -> SqsEventSource:
        self._pollers.start()
        return self

    def stop(self) -> None:
        self._pollers.stop(join_timeout_s=self.mapping.wait_time_s + 10)

    def _add_poller(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            number = self.active
        self._pollers.add(self._poll, f"sqs-poller-{self.mapping.function}-{number}")

    def _scale(self) -> None:
        """Up to `scale_step` more pollers a period while the backlog outgrows those reading."""
        while not self._stopping.wait(self.mapping.scale_every_s):
            try:
                answer = self.sqs.get_queue_attributes(
                    QueueUrl=self.mapping.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
                )
                backlog = int(answer["Attributes"]["ApproximateNumberOfMessages"])
            except Exception:  # noqa: BLE001 - the scaler survives a bad moment of the queue
                continue
            wanted = min(self.mapping.max_pollers, -(-backlog // self.mapping.batch_size))  # a batch each
            for _ in range(min(self.mapping.scale_step, wanted - self.active)):
                self._add_poller()

    def _retire(self) -> bool:
        """Whether this idle poller may stop (there stay at least `pollers`)."""
        with self._lock:
            if self.active <= self.mapping.pollers:
                return False
            self.active -= 1
            return True

    def _poll(self) -> None:
        idle = 0
        while not self._stopping.is_set():
            try:
                batch = self._gather()
                if batch:
                    idle = 0
                    if not self._invoke(batch) and self._retire():
                        self.retired_throttled += 1
                        return  # throttled: Lambda reads with fewer pollers
                else:
                    idle += 1
                    if idle >= self.mapping.idle_polls_to_retire and self._retire():
                        return
            except Exception:  # a poller survives a bad moment of the queue or the function
                _logger.exception("SQS poller for %s failed; retrying", self.mapping.function)
                self._stopping.wait(1.0)

    def _gather(self) -> list[dict[str, Any]]:
        """Messages until the batch is full or the batching window (from the first) has passed;
        none after a long poll that found none."""
        batch: list[dict[str, Any]] = []
        first_at = 0.0
        while len(batch) < self.mapping.batch_size and not self._stopping.is_set():
            messages = (
                self.sqs.receive_message(
                    QueueUrl=self.mapping.queue_url,
                    MaxNumberOfMessages=min(MAX_RECEIVE, self.mapping.batch_size - len(batch)),
                    WaitTimeSeconds=0 if batch else self.mapping.wait_time_s,
                    AttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages")
                or []
            )
            if not messages and not batch:
                return batch  # an empty long poll: the poller counts it idle
            if messages and not batch:
                first_at = time.monotonic()
            batch += messages
            if batch and time.monotonic() - first_at >= self.mapping.batching_window_s:
                break
            if batch and not messages:
                self._stopping.wait(0.05)
        return batch

    def _invoke(self, batch: list[dict[str, Any]]) -> bool:
        """Invoke the function with `batch`; False when it was throttled."""
        event = {"Records": [sqs_record(m, self.queue_arn) for m in batch]}
        try:
            result = self.lambdas.invoke(
                self.mapping.function,
                event,
                span_attributes={"messaging.batch.message_count": len(batch), "aws.lambda.sqs.pollers": self.active},
                links=producer_links(event),
            )
        except (FunctionError, TooManyRequests) as exc:
            # nothing deleted: the messages return after the visibility timeout
            _logger.info("SQS batch of %d for %s failed: %s", len(batch), self.mapping.function, exc)
            return not isinstance(exc, TooManyRequests)
        failed = self._failed_ids(result, batch)
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), MAX_RECEIVE):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=entries)
        return True

    def _failed_ids(self, result: Any, batch: list[dict[str, Any]]) -> set[str]:
        """The messages the function reported as failed; all of them if the report is malformed."""
        if not self.mapping.report_batch_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures")
        if not failures:
            return set()
        ids = {m["MessageId"] for m in batch}
        reported = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
        if not reported <= ids:  # AWS treats an unknown or empty identifier as a failed batch
            return ids
        return {str(i) for i in reported}
