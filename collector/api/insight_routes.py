"""GET /api/insights: the insights of a window, for all traces or one group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, params

from collector.api.group_routes import GROUP_HELP
from collector.api.params import parse_window
from collector.insights.insight import Insight
from collector.storage.protocols import InsightScope, InsightStore

MAX_INSIGHTS = 1000


@dataclass(frozen=True, slots=True)
class InsightsPage:
    insights: tuple[Insight, ...]


def insight_routes(store: InsightStore, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(dependencies=guarded)

    @router.get("/api/insights", summary="Insights open at some time in the window, newest first")
    def insights(
        start: str | None = None,
        end: str | None = None,
        group: Annotated[str | None, Query(description=GROUP_HELP + " (default: all traces)", max_length=64)] = None,
        state: Annotated[Literal["open", "closed"] | None, Query(description="only open or closed ones")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_INSIGHTS)] = 200,
    ) -> InsightsPage:
        window = parse_window(start, end)
        return InsightsPage(
            tuple(store.insights(window.start_ns, window.end_ns, limit, InsightScope(group or None, state)))
        )

    return router
