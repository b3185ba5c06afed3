"""How long a connection may take to start a request, and how many a listener may hold open.

Each open connection holds a file descriptor. A client that opens connections and sends
nothing (or an HTTP head a byte at a time) kept them open indefinitely on both transports, and
a thousand of them exhaust a common 1,024-descriptor limit, after which the daemon can neither
accept a connection nor open its ingest log's next segment. So a connection has
``HEAD_WAIT_S`` to start its request (HTTP: the head, ui/connection_guard.py; gRPC: the
HTTP/2 handshake, ``grpc.server_handshake_timeout_ms``), and a listener holds at most
:func:`connection_cap` connections (gRPC: ``grpc.max_allowed_incoming_connections``).
"""

from __future__ import annotations

import resource

HEAD_WAIT_S = 10.0
# At most this many open connections a listener, and at most a quarter of the descriptors the
# process may open: three listeners (OTLP/HTTP, OTLP/gRPC, the UI) and room for DuckDB's files,
# the ingest log and the X-Ray socket.
MAX_CONNECTIONS = 512
MIN_CONNECTIONS = 16


def connection_cap(descriptor_limit: int | None = None) -> int:
    """Open connections a listener may hold, given the process's soft limit on descriptors."""
    if descriptor_limit is None:
        descriptor_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if descriptor_limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, descriptor_limit // 4))
