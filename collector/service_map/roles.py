"""What the service map draws: one row of ``calls`` per hop, in one of four roles.

- ``entry``: a span whose parent is on another node (or that has no parent: caller NULL),
  i.e. the moment a request enters a service. Nodes are (service, origin); a span without an
  origin belongs to its service's node.
- ``inferred``: a client span calling something not instrumented (its target: a DynamoDB table,
  an SQS queue, a host). Given up again when an instrumented callee turns up as its child,
  unless the target is a queue, stream or bus, which stays on the map between the two.
- ``link``: a consumer span linked to the producer span of a message: queue -> consumer,
  async, with the message's dwell time (consumer start - producer end).
- ``init``: a Lambda ``Initialization`` span (cold-start init duration).

A span *wants* its parent (and, for a link, the span it links to): its partner. Partners often
arrive after their children (another process, a later export) or before them (an earlier
export), so a child waits for its partner up to the map's parent wait (the engine's
``parent_wait_s``), and a partner is looked for among spans that started at most LOOKBACK_NS
before the child (or SKEW_NS after it). linker.py applies these rules; storage keeps the
results and the children still waiting. The node types that stay between a producer and its
consumer are spanlang/hops.py's, which applies the same roles to spans held in memory.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

# A parent stored up to 30 s before its child starts. Scanned every link run, so it costs;
# a parent that ends after its child (any synchronous call) is found from the other side.
LOOKBACK_NS: Final = 30 * 10**9
SKEW_NS: Final = 10 * 10**9  # clocks of different processes (and X-Ray's float seconds) disagree
INIT_NAME: Final = "Initialization"

# What linking reads of a span (the writer keeps these columns of each write until it links).
LINKED_SPAN_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "duration_ns",
    "error",
    "fault",
    "throttle",
    "cold_start",
    "origin",
    "target_type",
    "target_name",
    "function_version",
    "in_progress",
    "sampling_weight",  # a run's spans call it `weight`, as calls and pending do
)

# What a child needs to become a call once its partner is known (a want), in this order.
WANT_SCHEMA: Final = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("start_ns", pa.int64()),
        ("service", pa.string()),
        ("origin", pa.string()),
        ("duration_ns", pa.int64()),
        ("error", pa.bool_()),
        ("fault", pa.bool_()),
        ("throttle", pa.bool_()),
        ("cold_start", pa.bool_()),
        ("function_version", pa.string()),
        ("linked", pa.bool_()),
        ("init_ns", pa.int64()),  # a cold start's init duration, found when the child arrived
        ("want_trace_id", pa.uuid()),
        ("want_span_id", pa.uint64()),
        ("relation", pa.string()),
        ("weight", pa.float64()),  # how many requests the child stands for (NULL: 1)
    ]
)
WANT_COLUMNS: Final = tuple(WANT_SCHEMA.names)

# What a child reads of its partner.
PARTNER_COLUMNS: Final = ("service", "origin", "target_type", "target_name", "start_ns", "duration_ns")
PARTNER_SCHEMA: Final = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("service", pa.string()),
        ("origin", pa.string()),
        ("target_type", pa.string()),
        ("target_name", pa.string()),
        ("start_ns", pa.int64()),
        ("duration_ns", pa.int64()),
    ]
)

# The columns of `calls`, in its order.
CALL_SCHEMA: Final = pa.schema(
    [
        ("trace_id", pa.uuid()),
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("start_ns", pa.int64()),
        ("role", pa.string()),
        ("caller", pa.string()),
        ("caller_type", pa.string()),
        ("callee", pa.string()),
        ("callee_type", pa.string()),
        ("async", pa.bool_()),
        ("duration_ns", pa.int64()),
        ("error", pa.bool_()),
        ("fault", pa.bool_()),
        ("throttle", pa.bool_()),
        ("cold_start", pa.bool_()),
        ("init_ns", pa.int64()),
        ("dwell_ns", pa.int64()),
        ("linked", pa.bool_()),
        ("function_version", pa.string()),
        ("weight", pa.float64()),  # the callee span's sampling weight (NULL: 1)
    ]
)
