"""What a refused request is told, and the statuses the OpenAPI document promises.

The API answers a bad parameter with 400 (FastAPI's own validation errors included: app.py
turns them into 400 too), an unknown trace with 404 and an unavailable store with 503, each
with a `detail`; the document says exactly that, and not FastAPI's default 422, which this API
never sends (schemathesis holds every answer to it: tests/integration/test_api_fuzz.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI


@dataclass(frozen=True)
class Problem:
    """``detail`` says what is wrong and why; for a filter expression, where (``column``) and
    what the parser wanted there (``reason``)."""

    detail: str
    column: int | None = None
    reason: str | None = None


EVERY_ROUTE: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": Problem, "description": "A bad parameter: `detail` names it and says why"},
    503: {"model": Problem, "description": "The store is unavailable: retry after `Retry-After` seconds"},
}
UNKNOWN_TRACE: Final[dict[int | str, dict[str, Any]]] = {404: {"model": Problem, "description": "No such trace"}}
UNKNOWN_GROUP: Final[dict[int | str, dict[str, Any]]] = {404: {"model": Problem, "description": "No such group"}}
SAVING_GROUP: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": Problem, "description": "As many groups as allowed exist already"},
    413: {"model": Problem, "description": "The body is too large"},
    415: {"model": Problem, "description": "The body is not application/json"},
}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def document_without_422(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document without the 422 answers FastAPI lists by default (made once)."""
    if app.openapi_schema is None:
        document = app.openapi()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in _FASTAPI_VALIDATION:
            document.get("components", {}).get("schemas", {}).pop(name, None)
    assert app.openapi_schema is not None  # app.openapi() keeps what it made
    return app.openapi_schema
