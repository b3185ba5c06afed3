"""An insight: a node of a scope whose fault, throttle or error rate, or latency, left its baseline."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

InsightKind = Literal["fault", "throttle", "error", "latency"]
InsightState = Literal["open", "closed"]
KINDS: tuple[InsightKind, ...] = ("fault", "throttle", "error", "latency")


@dataclass(frozen=True, slots=True)
class InsightNode:
    id: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Insight:
    """`root_cause`: where the failures started (the anomalous node with no anomalous node
    downstream of it); `impacted`: every anomalous node upstream of it, itself included. The
    figures are the root cause's in the last window looked at: `failures` of `requests` (slow
    ones, for latency), their `share` against the `baseline_share`, and the test's `p_value`.
    `traces_filter` finds the affected traces (`traces` of them in that window); `group` is
    None for all traces."""

    id: str
    group: str | None
    kind: InsightKind
    state: InsightState
    start_ns: int
    end_ns: int | None
    root_cause: InsightNode
    impacted: tuple[InsightNode, ...]
    requests: int
    failures: int
    share: float
    baseline_share: float
    p_value: float
    traces_filter: str
    updated_ns: int
    traces: int = 0  # traces the filter finds in the window looked at (at most MAX_COUNTED_TRACES)

    @staticmethod
    def key(group: str | None, kind: InsightKind, root_id: str, start_ns: int) -> str:
        text = f"{group or ''}\x00{kind}\x00{root_id}\x00{start_ns}"
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> Insight:
        return cls(
            **{
                **fields,
                "root_cause": InsightNode(**fields["root_cause"]),
                "impacted": tuple(InsightNode(**node) for node in fields["impacted"]),
            }
        )
