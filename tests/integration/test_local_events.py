"""The local cloud's event half on real processes: EventBridge, S3 notifications, SQS and Kinesis
event source mappings and the CDN, each hop's trace followed through an OTLP sink."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_apps.cloud.cdn.cdn import HIT, MISS, Distribution
from demo_apps.cloud.events.eventbridge import InputTransformer, Target
from demo_apps.cloud.events.kinesis_source import KinesisEventSource, KinesisMapping, by_partition
from demo_apps.cloud.events.s3_events import Notification
from demo_apps.cloud.events.sqs_source import SqsMapping
from demo_apps.cloud.lambdas.lambda_async import AsyncSettings
from demo_apps.cloud.lambdas.lambda_config import FunctionConfig
from demo_apps.cloud.lambdas.lambda_service import LambdaSettings
from demo_apps.cloud.local_cloud import CloudSettings, LocalCloud
from demo_apps.otlp_sink import OtlpSink, ReceivedSpan
from tests.waiting import wait_until

# Events cross processes and queues in the local cloud: generous, and polled gently.
EVENT_TIMEOUT_S, EVENT_POLL_S = 30.0, 0.1  # how long an event may take to arrive, how often to look

CODE = Path(__file__).parent / "lambda_code"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


@pytest.fixture(scope="module")
def cloud(sink: OtlpSink) -> Iterator[LocalCloud]:
    settings = CloudSettings(
        lambdas=LambdaSettings(account_limit=50, idle_timeout_s=600, otlp_endpoint=sink.endpoint),
        async_invocation=AsyncSettings(retry_delays_s=(0.2, 0.4)),
    )
    with LocalCloud(settings) as running:
        yield running


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


def deploy(cloud: LocalCloud, records: Path, name: str, handler: str, **settings: Any) -> str:
    config = FunctionConfig(
        name=name,
        handler=f"events.{handler}",
        code_dir=CODE,
        timeout_s=20,
        environment=(("RECORD_DIR", str(records)),),
        **settings,
    )
    return cloud.deploy(config)


def logged(records: Path, name: str) -> list[Any]:
    path = records / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def spans_where(sink: OtlpSink, check: Callable[[ReceivedSpan], bool], count: int = 1) -> list[ReceivedSpan]:
    def enough() -> list[ReceivedSpan]:
        found = [s for s in list(sink.spans) if check(s)]
        return found if len(found) >= count else []

    return wait_until(enough, timeout_s=EVENT_TIMEOUT_S, poll_s=EVENT_POLL_S)


def function_spans(sink: OtlpSink, name: str, count: int = 1) -> list[ReceivedSpan]:
    return spans_where(
        sink,
        lambda s: s.service == name and s.attributes.get("fluoro.origin") == "AWS::Lambda::Function" and s.name == name,
        count,
    )


def producer_span(sink: OtlpSink, target_type: str, trace_id: str) -> ReceivedSpan:
    (span,) = spans_where(
        sink, lambda s: s.trace_id == trace_id and s.attributes.get("fluoro.target.type") == target_type
    )
    return span


@pytest.fixture(scope="module")
def producer(cloud: LocalCloud, records: Path) -> Callable[[dict[str, Any]], str]:
    deploy(cloud, records, "producer", "produce")

    def run(payload: dict[str, Any]) -> str:
        root = "1-" + f"{int(time.time()):08x}-" + f"{time.time_ns() % 16**24:024x}"
        header = f"Root={root};Parent=00000000000000aa;Sampled=1"
        answer = cloud.lambdas.invoke("producer", payload, header)
        assert answer.get("failed", 0) == 0, answer
        return root[2:10] + root[11:]

    return run


def test_put_events_reaches_every_matching_rule_and_nothing_else(
    cloud: LocalCloud, records: Path, sink: OtlpSink, producer: Callable[[dict[str, Any]], str]
) -> None:
    sqs = cloud.client("sqs")
    queue = sqs.create_queue(QueueName="overdrafts")["QueueUrl"]
    notify_arn = deploy(cloud, records, "notify", "record")
    cloud.events.create_event_bus("bank")
    cloud.events.put_rule("any-bank", {"source": [{"prefix": "bank."}]}, bus="bank")
    machine = cloud.stepfunctions.create_state_machine(
        "on-overdraft", {"StartAt": "Take", "States": {"Take": {"Type": "Pass", "End": True}}}
    )
    workflow = Target("workflow", machine, input_path="$.detail")  # the target gets the detail only
    cloud.events.put_targets("any-bank", [Target("notify", notify_arn), workflow], bus="bank")
    cloud.events.put_rule("big", {"detail": {"amount": [{"numeric": [">", 100]}]}}, bus="bank")
    transformer = InputTransformer(
        {"who": "$.detail.account", "amount": "$.detail.amount"}, '{"account": "<who>", "owed": <amount>}'
    )
    cloud.events.put_targets(
        "big", [Target("fees", f"arn:aws:sqs:us-east-1:{ACCOUNT}:overdrafts", transformer=transformer)], bus="bank"
    )
    entry = {"EventBusName": "bank", "Source": "bank.ledger", "DetailType": "Overdraft"}
    trace_id = producer(
        {
            "kind": "events",
            "entries": [
                {**entry, "Detail": json.dumps({"account": "A-1", "amount": 250})},  # both rules
                {**entry, "Source": "shop.orders", "Detail": json.dumps({"amount": 5})},  # neither rule
            ],
        }
    )
    (message,) = wait_until(
        lambda: sqs.receive_message(QueueUrl=queue, MessageSystemAttributeNames=["All"]).get("Messages"),
        timeout_s=EVENT_TIMEOUT_S,
        poll_s=EVENT_POLL_S,
    )
    assert json.loads(message["Body"]) == {"account": "A-1", "owed": 250}  # the input transformer's rendering
    (event,) = wait_until(lambda: logged(records, "notify"), timeout_s=EVENT_TIMEOUT_S, poll_s=EVENT_POLL_S)
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "bank.ledger",
        "Overdraft",
        {"account": "A-1", "amount": 250},
    )
    time.sleep(1.0)
    assert len(logged(records, "notify")) == 1 and cloud.events.delivered.count(("any-bank", notify_arn)) == 1
    assert not sqs.receive_message(QueueUrl=queue).get("Messages")  # the unmatched entry went nowhere
    (execution,) = cloud.stepfunctions.store.list(machine)
    assert cloud.stepfunctions.wait(execution.arn) == "SUCCEEDED"
    assert json.loads(execution.input) == {"account": "A-1", "amount": 250}
    assert execution.trace_header is not None and trace_id[8:] in execution.trace_header
    put = producer_span(sink, "AWS::Events::EventBus", trace_id)
    assert message["Attributes"]["AWSTraceHeader"].split(";")[0] == f"Root=1-{trace_id[:8]}-{trace_id[8:]}"
    (consumer,) = function_spans(sink, "notify")
    assert consumer.trace_id == trace_id  # the asynchronous invocation continues the producer's trace
    assert (put.trace_id, put.span_id) in consumer.links  # and the consumer links to the PutEvents span


def test_bad_rules_and_entries_are_refused(cloud: LocalCloud) -> None:
    events = cloud.client("events")
    with pytest.raises(events.exceptions.InvalidEventPatternException, match=r"\$\.detail\.amount\[0\]"):
        events.put_rule(Name="bad", EventPattern=json.dumps({"detail": {"amount": [{"numeric": ["~", 1]}]}}))
    answer = events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": "not json"}])
    assert answer["FailedEntryCount"] == 1 and answer["Entries"][0]["ErrorCode"] == "MalformedDetail"
    answer = events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": "{}", "EventBusName": "nope"}])
    assert answer["Entries"][0]["ErrorCode"] == "ResourceNotFoundException"
    with pytest.raises(events.exceptions.ClientError, match="1 to 10 entries"):
        events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": "{}"}] * 11)


def test_an_s3_upload_invokes_its_function_once_with_the_object(
    cloud: LocalCloud, records: Path, sink: OtlpSink, producer: Callable[[dict[str, Any]], str]
) -> None:
    cloud.client("s3").create_bucket(Bucket="uploads")
    arn = deploy(cloud, records, "on-upload", "record")
    cloud.add_s3_notification(Notification("uploads", arn, prefix="in/", suffix=".txt"))
    trace_id = producer({"kind": "s3", "bucket": "uploads", "key": "in/a b.txt", "body": "hello world"})
    producer({"kind": "s3", "bucket": "uploads", "key": "out/b.txt", "body": "filtered by prefix"})
    producer({"kind": "s3", "bucket": "uploads", "key": "in/c.png", "body": "filtered by suffix"})
    (event,) = wait_until(lambda: logged(records, "on-upload"), timeout_s=EVENT_TIMEOUT_S, poll_s=EVENT_POLL_S)
    (record,) = event["Records"]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    s3_object = record["s3"]["object"]
    head = cloud.client("s3").head_object(Bucket="uploads", Key="in/a b.txt")
    assert (record["s3"]["bucket"]["name"], s3_object["key"], s3_object["size"]) == ("uploads", "in/a+b.txt", 11)
    assert s3_object["eTag"] == head["ETag"].strip('"')
    time.sleep(1.0)
    assert len(logged(records, "on-upload")) == 1  # once, and not for the filtered keys
    put = producer_span(sink, "AWS::S3::Bucket", trace_id)
    (consumer,) = function_spans(sink, "on-upload")
    assert consumer.trace_id == put.trace_id  # S3 passes the uploader's trace on to the function


def test_an_sqs_batch_deletes_the_good_and_redrives_the_poison(
    cloud: LocalCloud, records: Path, sink: OtlpSink, producer: Callable[[dict[str, Any]], str]
) -> None:
    sqs = cloud.client("sqs")
    dlq = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    # Long enough for a batch's invocation on a loaded machine: a batch still running when its
    # messages turn visible again is delivered twice, as in AWS (the good ones would log twice).
    queue = sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "3", "RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    deploy(cloud, records, "orders", "sqs_batch")
    trace_id = producer({"kind": "sqs", "queue_url": queue, "bodies": ["good-1", "poison-2", "good-3"]})
    cloud.add_sqs_mapping(
        SqsMapping("orders", queue, batch_size=10, batching_window_s=0.5, report_batch_item_failures=True)
    )
    dead = wait_until(lambda: sqs.receive_message(QueueUrl=dlq).get("Messages"), timeout_s=40, poll_s=0.1)
    assert [m["Body"] for m in dead] == ["poison-2"]
    assert sorted(item["body"] for item in logged(records, "orders")) == ["good-1", "good-3"]  # each once
    assert not sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2).get("Messages")  # the good ones deleted
    sends = spans_where(
        sink, lambda s: s.trace_id == trace_id and s.attributes.get("fluoro.target.type") == "AWS::SQS::Queue", 3
    )
    first = min(function_spans(sink, "orders"), key=lambda s: s.start_ns)
    assert first.kind == "CONSUMER" and len(first.links) == 3  # one span for the batch, a link per message
    assert set(first.links) == {(s.trace_id, s.span_id) for s in sends}


def test_a_kinesis_batch_with_a_bad_record_is_bisected_and_the_shard_keeps_its_order(
    cloud: LocalCloud, records: Path, sink: OtlpSink, producer: Callable[[dict[str, Any]], str]
) -> None:
    cloud.client("kinesis").create_stream(StreamName="posts", ShardCount=1)
    sqs = cloud.client("sqs")
    failures = sqs.create_queue(QueueName="posts-failures")["QueueUrl"]
    deploy(cloud, records, "analyze", "kinesis_batch")
    wanted = [{"n": n, "poison": n == 5} for n in range(8)]
    trace_id = producer({"kind": "kinesis", "stream": "posts", "records": wanted})
    mapping = KinesisMapping(
        "analyze",
        "posts",
        batch_size=10,
        bisect_on_error=True,
        max_retry_attempts=1,
        on_failure=f"arn:aws:sqs:us-east-1:{ACCOUNT}:posts-failures",
    )
    cloud.add_kinesis_mapping(mapping)
    (failure,) = wait_until(lambda: sqs.receive_message(QueueUrl=failures).get("Messages"), timeout_s=40, poll_s=0.1)
    info = json.loads(failure["Body"])["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["shardId"] == "shardId-000000000000"
    assert wait_until(lambda: len(logged(records, "analyze")) == 7, timeout_s=EVENT_TIMEOUT_S, poll_s=EVENT_POLL_S)
    assert logged(records, "analyze") == [0, 1, 2, 3, 4, 6, 7]  # every good record once, in order
    attempts = logged(records, "analyze-attempts")
    assert attempts[0] == list(range(8)) and [5] in attempts  # the whole batch, then bisected down to the bad one
    put = producer_span(sink, "AWS::Kinesis::Stream", trace_id)
    consumer = min(function_spans(sink, "analyze"), key=lambda s: s.start_ns)
    assert (put.trace_id, put.span_id) in consumer.links
    services = spans_where(
        sink, lambda s: s.service == "analyze" and s.attributes.get("fluoro.origin") == "AWS::Lambda"
    )
    assert all(s.attributes["aws.lambda.iterator_age_ms"] >= 0 for s in services)


def test_records_past_their_maximum_age_go_to_the_on_failure_destination_uninvoked(
    cloud: LocalCloud, records: Path
) -> None:
    cloud.client("kinesis").create_stream(StreamName="stale", ShardCount=1)
    sqs = cloud.client("sqs")
    failures = sqs.create_queue(QueueName="stale-failures")["QueueUrl"]
    deploy(cloud, records, "stale-reader", "kinesis_batch")
    for n in range(3):
        cloud.client("kinesis").put_record(StreamName="stale", Data=json.dumps({"n": n}).encode(), PartitionKey="k")
    mapping = KinesisMapping(
        "stale-reader",
        "stale",
        max_record_age_s=60,
        on_failure=f"arn:aws:sqs:us-east-1:{ACCOUNT}:stale-failures",
    )
    # the reader's clock two minutes ahead: every record is past its 60 s before the first try
    source = KinesisEventSource(
        cloud.lambdas, cloud.client("kinesis"), mapping, cloud.router, clock=lambda: time.time() + 120
    ).start()
    try:
        (failure,) = wait_until(
            lambda: sqs.receive_message(QueueUrl=failures).get("Messages"), timeout_s=30, poll_s=0.1
        )
        record = json.loads(failure["Body"])
        assert record["requestContext"]["condition"] == "RecordAgeExceeded"
        assert record["requestContext"]["approximateInvokeCount"] == 0 and record["KinesisBatchInfo"]["batchSize"] == 3
        time.sleep(1.0)
        assert logged(records, "stale-reader-attempts") == []  # none was handed to the function
    finally:
        source.stop()


def test_sqs_pollers_grow_with_the_backlog_and_retire_once_it_is_gone(
    cloud: LocalCloud, records: Path, sink: OtlpSink
) -> None:
    sqs = cloud.client("sqs")
    queue = sqs.create_queue(QueueName="backlog")["QueueUrl"]
    deploy(cloud, records, "drain", "slow_batch")
    for start in range(0, 40, 10):
        entries = [{"Id": str(i), "MessageBody": f"job-{i}"} for i in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    mapping = SqsMapping(
        "drain", queue, batch_size=2, pollers=1, max_pollers=4, scale_every_s=0.3, scale_step=1, idle_polls_to_retire=2
    )
    source = cloud.add_sqs_mapping(mapping)
    wait_until(
        lambda: len(logged(records, "drain")) == 40,
        timeout_s=EVENT_TIMEOUT_S,
        poll_s=EVENT_POLL_S,
        describe=lambda: f"{len(logged(records, 'drain'))} of 40 done, {source.active} pollers (at most {source.peak})",
    )
    assert sorted(logged(records, "drain")) == sorted(f"job-{i}" for i in range(40))  # each once
    assert source.peak == 4  # one poller more a period while the backlog outgrew them, up to the maximum
    wait_until(lambda: source.active == 1, timeout_s=20, poll_s=0.2, describe=lambda: f"{source.active} pollers")
    services = spans_where(
        sink, lambda s: s.service == "drain" and s.attributes.get("fluoro.origin") == "AWS::Lambda", 20
    )
    assert max(int(s.attributes["aws.lambda.sqs.pollers"]) for s in services) >= 3  # shown in the trace


def test_sqs_pollers_start_five_grow_five_a_period_and_retire_on_throttles(
    cloud: LocalCloud, records: Path, sink: OtlpSink
) -> None:
    sqs = cloud.client("sqs")
    queue = sqs.create_queue(QueueName="surge", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    deploy(cloud, records, "surge", "slow_batch", reserved_concurrency=6)
    for start in range(0, 100, 10):
        entries = [{"Id": str(i), "MessageBody": f"surge-{i}"} for i in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    source = cloud.add_sqs_mapping(SqsMapping("surge", queue, batch_size=2, max_pollers=20, scale_every_s=0.3))
    wait_until(
        lambda: len(set(logged(records, "surge"))) == 100,
        timeout_s=EVENT_TIMEOUT_S,
        poll_s=EVENT_POLL_S,
        describe=lambda: f"{len(set(logged(records, 'surge')))} of 100, {source.active} pollers (peak {source.peak})",
    )
    assert source.peak >= 10  # five at the start, up to five more a period while 50 batches waited
    assert source.retired_throttled >= 1  # six may run at once: the pollers beyond met throttles and retired
    wait_until(lambda: source.active == 5, timeout_s=20, poll_s=0.2, describe=lambda: f"{source.active} pollers")
    services = spans_where(
        sink, lambda s: s.service == "surge" and s.attributes.get("fluoro.origin") == "AWS::Lambda", 10
    )
    assert min(int(s.attributes["aws.lambda.sqs.pollers"]) for s in services) >= 5  # the start, in the trace
    assert any(s.attributes.get("fluoro.throttle") for s in services)


def test_a_parallelization_factor_invokes_a_shards_keys_at_once_each_in_order(cloud: LocalCloud, records: Path) -> None:
    kinesis = cloud.client("kinesis")
    kinesis.create_stream(StreamName="clicks", ShardCount=1)
    deploy(cloud, records, "count-clicks", "kinesis_batch")
    # two partition keys that the factor of 2 puts in different batches
    first = "user-0"
    second = next(
        k
        for k in (f"user-{i}" for i in range(1, 50))
        if len(by_partition([{"PartitionKey": first}, {"PartitionKey": k}], 2)) == 2
    )
    for n in range(12):
        data = json.dumps({"n": n, "poison": False}).encode()
        kinesis.put_record(StreamName="clicks", Data=data, PartitionKey=first if n % 2 else second)
    cloud.add_kinesis_mapping(KinesisMapping("count-clicks", "clicks", batch_size=100, parallelization_factor=2))
    assert wait_until(
        lambda: len(logged(records, "count-clicks")) == 12, timeout_s=EVENT_TIMEOUT_S, poll_s=EVENT_POLL_S
    )
    attempts = logged(records, "count-clicks-attempts")
    assert all(len({n % 2 for n in batch}) == 1 for batch in attempts)  # each batch holds one key's records
    done = logged(records, "count-clicks")
    for parity in (0, 1):
        mine = [n for n in done if n % 2 == parity]
        assert mine == sorted(mine) and len(mine) == 6  # each key's records once, in order


def test_the_cdn_hits_within_the_ttl_and_misses_after_an_invalidation(cloud: LocalCloud, sink: OtlpSink) -> None:
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="thumbs")
    s3.put_object(Bucket="thumbs", Key="img/a.png", Body=b"PNG-A", CacheControl="max-age=60", ContentType="image/png")
    s3.put_object(Bucket="thumbs", Key="img/live.json", Body=b"{}", CacheControl="no-store")
    cdn, url = cloud.add_cdn(Distribution("thumbs-cdn", "thumbs"))
    with httpx.Client(base_url=url) as client:
        first, second = client.get("/img/a.png"), client.get("/img/a.png")
        assert (first.headers["x-cache"], second.headers["x-cache"]) == (MISS, HIT)
        assert second.content == b"PNG-A" and second.headers["content-type"] == "image/png"
        assert [client.get("/img/live.json").headers["x-cache"] for _ in range(2)] == [MISS, MISS]  # no-store
        assert client.get("/img/missing.png").status_code == 404
        assert client.post("/_invalidations", json={"paths": ["/img/*"]}).json() == {"invalidated": 1}
        assert client.get("/img/a.png").headers["x-cache"] == MISS
        assert client.post("/_invalidations", json={"paths": "nope"}).status_code == 400
    spans = spans_where(sink, lambda s: s.service == "thumbs-cdn" and s.kind == "SERVER", 6)
    assert [s.attributes["aws.cloudfront.cache"] for s in sorted(spans, key=lambda s: s.start_ns)][:2] == [
        "Miss",
        "Hit",
    ]
    fetches = spans_where(sink, lambda s: s.service == "thumbs-cdn" and s.kind == "CLIENT", 5)
    assert all(f.attributes["fluoro.target.name"] == "thumbs" for f in fetches)
    assert cdn.hits == 1
