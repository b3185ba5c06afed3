"""Price sheets: the default one loads; a bad one is refused whole, with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.cost.prices import DEFAULT_PRICES, ITEMS, PricesError, PriceSheet


def test_the_default_sheet_prices_every_item_and_says_when_and_where_from() -> None:
    sheet = PriceSheet.load()
    assert set(sheet.prices) == set(ITEMS) and sheet.region == "us-east-1" and sheet.currency == "USD"
    assert sheet.taken and all(source.startswith("https://aws.amazon.com/") for source in sheet.sources)
    assert sheet.prices["lambda.gb_second.arm64"] < sheet.prices["lambda.gb_second.x86_64"]


def sheet_with(tmp_path: Path, **changes: Any) -> Path:
    document = json.loads(DEFAULT_PRICES.read_text())
    prices = document["prices"]
    for item, price in changes.pop("prices", {}).items():
        if price is None:
            del prices[item]
        else:
            prices[item] = price
    document.update(changes)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"prices": {"lambda.request": -1}}, "not negative"),
        ({"prices": {"lambda.request": None}}, "missing items ['lambda.request']"),
        ({"prices": {"lambda.free_lunch": 0}}, "unknown items ['lambda.free_lunch']"),
        ({"prices": {"sqs.request": "cheap"}}, "prices.sqs.request"),
        ({"format": 2}, "format"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_a_bad_sheet_is_refused_with_the_reason(tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(PricesError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        PriceSheet.load(sheet_with(tmp_path, **changes))


def test_a_regional_sheet_replaces_the_default(tmp_path: Path) -> None:
    sheet = PriceSheet.load(sheet_with(tmp_path, region="eu-west-1", prices={"lambda.request": 0.00000025}))
    assert (sheet.region, sheet.prices["lambda.request"]) == ("eu-west-1", 0.00000025)


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b"{" + b" " * 70_000 + b"}", b"NaN"])
def test_what_is_not_a_sheet_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    with pytest.raises(PricesError):
        PriceSheet.load(path)
    with pytest.raises(PricesError, match="cannot read"):
        PriceSheet.load(tmp_path / "missing.json")
