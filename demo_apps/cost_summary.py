"""The demo's closing summary: what each architecture's requests cost, per million, at AWS prices.

Each architecture is a group in the collector (the SAM deploy saves one per stack), so the
collector's ``GET /api/cost?group=NAME`` prices exactly its traces; the load generator knows how
many requests it sent. Asked over HTTP: the demo never imports the collector.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
from rich.table import Table

from demo_apps.architectures import Snapshot


def architecture_cost(api_url: str, group: str, start_s: float, end_s: float) -> dict[str, object] | None:
    """The collector's cost report of one architecture's traces in [start_s, end_s), or None."""
    params: dict[str, str | int] = {"group": group, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}", "limit": 1000}
    try:
        response = httpx.get(f"{api_url}/api/cost", params=params, timeout=30)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def cost_table(api_url: str, rows: Sequence[Snapshot], started_s: float) -> Table:
    """Per architecture: requests sent, their cost, the cost per million, the costliest item."""
    view = Table(title="What it cost (AWS list prices; fluoro cost --by function for the detail)")
    for column in ("architecture", "requests", "cost", "per 1M requests", "most of it"):
        view.add_column(column, justify="left" if column in ("architecture", "most of it") else "right")
    now_s = time.time()
    for row in rows:
        report = architecture_cost(api_url, row.name, started_s, now_s)
        if report is None:
            view.add_row(row.name, f"{row.requests:,}", "-", "-", "the collector did not answer")
            continue
        total = float(report["total"])  # type: ignore[arg-type]
        items: dict[str, float] = {}
        for entry in report["entries"]:  # type: ignore[attr-defined]
            for item in entry["items"]:
                items[item["item"]] = items.get(item["item"], 0.0) + float(item["amount"])
        top = max(items, key=items.__getitem__, default="-")
        per_million = f"${total / row.requests * 1e6:,.2f}" if row.requests else "-"
        view.add_row(row.name, f"{row.requests:,}", f"${total:,.6f}", per_million, top)
    return view
