"""A Kinesis event source mapping: one reader per shard, batches in order, the shard held on failure.

As AWS runs it: each shard is read from ``TRIM_HORIZON`` or ``LATEST`` in sequence order, up to
``batch_size`` records per invocation. A failing batch holds its shard — nothing after it is
read — and is retried; with ``bisect_on_error`` it is split in two and each half processed in
turn (splitting does not use up retries), so one bad record ends up alone. After
``max_retry_attempts`` retries the batch is skipped and its description (shard, first and last
sequence numbers, not the data) goes to the ``on_failure`` destination. Retries back off
exponentially (``retry_delay_s`` doubled each time, at most ``MAX_BACKOFF_S``), and a throttled
batch is retried, backing off too, until it runs. Records older than ``max_record_age_s`` are
not invoked (before each try): they go to the destination as ``RecordAgeExceeded``. With a
``parallelization_factor`` of 2-10, a shard's batch is split by partition key hash into that many
batches invoked at once, each key's records in order, and the shard waits for all of them. Each
invocation's Lambda service span carries the iterator age (how far the reader is behind the
stream's tip) and each record the producer's trace context.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
MAX_BACKOFF_S: Final = 30.0


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
    retry_delay_s: float = 0.1  # the first retry's; each next one waits twice as long
    parallelization_factor: int = 1  # concurrent batches per shard (1-10)
    max_record_age_s: int = -1  # -1: records of any age are invoked; else 60-604800

    def check(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"BatchSize {self.batch_size} is outside 1-10000")
        if not -1 <= self.max_retry_attempts <= 10_000:
            raise ValueError(f"MaximumRetryAttempts {self.max_retry_attempts} is outside -1-10000")
        if not 1 <= self.parallelization_factor <= 10:
            raise ValueError(f"ParallelizationFactor {self.parallelization_factor} is outside 1-10")
        if self.max_record_age_s != -1 and not 60 <= self.max_record_age_s <= 604_800:
            raise ValueError(f"MaximumRecordAgeInSeconds {self.max_record_age_s} is neither -1 nor within 60-604800")


def by_partition(records: list[dict[str, Any]], factor: int) -> list[list[dict[str, Any]]]:
    """A batch split into at most `factor` batches by partition key hash, each key's records in
    their order (empty groups left out)."""
    groups: list[list[dict[str, Any]]] = [[] for _ in range(factor)]
    for record in records:
        groups[zlib.crc32(str(record["PartitionKey"]).encode()) % factor].append(record)
    return [group for group in groups if group]


def split_by_age(
    records: list[dict[str, Any]], max_age_s: int, now_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records young enough to invoke, records past `max_age_s`); -1 keeps every record."""
    if max_age_s < 0:
        return records, []
    young: list[dict[str, Any]] = []
    old: list[dict[str, Any]] = []
    for record in records:
        arrival = record["ApproximateArrivalTimestamp"]
        arrived_s = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
        (old if now_s - arrived_s > max_age_s else young).append(record)
    return young, old


def backoff_s(first_s: float, retries: int) -> float:
    """The wait before retry number `retries` + 1: doubling from `first_s`, at most MAX_BACKOFF_S."""
    return float(min(MAX_BACKOFF_S, first_s * 2 ** min(retries, 20)))


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
        self,
        lambdas: LambdaService,
        kinesis_client: Any,
        mapping: KinesisMapping,
        router: TargetRouter | None = None,
        clock: Callable[[], float] = time.time,  # what "now" is for a record's age (tests move it)
    ) -> None:
        self._clock = clock
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
                self._process_shard_batch(shard, records, answer.get("MillisBehindLatest", 0))
            iterator = answer.get("NextShardIterator")
            if iterator is None:  # the shard is closed
                return
            if not records:
                self._stopping.wait(self.mapping.poll_interval_s)

    def _process_shard_batch(self, shard: str, records: list[dict[str, Any]], behind_ms: int) -> None:
        """A batch read from the shard, as `parallelization_factor` batches at once; the shard waits."""
        groups = by_partition(records, self.mapping.parallelization_factor)
        if len(groups) == 1:
            self._process(shard, groups[0], behind_ms)
            return
        with ThreadPoolExecutor(len(groups), thread_name_prefix=f"kinesis-{shard}") as pool:
            for done in [pool.submit(self._process, shard, group, behind_ms) for group in groups]:
                done.result()

    def _process(self, shard: str, records: list[dict[str, Any]], behind_ms: int) -> None:
        """Invoke until the batch succeeds, is bisected, or runs out of retries; the shard waits."""
        retries = throttled = 0
        version = "$LATEST"  # the version that last ran the batch, as its failure record says
        while not self._stopping.is_set():
            records, old = split_by_age(records, self.mapping.max_record_age_s, self._clock())
            if old:
                self._give_up(shard, old, retries, "RecordAgeExceeded", version)
            if not records:
                return
            try:
                self._invoke(shard, records, behind_ms)
                return
            except TooManyRequests:
                self._stopping.wait(backoff_s(self.mapping.retry_delay_s, throttled))
                throttled += 1
                continue
            except FunctionError as exc:
                version = exc.version
                _logger.info("Kinesis batch of %d on %s failed: %s", len(records), shard, exc)
            if self.mapping.bisect_on_error and len(records) > 1:
                middle = len(records) // 2
                self._process(shard, records[:middle], behind_ms)
                self._process(shard, records[middle:], behind_ms)
                return
            if 0 <= self.mapping.max_retry_attempts <= retries:
                self._give_up(shard, records, retries + 1, "RetryAttemptsExhausted", version)
                return
            self._stopping.wait(backoff_s(self.mapping.retry_delay_s, retries))
            retries += 1

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

    def _give_up(
        self, shard: str, records: list[dict[str, Any]], invocations: int, condition: str, version: str
    ) -> None:
        if self.mapping.on_failure is None or self.router is None:
            return
        first, last = records[0], records[-1]
        self.router.deliver(
            self.mapping.on_failure,
            {
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "functionArn": self.lambdas.arn(self.mapping.function),
                    "condition": condition,
                    "approximateInvokeCount": invocations,
                },
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": version,
                    **({"functionError": "Unhandled"} if condition == "RetryAttemptsExhausted" else {}),
                },
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
