"""Traces printed as indented trees with their flags, for assertion messages.

Every string came from a span, so it is printed inert: control characters and quotes escaped,
long names cut, so a hostile span name cannot rewrite a terminal or fake another line.
"""

from __future__ import annotations

from collections.abc import Sequence

from spanlang.held_span import HeldSpan

MAX_TEXT = 80
MAX_LINES = 200


def inert(text: str | None) -> str:
    """`text` safe to print on one line: escaped as Python escapes a string, then cut."""
    shown = (text or "").encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "…"


def flags(span: HeldSpan) -> list[str]:
    found = [name for name in ("fault", "error", "throttle") if getattr(span, name)]
    if span.cold_start:
        found.append("cold start")
    if span.in_progress:
        found.append("in progress")
    return found


def _line(span: HeldSpan, depth: int) -> str:
    where = inert(span.service) + (f" ({inert(span.origin)})" if span.origin else "")
    target = f" -> {inert(span.target_name)} ({inert(span.target_type)})" if span.target_name else ""
    marks = flags(span)
    shown = f"  [{', '.join(marks)}]" if marks else ""
    return f"{'  ' * depth}{where}: {inert(span.name)}{target}  {span.duration_ns / 1e6:.1f} ms{shown}"


def trace_tree(spans: Sequence[HeldSpan]) -> str:
    """Each trace of `spans` as a tree (children by start time); spans whose parent is not among
    them start a tree of their own."""
    if not spans:
        return "(no spans were captured)"
    keys = {(s.trace_id, s.span_id) for s in spans}
    children: dict[tuple[str, str | None], list[HeldSpan]] = {}
    for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        parent = span.parent_span_id if (span.trace_id, span.parent_span_id) in keys else None
        children.setdefault((span.trace_id, parent), []).append(span)
    lines: list[str] = []
    for trace_id in dict.fromkeys(s.trace_id for s in sorted(spans, key=lambda s: s.start_ns)):
        lines.append(f"trace {trace_id}")
        stack = [(span, 1) for span in reversed(children.get((trace_id, None), []))]
        while stack and len(lines) < MAX_LINES:
            span, depth = stack.pop()
            lines.append(_line(span, depth))
            stack.extend((child, depth + 1) for child in reversed(children.get((trace_id, span.span_id), [])))
    if len(lines) >= MAX_LINES:
        lines.append(f"… ({len(spans)} spans in all)")
    return "\n".join(lines)
