"""The moderation decision — instrumented with the AWS X-Ray SDK, unchanged."""

from aws_xray_sdk.core import xray_recorder


@xray_recorder.capture("decide")
def decide(post):
    xray_recorder.current_subsegment().put_annotation("author", post["author"])
    if "scam" in post["text"].lower():
        return "remove"
    return "review" if post["score"] <= -0.5 else "keep"


def handler(event, context):
    return {"decision": decide(event), "id": event["id"]}
