"""S3 with event notifications: the local cloud's S3 endpoint, in front of moto's.

moto stores the objects; this front passes every request through unchanged and, when an object
was created or removed, sends the event notifications the bucket is configured for — as S3
does, asynchronously, to a function (or queue) ARN, filtered by key prefix and suffix, with
AWS's event record (bucket, key, size, eTag, sequencer). It sits in front rather than hooking
moto because the notification must carry the uploader's trace context (the ``X-Amzn-Trace-Id``
of the PutObject request, which only the HTTP face sees): the invocation then continues the
uploader's trace, as S3's X-Ray propagation does.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote, quote_plus, unquote

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from demo_apps.cloud.events.targets import TargetRouter
from demo_apps.cloud.threaded_server import closing_at_shutdown

_logger = logging.getLogger(__name__)
REGION: Final = "us-east-1"
_HOP_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_AUTH_HEADERS: Final = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})


@dataclass(frozen=True)
class Notification:
    """One NotificationConfiguration entry: where, for which events and keys."""

    bucket: str
    target_arn: str
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    prefix: str = ""
    suffix: str = ""
    id: str = "fluoro-notification"

    def wants(self, event_name: str, key: str) -> bool:
        named = any(fnmatch.fnmatchcase(f"s3:{event_name}", pattern) for pattern in self.events)
        return named and key.startswith(self.prefix) and key.endswith(self.suffix)


def s3_event(notification: Notification, event_name: str, key: str, size: int, etag: str) -> dict[str, Any]:
    """AWS's S3 event notification payload for one object."""
    now = datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:LOCAL"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": notification.id,
                    "bucket": {
                        "name": notification.bucket,
                        "ownerIdentity": {"principalId": "LOCAL"},
                        "arn": f"arn:aws:s3:::{notification.bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag.strip('"'),
                        "sequencer": f"{int(now.timestamp() * 1e6):016X}",
                    },
                },
            }
        ]
    }


def _object_event(method: str, request: Request) -> str | None:
    """The S3 event name an object request produces when it succeeds, if any."""
    params = request.query_params
    if method == "PUT" and "partNumber" not in params and not any(p in params for p in ("tagging", "acl", "retention")):
        return "ObjectCreated:Copy" if "x-amz-copy-source" in request.headers else "ObjectCreated:Put"
    if method == "POST" and "uploadId" in params:
        return "ObjectCreated:CompleteMultipartUpload"
    if method == "DELETE" and "uploadId" not in params:
        return "ObjectRemoved:Delete"
    return None


class S3Events:
    """The notification configuration of every bucket, and the app that serves S3 with it."""

    def __init__(self, moto_endpoint: str, router: TargetRouter) -> None:
        self.moto_endpoint = moto_endpoint.rstrip("/")
        self.router = router
        self._notifications: list[Notification] = []
        self._lock = threading.Lock()

    def add(self, notification: Notification) -> None:
        self.router.check(notification.target_arn)
        with self._lock:
            self._notifications.append(notification)

    def notify(self, bucket: str, key: str, event_name: str, trace_header: str | None, size: int, etag: str) -> None:
        with self._lock:
            wanted = [n for n in self._notifications if n.bucket == bucket and n.wants(event_name, key)]
        for notification in wanted:
            self.router.deliver(
                notification.target_arn, s3_event(notification, event_name, key, size, etag), trace_header
            )

    def app(self) -> Starlette:
        client = httpx.AsyncClient(base_url=self.moto_endpoint, timeout=60.0)

        async def forward(request: Request) -> Response:
            body = await request.body()
            headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS]
            upstream = await client.send(
                client.build_request(
                    request.method, request.url.path, params=request.url.query, headers=headers, content=body
                ),
                stream=True,
            )
            content = b"".join([chunk async for chunk in upstream.aiter_raw()])
            await upstream.aclose()
            if upstream.status_code < 300:
                await self._after(request, upstream.headers)
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
            return Response(content, status_code=upstream.status_code, headers=kept)

        routes = [Route("/{path:path}", forward, methods=["GET", "PUT", "POST", "DELETE", "HEAD"])]
        return Starlette(routes=routes, lifespan=closing_at_shutdown(client))

    async def _after(self, request: Request, headers: httpx.Headers) -> None:
        bucket, _, key = unquote(request.url.path).lstrip("/").partition("/")
        event_name = _object_event(request.method, request) if key else None
        if event_name is None:
            return
        size, etag = 0, headers.get("etag", "")
        if event_name.startswith("ObjectCreated"):
            # the uploader's credentials, as S3 reads the object it just stored on its behalf
            auth = {k: v for k, v in request.headers.items() if k.lower() in _AUTH_HEADERS}
            async with httpx.AsyncClient(base_url=self.moto_endpoint) as client:
                head = await client.head(f"/{bucket}/{quote(key, safe='/')}", headers=auth)
            size, etag = int(head.headers.get("content-length", 0)), head.headers.get("etag", etag)
        try:
            header = request.headers.get("x-amzn-trace-id")
            await run_in_threadpool(self.notify, bucket, key, event_name, header, size, etag)
        except Exception:  # a broken target must not fail the upload that already succeeded
            _logger.exception("S3 notification for %s/%s failed", bucket, key)
