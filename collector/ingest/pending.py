"""A submitted batch on its way through the pipeline, and how it ended."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from collector.model import SpanBatch


@dataclass(frozen=True)
class WriteOutcome:
    """How one submitted batch ended: made durable (its spans count) or failed (the reason)."""

    spans: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Pending:
    """A batch from submit to fold. `byte_size` is what it holds in memory (counted against the
    bounds until folded); `record` reproduces it from the log (None: nobody waits on it, or
    already logged); `queued_at` when it was submitted, on the pipeline's clock; `seq` its place
    in the order of logging, from 1."""

    batch: SpanBatch
    byte_size: int
    done: Callable[[WriteOutcome], None]
    sender: Hashable | None = None
    record: bytes | None = None
    queued_at: float = 0.0
    seq: int = 0

    @property
    def spans(self) -> int:
        """Its spans and log records: what the bounds count."""
        return self.batch.row_count


def acknowledge(group: list[Pending], error: str | None = None) -> None:
    """Tell each batch's submitter how it ended."""
    for pending in group:
        pending.done(WriteOutcome(pending.spans if error is None else 0, error))
