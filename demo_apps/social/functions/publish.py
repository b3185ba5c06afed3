"""Publishing a post: onto the posts stream, keyed by author so each author's posts stay in order."""

import json
import os

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()

KINESIS = boto3.client("kinesis")


@tracer.traced.handler
def handler(event, context):
    try:
        post = json.loads(event.get("body") or "{}")
        author, text = str(post["author"]), str(post["text"])
    except (ValueError, KeyError, TypeError):
        return {"statusCode": 400, "body": json.dumps({"message": "a JSON post with author and text is required"})}
    if not text.strip() or len(text) > 500:
        return {"statusCode": 400, "body": json.dumps({"message": "a post holds 1 to 500 characters"})}
    record = {"author": author, "text": text, "id": context.aws_request_id}
    answer = KINESIS.put_record(
        StreamName=os.environ["POSTS_STREAM"], Data=json.dumps(record).encode(), PartitionKey=author
    )
    return {"statusCode": 201, "body": json.dumps({"id": record["id"], "shard": answer["ShardId"]})}
