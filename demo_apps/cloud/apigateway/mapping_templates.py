"""API Gateway's mapping templates: Velocity (VTL), with the variables AWS gives them.

Rendered by airspeed-ext (a Python Velocity engine made for AWS's templates, Java's string
methods included), compiled once when the API is imported. What a template sees, as AWS's
"mapping template and access logging variable reference" lists it:

- ``$input``: ``.body`` (the payload as text), ``.json(path)`` (a JSONPath of the payload, as
  JSON text), ``.path(path)`` (the same as an object: ``.size()``, ``.get(...)``, ``#foreach``),
  ``.params()`` (``path``, ``querystring`` and ``header`` maps) and ``.params(name)`` (the
  first of those holding ``name``). In a response template the payload is the integration's.
- ``$util``: ``escapeJavaScript``, ``parseJson``, ``urlEncode``, ``urlDecode``,
  ``base64Encode``, ``base64Decode``.
- ``$context``: the request's ids, stage, resource path, method, time, caller identity; a response
  template may set ``$context.responseOverride.status`` and ``.header.NAME``.
- ``$stageVariables``: the stage's variables.

A payload that is not JSON where a template reads it as JSON is the caller's error (400, as AWS
answers "Could not parse request body into json"); any other failure is the API's (500).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import airspeed
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.parser import parse as parse_path


class TemplateInvalid(ValueError):
    """A template that does not compile: the API cannot be imported."""


class PayloadNotJson(ValueError):
    """The template read the payload as JSON and it is not: the caller's error."""


def compile_template(text: str, where: str) -> airspeed.Template:
    template = airspeed.Template(text)
    try:
        template.ensure_compiled()
    except airspeed.TemplateSyntaxError as exc:
        raise TemplateInvalid(f"{where}: the mapping template does not compile: {exc}") from None
    return template


class Input:
    """``$input``: the payload and the request's parameters."""

    def __init__(self, body: str, parameters: dict[str, dict[str, str]]) -> None:
        self.body = body
        self._parameters = parameters
        self._parsed: Any = None
        self._was_parsed = False

    def _document(self) -> Any:
        if not self._was_parsed:
            try:
                self._parsed = json.loads(self.body) if self.body.strip() else {}
            except (ValueError, RecursionError) as exc:  # a body nested past the parser's depth too
                raise PayloadNotJson(f"Could not parse request body into json: {exc}") from None
            self._was_parsed = True
        return self._parsed

    def path(self, expression: str) -> Any:
        try:
            found = [match.value for match in parse_path(expression).find(self._document())]
        except (JSONPathError, ValueError, TypeError, AttributeError) as exc:
            if isinstance(exc, PayloadNotJson):
                raise
            raise ValueError(f"invalid JSONPath {expression!r}: {exc}") from None
        if not found:
            return None
        return found[0] if len(found) == 1 else found

    def json(self, expression: str) -> str:
        return json.dumps(self.path(expression))

    def params(self, name: str | None = None) -> Any:
        if name is None:
            return self._parameters
        for kind in ("path", "querystring", "header"):
            value = self._parameters.get(kind, {}).get(name.lower() if kind == "header" else name)
            if value is not None:
                return value
        return None


def escape_javascript(text: str) -> str:
    """Java's StringEscapeUtils.escapeJavaScript, as API Gateway's ``$util.escapeJavaScript``."""
    named = {'"': '\\"', "'": "\\'", "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
    named["\t"] = "\\t"
    out = []
    for char in str(text):
        if char in named:
            out.append(named[char])
        elif ord(char) < 32 or ord(char) > 126:
            out.extend(f"\\u{unit:04X}" for unit in _utf16_units(char))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    encoded = char.encode("utf-16-be")
    return [int.from_bytes(encoded[i : i + 2], "big") for i in range(0, len(encoded), 2)]


class Util:
    """``$util``."""

    def escapeJavaScript(self, text: Any) -> str:
        return escape_javascript(str(text))

    def parseJson(self, text: Any) -> Any:
        try:
            return json.loads(str(text))
        except (ValueError, RecursionError) as exc:
            raise PayloadNotJson(f"Could not parse json: {exc}") from None

    def urlEncode(self, text: Any) -> str:
        return urllib.parse.quote_plus(str(text))

    def urlDecode(self, text: Any) -> str:
        return urllib.parse.unquote_plus(str(text))

    def base64Encode(self, text: Any) -> str:
        return base64.b64encode(str(text).encode()).decode()

    def base64Decode(self, text: Any) -> str:
        return base64.b64decode(str(text)).decode("utf-8", "replace")


@dataclass
class RequestValues:
    """What one request's templates see (shared by its request and response templates)."""

    parameters: dict[str, dict[str, str]]
    context: dict[str, Any]
    stage_variables: dict[str, str] = field(default_factory=dict)

    def override(self) -> dict[str, Any]:
        """What a response template set in ``$context.responseOverride``."""
        found: dict[str, Any] = self.context["responseOverride"]
        return found


def request_context(
    request_id: str, stage: str, resource_path: str, http_method: str, api_id: str, source_ip: str, user_agent: str
) -> dict[str, Any]:
    """``$context`` of one request, AWS's names."""
    now = time.time()
    return {
        "requestId": request_id,
        "extendedRequestId": request_id,
        "stage": stage,
        "resourcePath": resource_path,
        "resourceId": resource_path,
        "httpMethod": http_method,
        "apiId": api_id,
        "accountId": "123456789012",
        "protocol": "HTTP/1.1",
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "responseOverride": {"status": None, "header": {}},
    }


def render(template: airspeed.Template, body: str, values: RequestValues) -> str:
    """The template applied to `body`; PayloadNotJson for a payload it needed as JSON."""
    namespace = {
        "input": Input(body, values.parameters),
        "util": Util(),
        "context": values.context,
        "stageVariables": values.stage_variables,
    }
    try:
        rendered: str = template.merge(namespace)
    except airspeed.TemplateExecutionError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, PayloadNotJson):
            raise cause from None
        raise
    return rendered
