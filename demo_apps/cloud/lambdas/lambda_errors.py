"""What invoking a function raises, as AWS's Lambda answers it."""

from __future__ import annotations

from typing import Any


class DeployError(ValueError):
    """A definition AWS would refuse; the message names the function and the setting."""


class TooManyRequests(RuntimeError):
    """TooManyRequestsException: the function's or the account's concurrency is used up."""

    status = 429


class ResourceNotFound(KeyError):
    """ResourceNotFoundException: no such function, version or alias (HTTP 404)."""

    status = 404


class FunctionError(RuntimeError):
    """The handler raised (or its environment failed): AWS's Unhandled function error."""

    def __init__(self, payload: dict[str, Any], version: str = "$LATEST") -> None:
        super().__init__(payload.get("errorMessage", "function error"))
        self.payload = payload
        self.version = version  # the version that ran (an alias's), as X-Amz-Executed-Version says
