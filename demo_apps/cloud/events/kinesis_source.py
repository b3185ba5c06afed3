"""A Kinesis event source mapping: one reader per shard, batches in order, the shard held on failure.

As AWS runs it: each shard is read from ``TRIM_HORIZON`` or ``LATEST`` in sequence order, up to
``batch_size`` records per invocation. A failing batch holds its shard — nothing after it is
read — and is retried; with ``bisect_on_error`` it is split in two and each half processed in
turn (splitting does not use up retries), so one bad record ends up alone. After
``max_retry_attempts`` retries the batch is skipped and its description (shard, first and last
sequence numbers, not the data) goes to the ``on_failure`` destination. A throttled batch is
retried until it runs. Each invocation's Lambda service span carries the iterator age (how far
the reader is behind the stream's tip) and each record the producer's trace context.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from demo_apps.cloud.events.batch_links import producer_links
from demo_apps.cloud.events.pollers import Pollers
from demo_apps.cloud.events.targets import TargetRouter
from demo_apps.cloud.lambdas.lambda_errors import FunctionError, TooManyRequests
from demo_apps.cloud.lambdas.lambda_service import LambdaService

_logger = logging.getLogger(__name__)
REGION: Final = "us-east-1"


@dataclass(frozen=True)
class KinesisMapping:
    function: str
    stream: str
    batch_size: int = 100
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    max_retry_attempts: int = 2
    bisect_on_error: bool = False
    on_failure: str | None = None  # a destination ARN (SQS queue or function)
    poll_interval_s: float = 0.2  # AWS reads each shard about once a second
    retry_delay_s: float = 0.1

    def check(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"BatchSize {self.batch_size} is outside 1-10000")
        if not -1 <= self.max_retry_attempts <= 10_000:
            raise ValueError(f"MaximumRetryAttempts {self.max_retry_attempts} is outside -1-10000")


def kinesis_record(record: dict[str, Any], shard: str, stream_arn: str) -> dict[str, Any]:
    """A stream record as Lambda's Kinesis event record."""
    arrival = record["ApproximateArrivalTimestamp"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": arrival.timestamp() if isinstance(arrival, datetime) else arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": REGION,
        "eventSourceARN": stream_arn,
    }


class KinesisEventSource:
    """The shard readers of one mapping; `start()` and `stop()`."""

    def __init__(
        self, lambdas: LambdaService, kinesis_client: Any, mapping: KinesisMapping, router: TargetRouter | None = None
    ) -> None:
        mapping.check()
        lambdas.config(mapping.function)  # KeyError for an unknown function, at create time
        if mapping.on_failure is not None:
            if router is None:
                raise ValueError("an on-failure destination needs a target router")
            router.check(mapping.on_failure)
        self.lambdas, self.kinesis, self.mapping, self.router = lambdas, kinesis_client, mapping, router
        description = kinesis_client.describe_stream(StreamName=mapping.stream)["StreamDescription"]
        self.stream_arn = str(description["StreamARN"])
        shards = [str(shard["ShardId"]) for shard in description["Shards"]]
        self._pollers = Pollers()
        for shard in shards:
            self._pollers.add(self._read, f"kinesis-{shard}", shard)
        self._stopping = self._pollers.stopping

    def start(self) -> KinesisEventSource:
        self._pollers.start()
        return self

    def stop(self) -> None:
        self._pollers.stop(join_timeout_s=10)

    def _read(self, shard: str) -> None:
        iterator: str | None = None
        while not self._stopping.is_set():
            try:
                if iterator is None:
                    iterator = self.kinesis.get_shard_iterator(
                        StreamName=self.mapping.stream, ShardId=shard, ShardIteratorType=self.mapping.starting_position
                    )["ShardIterator"]
                answer = self.kinesis.get_records(ShardIterator=iterator, Limit=self.mapping.batch_size)
            except Exception:  # the reader survives a bad moment of the stream
                _logger.exception("Kinesis reader of %s failed; retrying", shard)
                self._stopping.wait(1.0)
                continue
            records = answer.get("Records") or []
            if records:
                self._process(shard, records, answer.get("MillisBehindLatest", 0))
            iterator = answer.get("NextShardIterator")
            if iterator is None:  # the shard is closed
                return
            if not records:
                self._stopping.wait(self.mapping.poll_interval_s)

    def _process(self, shard: str, records: list[dict[str, Any]], behind_ms: int) -> None:
        """Invoke until the batch succeeds, is bisected, or runs out of retries; the shard waits."""
        retries = 0
        while not self._stopping.is_set():
            try:
                self._invoke(shard, records, behind_ms)
                return
            except TooManyRequests:
                self._stopping.wait(self.mapping.retry_delay_s)
                continue
            except FunctionError as exc:
                _logger.info("Kinesis batch of %d on %s failed: %s", len(records), shard, exc)
            if self.mapping.bisect_on_error and len(records) > 1:
                middle = len(records) // 2
                self._process(shard, records[:middle], behind_ms)
                self._process(shard, records[middle:], behind_ms)
                return
            if 0 <= self.mapping.max_retry_attempts <= retries:
                self._give_up(shard, records, retries + 1)
                return
            retries += 1
            self._stopping.wait(self.mapping.retry_delay_s)

    def _invoke(self, shard: str, records: list[dict[str, Any]], behind_ms: int) -> None:
        last = records[-1]["ApproximateArrivalTimestamp"]
        age_ms = (time.time() - last.timestamp()) * 1000 if isinstance(last, datetime) else float(behind_ms)
        event = {"Records": [kinesis_record(r, shard, self.stream_arn) for r in records]}
        self.lambdas.invoke(
            self.mapping.function,
            event,
            span_attributes={
                "messaging.batch.message_count": len(records),
                "aws.lambda.iterator_age_ms": max(0.0, age_ms),
                "aws.kinesis.shard_id": shard,
            },
            links=producer_links(event),
        )

    def _give_up(self, shard: str, records: list[dict[str, Any]], invocations: int) -> None:
        if self.mapping.on_failure is None or self.router is None:
            return
        first, last = records[0], records[-1]
        self.router.deliver(
            self.mapping.on_failure,
            {
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "functionArn": self.lambdas.arn(self.mapping.function),
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": invocations,
                },
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "version": "1.0",
                "timestamp": datetime.now(UTC).isoformat(),
                "KinesisBatchInfo": {
                    "shardId": shard,
                    "startSequenceNumber": first["SequenceNumber"],
                    "endSequenceNumber": last["SequenceNumber"],
                    "approximateArrivalOfFirstRecord": str(first["ApproximateArrivalTimestamp"]),
                    "approximateArrivalOfLastRecord": str(last["ApproximateArrivalTimestamp"]),
                    "batchSize": len(records),
                    "streamArn": self.stream_arn,
                },
            },
        )
