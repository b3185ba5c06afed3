"""An API Gateway REST API from an OpenAPI 3 document with ``x-amazon-apigateway-integration``.

Supported integrations (anything else fails at import, naming the path and method):
- ``aws_proxy``: a Lambda function (``uri`` ending ``function:NAME[:QUALIFIER]/invocations``;
  ``${stageVariables.x}`` is replaced per stage, e.g. ``prod`` -> alias ``prod``);
- ``mock``: ``responses.default`` with ``statusCode`` and ``responseTemplates``;
- ``http_proxy``: passthrough to ``uri`` (``{proxy}``-style path parameters substituted);
- ``http``: a non-proxy integration: only mapped parameters are sent, ``responses`` maps the
  backend's status by selection pattern (``"5\\d{2}": {statusCode: 502}``, ``default``), and
  Fluoro's ``x-fluoro-response-transform: xml_to_json`` converts a legacy XML answer.
``requestParameters`` map ``integration.request.(header|querystring|path).X`` from
``method.request.(header|querystring|path).Y`` (a rename when X differs), a static ``'value'``,
or ``remove`` (Fluoro's spelling for dropping a value; http_proxy passes the rest through). Per-method
``x-fluoro-throttle: {rate, burst}`` overrides the stage's limit; ``x-fluoro-cache-key``
lists the query parameters that key the stage cache.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options")
_FUNCTION_URI = re.compile(r"function:([A-Za-z0-9_${}.-]+?)(?::([A-Za-z0-9_${}.-]+))?/invocations$")
_MAPPING_TARGET = re.compile(r"integration\.request\.(header|querystring|path)\.([\w.-]+)")
_MAPPING_SOURCE = re.compile(r"method\.request\.(header|querystring|path)\.([\w.-]+)")


class DefinitionError(ValueError):
    """A document the emulator cannot serve; the message names the path and method."""


@dataclass(frozen=True)
class Integration:
    kind: str  # aws_proxy | mock | http_proxy | http
    function: str | None = None
    qualifier: str | None = None
    uri: str | None = None
    http_method: str | None = None
    status: int = 200
    body: str = ""
    transform: str | None = None
    parameters: tuple[tuple[str, str, str], ...] = ()  # (target kind, target name, source spec)
    # (selectionPattern, statusCode): the backend's status, matched in order; "default" last
    status_map: tuple[tuple[str, int], ...] = ()

    def mapped_status(self, backend_status: int) -> int:
        """The method's status for a backend status (AWS's integration responses); as is if none match."""
        for pattern, status in self.status_map:
            if pattern != "default" and re.fullmatch(pattern, str(backend_status)):
                return status
        default = dict(self.status_map).get("default")
        return default if default is not None else backend_status


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # an OpenAPI template: /accounts/{id}
    integration: Integration
    throttle: tuple[float, float] | None = None  # (rate per s, burst)
    cache_key: tuple[str, ...] = ()
    pattern: re.Pattern[str] = field(default=re.compile(""), compare=False)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.lower() != self.method:
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


@dataclass(frozen=True)
class ApiDefinition:
    name: str
    routes: tuple[Route, ...]

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = ""
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].rstrip("+")
            regex += f"(?P<{name}>.+)" if part.endswith("+}") else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def _integration(raw: dict[str, Any], where: str) -> Integration:
    kind = str(raw.get("type", "")).lower()
    responses = raw.get("responses", {}).get("default", {})
    parameters = tuple(
        _mapping(target, str(source), where) for target, source in raw.get("requestParameters", {}).items()
    )
    if kind == "aws_proxy":
        found = _FUNCTION_URI.search(str(raw.get("uri", "")))
        if not found:
            raise DefinitionError(f"{where}: aws_proxy uri must end with function:NAME[:QUALIFIER]/invocations")
        return Integration(kind, function=found.group(1), qualifier=found.group(2), parameters=parameters)
    if kind == "mock":
        templates = responses.get("responseTemplates", {})
        body = templates.get("application/json", "") if isinstance(templates, dict) else ""
        return Integration(kind, status=int(responses.get("statusCode", 200)), body=str(body))
    if kind in ("http_proxy", "http"):
        if not raw.get("uri"):
            raise DefinitionError(f"{where}: {kind} needs a uri")
        transform = raw.get("x-fluoro-response-transform")
        if transform not in (None, "xml_to_json"):
            raise DefinitionError(f"{where}: unknown response transform {transform!r}")
        return Integration(
            kind,
            uri=str(raw["uri"]),
            http_method=str(raw.get("httpMethod", "GET")).upper(),
            transform=transform,
            parameters=parameters,
            status_map=_status_map(raw.get("responses", {}), where),
        )
    raise DefinitionError(f"{where}: integration type {kind or '(none)'!r} is not aws_proxy, mock, http or http_proxy")


def _status_map(responses: dict[str, Any], where: str) -> tuple[tuple[str, int], ...]:
    """Integration responses keyed by selection pattern (a regex over the backend's status)."""
    mapped = []
    for pattern, response in responses.items():
        try:
            if pattern != "default":
                re.compile(pattern)
            mapped.append((str(pattern), int(response["statusCode"])))
        except (re.error, KeyError, TypeError, ValueError) as exc:
            message = f"{where}: integration response {pattern!r} needs a valid pattern and statusCode"
            raise DefinitionError(message) from exc
    return tuple(sorted(mapped, key=lambda item: item[0] == "default"))


def _mapping(target: str, source: str, where: str) -> tuple[str, str, str]:
    found = _MAPPING_TARGET.fullmatch(target)
    static = source.startswith("'") and source.endswith("'")
    if not found or not (_MAPPING_SOURCE.fullmatch(source) or static or source == "remove"):
        raise DefinitionError(f"{where}: request parameter mapping {target} = {source} is not supported")
    return found.group(1), found.group(2), source


def parse_definition(document: dict[str, Any], name: str | None = None) -> ApiDefinition:
    """The API an OpenAPI 3 document describes; DefinitionError names what is wrong and where."""
    if not str(document.get("openapi", "")).startswith("3"):
        raise DefinitionError("the document is not OpenAPI 3 (no openapi: 3.x)")
    routes = []
    for path, operations in (document.get("paths") or {}).items():
        for method, operation in (operations or {}).items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            raw = (operation or {}).get("x-amazon-apigateway-integration")
            if not isinstance(raw, dict):
                raise DefinitionError(f"{where}: no x-amazon-apigateway-integration")
            throttle = operation.get("x-fluoro-throttle")
            routes.append(
                Route(
                    method=method,
                    path=path,
                    integration=_integration(raw, where),
                    throttle=(float(throttle["rate"]), float(throttle["burst"])) if throttle else None,
                    cache_key=tuple(operation.get("x-fluoro-cache-key", ())),
                    pattern=_pattern(path),
                )
            )
    title = name or str((document.get("info") or {}).get("title") or "api")
    return ApiDefinition(title, tuple(routes))


def load_definition(path: Path) -> ApiDefinition:
    """From a .json or .yaml file."""
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return parse_definition(document)
