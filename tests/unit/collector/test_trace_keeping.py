"""How a trace was kept, per service, from what its spans say."""

from __future__ import annotations

from collector.query.trace_keeping import KeptPart, kept_parts
from collector.query.trace_view import SpanView
from tests.factories import stored_span


def view(service: str, **attributes: object) -> SpanView:
    return SpanView.of(stored_span(service=service, attributes=attributes))


def test_each_service_says_how_its_part_was_kept() -> None:
    spans = [
        view("api", **{"fluoro.sampling": "head", "fluoro.sampling.weight": 100.0}),
        view("api", **{"fluoro.sampling": "head", "fluoro.sampling.weight": 100.0}),
        view("ledger", **{"fluoro.sampling": "tail:error"}),
        view("legacy"),  # an SDK that does not say
        view("odd", **{"fluoro.sampling": "head", "fluoro.sampling.weight": "lots"}),
    ]
    assert kept_parts(spans) == (
        KeptPart("api", "head", None, 100.0, 2),
        KeptPart("ledger", "tail", "error", None, 1),
        KeptPart("legacy", "unstated", None, None, 1),
        KeptPart("odd", "head", None, None, 1),
    )


def test_a_hostile_reason_is_capped() -> None:
    (part,) = kept_parts([view("x", **{"fluoro.sampling": "tail:" + "<b>" * 100})])
    assert part.how == "tail" and part.reason is not None and len(part.reason) == 40
