"""Thumbnails in three sizes for each uploaded image (Pillow, working in /tmp), their metadata
in DynamoDB. A corrupt upload raises: Lambda retries it twice, then it lands in the DLQ."""

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
from PIL import Image

import tracer

tracer.configure()
tracer.instrument_aws()

S3 = boto3.client("s3")
METADATA = boto3.resource("dynamodb").Table(os.environ["METADATA_TABLE"])
SIZES = {"small": 64, "medium": 160, "large": 320}


@tracer.traced.handler
def handler(event, context):
    made = []
    for record in event["Records"]:
        bucket, key = record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])
        made.append(_thumbnails(bucket, key))
    return {"thumbnails": made}


def _thumbnails(bucket, key):
    name = key.rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory() as work:  # the environment's own /tmp (TMPDIR)
        original = Path(work) / name
        # get_object/put_object rather than the transfer manager, whose threads lose the trace
        original.write_bytes(S3.get_object(Bucket=bucket, Key=key)["Body"].read())
        width, height, outputs = resize(original, Path(work), name)
        return _publish(name, width, height, outputs)


@tracer.traced
def resize(original, work, name):
    """The three thumbnails, as JPEG files in `work` (raises on a corrupt image)."""
    tracer.annotate("image", name)
    with Image.open(original) as image:
        image.load()
        outputs = {}
        for size, pixels in SIZES.items():
            copy = image.convert("RGB")
            copy.thumbnail((pixels, pixels))
            path = work / f"{size}-{name}.jpg"
            copy.save(path, "JPEG", quality=80)
            outputs[size] = path
        return image.size[0], image.size[1], outputs


def _publish(name, width, height, outputs):
    keys = {}
    for size, path in outputs.items():
        key = f"{size}/{name}.jpg"
        S3.put_object(
            Bucket=os.environ["THUMBNAILS_BUCKET"],
            Key=key,
            Body=path.read_bytes(),
            ContentType="image/jpeg",
            CacheControl="max-age=30",
        )
        keys[size] = key
    METADATA.put_item(ReturnConsumedCapacity="TOTAL", Item={"image": name, "width": width, "height": height, **keys})
    return keys
