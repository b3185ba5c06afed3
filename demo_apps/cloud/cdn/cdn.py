"""A CloudFront-like edge cache in front of an S3 bucket, on a loopback port.

``GET /{key}`` answers from the edge cache while the object is fresh (``X-Cache: Hit from
cloudfront``, an ``Age`` header), else fetches it from the bucket (``Miss from cloudfront``).
How long a copy stays fresh follows CloudFront's rules: the origin's ``Cache-Control``
``s-maxage`` or ``max-age`` clamped to the distribution's minimum and maximum TTL, the default
TTL when the origin says nothing, not cached at all for ``no-store``, ``no-cache`` or
``private``. ``invalidate`` drops paths by pattern (``/images/*``), as CreateInvalidation
does, also at ``POST /_invalidations`` with ``{"paths": [...]}``. Each request is a span
(origin ``AWS::CloudFront::Distribution``, the cache result on it) and a miss has a client
child for the origin fetch naming the bucket, so the map shows the CDN in front of S3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from demo_apps.cloud.apigateway.response_cache import ResponseCache
from demo_apps.cloud.service_tracers import ServiceTracers
from demo_apps.cloud.threaded_server import closing_at_shutdown
from tracer import extract_from, semconv

HIT: Final = "Hit from cloudfront"
MISS: Final = "Miss from cloudfront"
_PASSED_HEADERS: Final = ("content-type", "etag", "last-modified", "cache-control", "content-encoding")
_NO_CACHE = re.compile(r"\b(no-store|no-cache|private)\b")
_ORIGIN_CREDENTIALS: Final = Credentials("testing", "testing")
_MAX_AGE = re.compile(r"\b(s-maxage|max-age)\s*=\s*(\d+)")


@dataclass(frozen=True)
class Distribution:
    name: str
    bucket: str
    default_ttl_s: float = 86_400.0
    min_ttl_s: float = 0.0
    max_ttl_s: float = 31_536_000.0
    max_entries: int = 10_000


def ttl_s(cache_control: str | None, distribution: Distribution) -> float:
    """How long CloudFront keeps an object, from the origin's Cache-Control."""
    if not cache_control:
        return distribution.default_ttl_s
    directives = cache_control.lower()
    ages = dict(_MAX_AGE.findall(directives))
    if _NO_CACHE.search(directives) and not ages:
        return distribution.min_ttl_s
    age = ages.get("s-maxage", ages.get("max-age"))
    if age is None:
        return distribution.default_ttl_s
    return min(distribution.max_ttl_s, max(distribution.min_ttl_s, float(age)))


def signed_headers(url: str) -> dict[str, str]:
    """SigV4 headers for a GET of `url`: the distribution reads its bucket as an origin access
    control does, with signed requests (the local cloud's fixed test credentials)."""
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(_ORIGIN_CREDENTIALS, "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


class Cdn:
    """One distribution: the cache, the origin client and the app."""

    def __init__(self, distribution: Distribution, s3_endpoint: str, otlp_endpoint: str | None = None) -> None:
        self.distribution = distribution
        self.cache = ResponseCache(distribution.default_ttl_s, distribution.max_entries)
        self._origin = httpx.AsyncClient(base_url=s3_endpoint.rstrip("/"), timeout=30.0)
        self._tracers = ServiceTracers(otlp_endpoint, "demo_apps.cloud.cdn")
        self._tracer = self._tracers.tracer(distribution.name)
        self.hits = self.misses = 0

    def invalidate(self, paths: list[str]) -> int:
        return sum(self.cache.invalidate(path) for path in paths)

    def app(self) -> Starlette:
        async def serve(request: Request) -> Response:
            parent = extract_from(dict(request.headers))
            with self._tracer.start_as_current_span(
                f"GET {request.url.path}", context=parent, kind=SpanKind.SERVER
            ) as span:
                span.set_attributes(
                    {
                        semconv.ORIGIN: semconv.ORIGIN_CLOUDFRONT,
                        semconv.HTTP_REQUEST_METHOD: "GET",
                        semconv.URL_PATH: request.url.path,
                    }
                )
                response = await self._serve(request.url.path, span)
                span.set_attribute("http.response.status_code", response.status_code)
                if response.status_code >= 500:
                    span.set_attribute(semconv.FAULT, True)
                elif response.status_code >= 400:
                    span.set_attribute(semconv.ERROR, True)
                return response

        async def invalidations(request: Request) -> Response:
            document: Any = await request.json()
            paths = document.get("paths") if isinstance(document, dict) else None
            if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
                return JSONResponse({"message": "paths must be a list of paths starting with /"}, status_code=400)
            return JSONResponse({"invalidated": self.invalidate(paths)}, status_code=201)

        return Starlette(
            routes=[
                Route("/_invalidations", invalidations, methods=["POST"]),
                Route("/{key:path}", serve, methods=["GET"]),
            ],
            lifespan=closing_at_shutdown(self._origin),
        )

    async def _serve(self, path: str, span: trace_api.Span) -> Response:
        cached = self.cache.get(path)
        if cached is not None:
            self.hits += 1
            span.set_attribute("aws.cloudfront.cache", "Hit")
            headers = {**cached.headers, "x-cache": HIT, "age": str(int(cached.age_s))}
            return Response(cached.body, status_code=cached.status, headers=headers)
        self.misses += 1
        span.set_attribute("aws.cloudfront.cache", "Miss")
        with self._tracer.start_as_current_span(
            f"S3 GetObject {self.distribution.bucket}", kind=SpanKind.CLIENT
        ) as fetch:
            fetch.set_attributes(
                {semconv.TARGET_TYPE: "AWS::S3::Bucket", semconv.TARGET_NAME: self.distribution.bucket}
            )
            url = f"{self._origin.base_url}/{self.distribution.bucket}{path}"
            upstream = await self._origin.get(url, headers=signed_headers(url))
            fetch.set_attribute("http.response.status_code", upstream.status_code)
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASSED_HEADERS}
        keep_s = ttl_s(upstream.headers.get("cache-control"), self.distribution)
        if upstream.status_code == 200 and keep_s > 0:
            self.cache.put(path, 200, headers, upstream.content, keep_s)
        status = upstream.status_code if upstream.status_code in (200, 403, 404) else 502
        return Response(upstream.content, status_code=status, headers={**headers, "x-cache": MISS})

    def close(self) -> None:
        self._tracers.shutdown()
