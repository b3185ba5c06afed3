"""Starts the overdraft workflow for each queued overdraft (an SQS batch)."""

import json
import os

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()

STEP_FUNCTIONS = boto3.client("stepfunctions")


@tracer.traced.handler
def handler(event, context):
    failures = []
    for record in event["Records"]:
        try:
            detail = json.loads(record["body"])
            STEP_FUNCTIONS.start_execution(
                stateMachineArn=os.environ["WORKFLOW_ARN"],
                input=json.dumps({"account": detail["account"], "amount": detail["amount"]}),
            )
        except (ValueError, KeyError):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
