"""A price sheet: what each billed unit costs, from a versioned JSON file.

The default is AWS's public list prices in us-east-1 (``aws-us-east-1.json`` beside this module,
with the date they were taken and where from); ``--prices FILE`` gives another region or a
negotiated rate. A file is validated whole when it is read: an unknown item, a missing one, a
negative or non-finite price is refused with the reason, never half-used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_PRICES: Final = Path(__file__).with_name("aws-us-east-1.json")
MAX_PRICE_BYTES: Final = 64 * 1024

# Every item a span can be billed for (collector/storage/cost_sql.py says which span, how many).
ITEMS: Final = (
    "lambda.request",
    "lambda.gb_second.x86_64",
    "lambda.gb_second.arm64",
    "apigateway.rest_request",
    "apigateway.http_request",
    "stepfunctions.transition",
    "stepfunctions.express_request",
    "stepfunctions.express_gb_second",
    "sqs.request",
    "sqs.fifo_request",
    "eventbridge.event",
    "kinesis.put_payload_unit",
    "dynamodb.write_request_unit",
    "dynamodb.read_request_unit",
)


class PricesError(ValueError):
    """The price file cannot be used; the message says why."""


class _PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    region: str = Field(min_length=1, max_length=64)
    currency: str = Field(min_length=1, max_length=8)
    taken: str = Field(min_length=1, max_length=32)
    sources: tuple[str, ...] = ()
    notes: str = ""
    prices: dict[str, float]

    @field_validator("prices")
    @classmethod
    def _every_item_priced(cls, prices: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(prices) - set(ITEMS))
        missing = sorted(set(ITEMS) - set(prices))
        if unknown or missing:
            raise ValueError(f"unknown items {unknown}, missing items {missing}")
        bad = sorted(item for item, price in prices.items() if not (math.isfinite(price) and price >= 0))
        if bad:
            raise ValueError(f"prices must be finite and not negative: {bad}")
        return prices


@dataclass(frozen=True)
class PriceSheet:
    """Prices per billed unit, and where they came from."""

    region: str
    currency: str
    taken: str
    sources: tuple[str, ...]
    prices: Mapping[str, float]

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PRICES) -> PriceSheet:
        """The sheet in `path`, or PricesError saying what is wrong with it."""
        try:
            with open(path, "rb") as file:
                raw = file.read(MAX_PRICE_BYTES + 1)
        except OSError as exc:
            raise PricesError(f"cannot read prices {path}: {exc.strerror or exc}") from exc
        if len(raw) > MAX_PRICE_BYTES:
            raise PricesError(f"prices {path}: larger than {MAX_PRICE_BYTES} bytes")
        try:
            parsed = _PriceFile.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise PricesError(f"prices {path}: {_first_line(exc)}") from exc
        return cls(parsed.region, parsed.currency, parsed.taken, parsed.sources, dict(parsed.prices))


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "file"
        return f"{where}: {error['msg']}"
    return str(exc).splitlines()[0]
