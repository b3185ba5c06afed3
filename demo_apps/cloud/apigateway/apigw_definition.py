"""An API Gateway REST API from an OpenAPI 3 document with ``x-amazon-apigateway-integration``.

Integrations (anything else fails at import, naming the path and method):
- ``aws_proxy``: a Lambda function (``uri`` ending ``function:NAME[:QUALIFIER]/invocations``;
  ``${stageVariables.x}`` is replaced per stage, e.g. ``prod`` -> alias ``prod``);
- ``aws``: a Lambda function without the proxy: the request template's output is the event, the
  function's result (or error) the integration response;
- ``mock``: the request template's ``statusCode`` picks the integration response;
- ``http_proxy``: passthrough to ``uri`` (``{proxy}``-style path parameters substituted);
- ``http``: only mapped parameters are sent, the body through the request template.
AWS's own fields, as its OpenAPI extensions spell them: ``requestParameters`` (``integration.
request.(header|querystring|path).X`` from ``method.request.(header|querystring|path).Y``, a
static ``'value'``, or Fluoro's ``remove``), ``requestTemplates`` by content type with
``passthroughBehavior``, ``responses`` keyed by selection pattern (over the backend's status, or a
Lambda error's message) with ``statusCode``, ``responseTemplates`` and ``responseParameters``
(``method.response.header.X`` from ``integration.response.header.Y``, ``integration.response.
body[.field]`` or ``'value'``), and ``cacheKeyParameters``. Templates are Velocity
(``mapping_templates.py``). Per-method ``x-fluoro-throttle: {rate, burst}`` (AWS keeps this in
the stage's method settings, outside the document) overrides the stage's limit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from airspeed import Template

from demo_apps.cloud.apigateway.mapping_templates import TemplateInvalid, compile_template

METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options")
_FUNCTION_URI = re.compile(r"function:([A-Za-z0-9_${}.-]+?)(?::([A-Za-z0-9_${}.-]+))?/invocations$")
_MAPPING_TARGET = re.compile(r"integration\.request\.(header|querystring|path)\.([\w.-]+)")
_MAPPING_SOURCE = re.compile(r"method\.request\.(header|querystring|path)\.([\w.-]+)")
_RESPONSE_TARGET = re.compile(r"method\.response\.header\.([\w-]+)")
_RESPONSE_SOURCE = re.compile(r"integration\.response\.(header\.[\w-]+|body(\.[\w.\[\]]+)?)")
PASSTHROUGH: Final = ("WHEN_NO_MATCH", "WHEN_NO_TEMPLATES", "NEVER")


class DefinitionError(ValueError):
    """A document the emulator cannot serve; the message names the path and method."""


@dataclass(frozen=True)
class IntegrationResponse:
    """One entry of ``responses``: when it applies, and how the method's response is made."""

    pattern: str  # a regex over the backend's status (a Lambda error's message); "default" for the rest
    status: int
    templates: tuple[tuple[str, Template], ...] = ()  # content type -> Velocity template
    headers: tuple[tuple[str, str], ...] = ()  # (method response header, source)

    def template(self) -> Template | None:
        """The response template: JSON's, else the first (the method response's content type)."""
        found = dict(self.templates)
        return found.get("application/json") or next(iter(found.values()), None)


