"""A SAM resource's event sources (S3, SQS, Kinesis, EventBridgeRule) and CloudFront
distributions, deployed into the local cloud (sam_deploy.py deploys the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from demo_apps.cloud.aws_json_api import AwsApiError
from demo_apps.cloud.cdn.cdn import Distribution
from demo_apps.cloud.events.eventbridge import InputTransformer, Target
from demo_apps.cloud.events.kinesis_source import KinesisMapping
from demo_apps.cloud.events.s3_events import Notification
from demo_apps.cloud.events.sqs_source import MAX_POLLERS, START_POLLERS, SqsMapping
from demo_apps.cloud.lambdas.lambda_config import DeployError
from demo_apps.cloud.local_cloud import LocalCloud
from demo_apps.cloud.sam.sam_template import ACCOUNT, Resource


def queue_url(cloud: LocalCloud, arn: str) -> str:
    return f"{cloud.aws.endpoint}/{ACCOUNT}/{arn.rsplit(':', 1)[-1]}"


def event_sources(
    cloud: LocalCloud, resource: Resource, events: Mapping[str, Any], target_arn: str | None = None
) -> None:
    """Every event of a function (or, with `target_arn`, a state machine) but its Api ones."""
    # SAM points every event source of a function with AutoPublishAlias at the alias.
    alias = resource.properties.get("AutoPublishAlias") if target_arn is None else None
    name = f"{resource.physical_name}:{alias}" if alias else resource.physical_name
    arn = target_arn or f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    for event_id, event in events.items():
        kind, spec, where = event.get("Type"), event.get("Properties") or {}, f"{resource.where('Events')}.{event_id}"
        if kind == "Api":
            continue
        if target_arn is not None and kind != "EventBridgeRule":
            raise DeployError(f"{where}: a state machine supports EventBridgeRule events only")
        if kind == "S3":
            cloud.add_s3_notification(_s3_notification(spec, arn, event_id))
        elif kind == "SQS":
            cloud.add_sqs_mapping(_sqs_mapping(cloud, spec, name))
        elif kind == "Kinesis":
            cloud.add_kinesis_mapping(_kinesis_mapping(spec, name))
        elif kind == "EventBridgeRule":
            _eventbridge_rule(cloud, spec, f"{resource.physical_name}-{event_id}", event_id, arn, where)
        else:
            raise DeployError(f"{where}.Type: {kind!r} is not supported (Api, S3, SQS, Kinesis, EventBridgeRule)")


def _s3_notification(spec: Mapping[str, Any], arn: str, event_id: str) -> Notification:
    rules = ((spec.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
    filters = {str(r["Name"]).lower(): str(r["Value"]) for r in rules}
    events_of = spec.get("Events", "s3:ObjectCreated:*")
    return Notification(
        str(spec["Bucket"]),
        arn,
        tuple(events_of) if isinstance(events_of, list) else (str(events_of),),
        filters.get("prefix", ""),
        filters.get("suffix", ""),
        id=event_id,
    )


def _sqs_mapping(cloud: LocalCloud, spec: Mapping[str, Any], function: str) -> SqsMapping:
    most = int((spec.get("ScalingConfig") or {}).get("MaximumConcurrency", MAX_POLLERS))
    if not 2 <= most <= MAX_POLLERS:
        raise DeployError(f"function {function!r}: ScalingConfig.MaximumConcurrency {most} is outside 2-{MAX_POLLERS}")
    return SqsMapping(
        function,
        queue_url(cloud, str(spec["Queue"])),
        batch_size=int(spec.get("BatchSize", 10)),
        batching_window_s=float(spec.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures" in (spec.get("FunctionResponseTypes") or []),
        pollers=min(START_POLLERS, most),
        max_pollers=most,
    )


def _kinesis_mapping(spec: Mapping[str, Any], function: str) -> KinesisMapping:
    on_failure = ((spec.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    return KinesisMapping(
        function,
        str(spec["Stream"]).rsplit("/", 1)[-1],
        batch_size=int(spec.get("BatchSize", 100)),
        starting_position=spec.get("StartingPosition", "TRIM_HORIZON"),
        max_retry_attempts=int(spec.get("MaximumRetryAttempts", -1)),
        bisect_on_error=bool(spec.get("BisectBatchOnFunctionError", False)),
        on_failure=str(on_failure) if on_failure else None,
        parallelization_factor=int(spec.get("ParallelizationFactor", 1)),
        max_record_age_s=int(spec.get("MaximumRecordAgeInSeconds", -1)),
    )


def _eventbridge_rule(
    cloud: LocalCloud, spec: Mapping[str, Any], rule: str, event_id: str, arn: str, where: str
) -> None:
    bus = str(spec.get("EventBusName", "default"))
    transformer = spec.get("InputTransformer")
    shaped = (
        InputTransformer(dict(transformer["InputPathsMap"]), str(transformer["InputTemplate"])) if transformer else None
    )
    try:
        cloud.events.put_rule(rule, spec["Pattern"], bus=bus)
        cloud.events.put_targets(
            rule, [Target(event_id, arn, input_path=spec.get("InputPath"), transformer=shaped)], bus=bus
        )
    except AwsApiError as exc:
        raise DeployError(f"{where}: {exc.message}") from None


def distribution(resource: Resource) -> Distribution:
    """A CloudFront distribution in front of one S3 bucket."""
    config = resource.properties.get("DistributionConfig") or {}
    origins = config.get("Origins") or []
    if len(origins) != 1 or ".s3" not in str(origins[0].get("DomainName", "")):
        raise DeployError(f"{resource.where('DistributionConfig')}.Origins: exactly one S3 bucket origin is supported")
    behaviour = config.get("DefaultCacheBehavior") or {}
    return Distribution(
        str(config.get("Comment") or resource.physical_name),  # the service name on the map
        str(origins[0]["DomainName"]).split(".s3", 1)[0],
        default_ttl_s=float(behaviour.get("DefaultTTL", 86_400)),
        min_ttl_s=float(behaviour.get("MinTTL", 0)),
        max_ttl_s=float(behaviour.get("MaxTTL", 31_536_000)),
    )
