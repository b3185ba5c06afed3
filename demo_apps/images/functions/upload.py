"""The upload endpoint: an image (base64 in a JSON body) into the uploads bucket."""

import base64
import binascii
import json
import os
import re

import boto3

import tracer

tracer.configure()
tracer.instrument_aws()

S3 = boto3.client("s3")
NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


@tracer.traced.handler
def handler(event, context):
    name = (event.get("pathParameters") or {}).get("name", "")
    try:
        data = base64.b64decode(json.loads(event.get("body") or "{}")["data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        data = b""
    if not NAME.fullmatch(name) or not data:
        return {"statusCode": 400, "body": json.dumps({"message": "a name and base64 image data are required"})}
    tracer.annotate("image", name)
    S3.put_object(Bucket=os.environ["UPLOADS_BUCKET"], Key=f"incoming/{name}", Body=data)
    return {"statusCode": 202, "body": json.dumps({"accepted": name, "bytes": len(data)})}