@dataclass(frozen=True)
class Integration:
    kind: str  # aws_proxy | aws | mock | http_proxy | http
    function: str | None = None
    qualifier: str | None = None
    uri: str | None = None
    http_method: str | None = None
    parameters: tuple[tuple[str, str, str], ...] = ()  # (target kind, target name, source spec)
    templates: tuple[tuple[str, Template], ...] = ()  # requestTemplates: content type -> template
    passthrough: str = "WHEN_NO_MATCH"
    responses: tuple[IntegrationResponse, ...] = ()  # in order, "default" last

    def response_for(self, selector: str) -> IntegrationResponse | None:
        """The integration response whose pattern matches `selector` in full, else the default."""
        for response in self.responses:
            if response.pattern != "default" and re.fullmatch(response.pattern, selector, re.DOTALL):
                return response
        return next((r for r in self.responses if r.pattern == "default"), None)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # an OpenAPI template: /accounts/{id}
    integration: Integration
    throttle: tuple[float, float] | None = None  # (rate per s, burst)
    cache_key: tuple[tuple[str, str], ...] = ()  # cacheKeyParameters: (header|querystring|path, name)
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
    parameters = tuple(
        _mapping(target, str(source), where) for target, source in (raw.get("requestParameters") or {}).items()
    )
    common: dict[str, Any] = {
        "parameters": parameters,
        "templates": _templates(raw.get("requestTemplates"), f"{where} requestTemplates"),
        "passthrough": _passthrough(raw.get("passthroughBehavior"), where),
        "responses": _responses(raw.get("responses") or {}, where),
    }
    if kind in ("aws_proxy", "aws"):
        found = _FUNCTION_URI.search(str(raw.get("uri", "")))
        if not found:
            raise DefinitionError(f"{where}: {kind} uri must end with function:NAME[:QUALIFIER]/invocations")
        return Integration(kind, function=found.group(1), qualifier=found.group(2), **common)
    if kind == "mock":
        return Integration(kind, **common)
    if kind in ("http_proxy", "http"):
        if not raw.get("uri"):
            raise DefinitionError(f"{where}: {kind} needs a uri")
        return Integration(kind, uri=str(raw["uri"]), http_method=str(raw.get("httpMethod", "GET")).upper(), **common)
    kinds = "aws_proxy, aws, mock, http or http_proxy"
    raise DefinitionError(f"{where}: integration type {kind or '(none)'!r} is not {kinds}")


def _templates(raw: Any, where: str) -> tuple[tuple[str, Template], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise DefinitionError(f"{where}: templates must map a content type to a template's text")
    try:
        return tuple((str(kind).lower(), compile_template(text, f"{where} {kind}")) for kind, text in raw.items())
    except TemplateInvalid as exc:
        raise DefinitionError(str(exc)) from None


def _passthrough(raw: Any, where: str) -> str:
    behaviour = str(raw or "WHEN_NO_MATCH").upper()
    if behaviour not in PASSTHROUGH:
        raise DefinitionError(f"{where}: passthroughBehavior {raw!r} is not one of {', '.join(PASSTHROUGH)}")
    return behaviour


def _responses(raw: dict[str, Any], where: str) -> tuple[IntegrationResponse, ...]:
    """``responses`` keyed by selection pattern, the default last."""
    parsed = []
    for pattern, response in raw.items():
        at = f"{where} integration response {pattern!r}"
        try:
            if pattern != "default":
                re.compile(pattern)
            status = int(response["statusCode"])
        except (re.error, KeyError, TypeError, ValueError) as exc:
            raise DefinitionError(f"{at} needs a valid pattern and statusCode") from exc
        headers = tuple(
            _response_header(target, str(source), at)
            for target, source in (response.get("responseParameters") or {}).items()
        )
        templates = _templates(response.get("responseTemplates"), f"{at} responseTemplates")
        parsed.append(IntegrationResponse(str(pattern), status, templates, headers))
    return tuple(sorted(parsed, key=lambda item: item.pattern == "default"))


def _response_header(target: str, source: str, where: str) -> tuple[str, str]:
    found = _RESPONSE_TARGET.fullmatch(target)
    static = len(source) >= 2 and source.startswith("'") and source.endswith("'")
    if not found or not (static or _RESPONSE_SOURCE.fullmatch(source)):
        raise DefinitionError(f"{where}: response parameter mapping {target} = {source} is not supported")
    return found.group(1), source


def _cache_key(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    keys = []
    for parameter in raw or ():
        found = _MAPPING_SOURCE.fullmatch(str(parameter))
        if not found:
            raise DefinitionError(
                f"{where}: cache key parameter {parameter!r} is not method.request.(header|querystring|path).NAME"
            )
        keys.append((found.group(1), found.group(2).lower() if found.group(1) == "header" else found.group(2)))
    return tuple(keys)


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
                    cache_key=_cache_key(raw.get("cacheKeyParameters"), where),
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
