"""Analysing posts in batches from the stream: hashtags counted into trends, a small sentiment
score, and flagged posts sent to the moderation workflow. A post with binary junk fails its batch:
the mapping bisects it until the record is alone, then sends it to the on-failure queue."""

import base64
import json
import os
import re
from collections import Counter

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()

TRENDS = boto3.resource("dynamodb").Table(os.environ["TRENDS_TABLE"])
STEP_FUNCTIONS = boto3.client("stepfunctions")
HASHTAG = re.compile(r"#(\w+)")
POSITIVE = {"love", "great", "happy", "win", "awesome", "good", "thanks"}
NEGATIVE = {"hate", "awful", "sad", "lose", "terrible", "bad", "scam"}


def sentiment(text):
    """Positive minus negative words, over the words: -1 .. 1."""
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return 0.0
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return max(-1.0, min(1.0, 4 * score / len(words)))


@tracer.traced.handler
def handler(event, context):
    posts = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    for post in posts:
        if any(ord(c) < 32 for c in post["text"]):
            raise ValueError(f"post {post['id']} holds control characters: cannot analyze it")
    tags = Counter(tag.lower() for post in posts for tag in HASHTAG.findall(post["text"]))
    for tag, count in tags.items():
        TRENDS.update_item(
            ReturnConsumedCapacity="TOTAL",
            Key={"tag": tag},
            UpdateExpression="ADD mentions :n",
            ExpressionAttributeValues={":n": count},
        )
    flagged = 0
    for post in posts:
        score = sentiment(post["text"])
        if score <= -0.5 or "scam" in post["text"].lower():
            flagged += 1
            STEP_FUNCTIONS.start_execution(
                stateMachineArn=os.environ["MODERATION_ARN"], input=json.dumps({**post, "score": score})
            )
    return {"posts": len(posts), "hashtags": len(tags), "flagged": flagged}
