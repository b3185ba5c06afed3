"""How callers name a function: ``name``, ``name:qualifier`` (a version or an alias) or its ARN."""

from __future__ import annotations

from typing import Final

REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"


def split_reference(reference: str) -> tuple[str, str | None]:
    """(function name, qualifier or None) of ``name``, ``name:qualifier`` or a function's ARN
    (``arn:aws:lambda:REGION:ACCOUNT:function:name[:qualifier]``)."""
    parts = reference.split(":")
    if len(parts) >= 7 and parts[0] == "arn":
        parts = parts[6:]
    return parts[0], (parts[1] if len(parts) > 1 and parts[1] else None)
