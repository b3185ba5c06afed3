"""The Lambda side of X-Ray, for handlers instrumented with the X-Ray SDK or Powertools.

On AWS the Lambda service records each invocation's function segment (``AWS::Lambda::Function``
with Initialization, Invocation and Overhead) and hands the handler its id as the parent in
``_X_AMZN_TRACE_ID``; the SDK's subsegments hang under it. Fluoro's tracer records that span
itself, so the local runtime does this only for handlers Fluoro does not trace. It also runs
the environment's X-Ray daemon, as each Lambda sandbox has one: the SDK sends to a UDP port of
this process, and the subsegments addressed to the function segment are sent inside it — so
they belong to the function's node, as on AWS — while anything else is forwarded unchanged to
the real daemon (the collector's X-Ray port).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Final

HEADER: Final = b'{"format": "json", "version": 1}\n'
MAX_DATAGRAM: Final = 64 * 1024


@dataclass(frozen=True)
class Invocation:
    root: str
    parent: str | None
    segment_id: str
    started: float


def parse_header(header: str) -> dict[str, str]:
    fields = (part.split("=", 1) for part in header.split(";") if "=" in part)
    return {key.strip(): value.strip() for key, value in fields}


class FunctionSegments:
    """The environment's X-Ray daemon and the function segments it records."""

    def __init__(self, daemon: str, function: str, process_started: float) -> None:
        host, _, port = daemon.rpartition(":")
        self.daemon = (host or "127.0.0.1", int(port))
        self.function, self.process_started = function, process_started
        self._relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._relay.bind(("127.0.0.1", 0))
        self._relay.setblocking(False)
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    @property
    def relay_address(self) -> str:
        host, port = self._relay.getsockname()
        return f"{host}:{port}"

    def begin(self, trace_header: str | None) -> tuple[str | None, Invocation | None]:
        """The header the handler gets (the function segment as parent) and the invocation."""
        fields = parse_header(trace_header or "")
        if not fields.get("Root") or fields.get("Sampled") == "0":
            return trace_header, None
        segment_id = secrets.token_hex(8)
        invocation = Invocation(fields["Root"], fields.get("Parent"), segment_id, time.time())
        return f"Root={fields['Root']};Parent={segment_id};Sampled=1", invocation

    def finish(self, invocation: Invocation, *, init_ended: float | None, returned: float, error: Any) -> None:
        """Send the function segment, with the SDK subsegments that belong to it inside."""
        inside, forward = self._received(invocation)
        now = time.time()
        phases = [("Invocation", invocation.started, returned), ("Overhead", returned, now)]
        if init_ended is not None:
            phases.insert(0, ("Initialization", self.process_started, init_ended))
        segment: dict[str, Any] = {
            "name": self.function,
            "id": invocation.segment_id,
            "trace_id": invocation.root,
            "start_time": invocation.started if init_ended is None else self.process_started,
            "end_time": now,
            "origin": "AWS::Lambda::Function",
            "subsegments": [_phase(name, start, end) for name, start, end in phases] + inside,
        }
        if invocation.parent:
            segment["parent_id"] = invocation.parent
        if isinstance(error, dict):
            segment["fault"] = True
            segment["cause"] = {"exceptions": [{"type": error.get("errorType"), "message": error.get("errorMessage")}]}
        payload = HEADER + json.dumps(segment, default=str).encode()
        if len(payload) > MAX_DATAGRAM:  # too big for one datagram: the subsegments go on their own
            segment["subsegments"] = segment["subsegments"][: len(phases)]
            payload = HEADER + json.dumps(segment, default=str).encode()
            forward += [
                HEADER
                + json.dumps(
                    {**d, "type": "subsegment", "parent_id": invocation.segment_id, "trace_id": invocation.root}
                ).encode()
                for d in inside
            ]
        self._send(payload)
        for datagram in forward:
            self._send(datagram)

    def forward_pending(self) -> None:
        """Pass on whatever the SDK sent outside an invocation (or from a handler Fluoro traces)."""
        for datagram in self._drain():
            self._send(datagram)

    def _received(self, invocation: Invocation) -> tuple[list[dict[str, Any]], list[bytes]]:
        """The subsegments under the function segment, streamed children put back in their
        parents (the SDK streams a finished child before its parent); the rest, to forward.
        A subsegment of this trace under a parent never seen is the SDK still naming an earlier
        invocation's segment (it keeps its facade while the trace root stays the same): it
        belongs to this invocation all the same."""
        documents = [(raw, _document(raw)) for raw in self._drain()]
        waiting = [doc for _, doc in documents if doc is not None and doc.get("type") == "subsegment"]
        forward = [raw for raw, doc in documents if doc is None or doc.get("type") != "subsegment"]
        nodes: dict[str, dict[str, Any]] = {}
        inside: list[dict[str, Any]] = []
        while waiting:
            placed = [d for d in waiting if d.get("parent_id") == invocation.segment_id or d.get("parent_id") in nodes]
            if not placed:
                pending = {str(d.get("id")) for d in waiting}
                placed = [
                    d for d in waiting if d.get("trace_id") == invocation.root and d.get("parent_id") not in pending
                ]
                for doc in placed:
                    doc["parent_id"] = invocation.segment_id
            if not placed:
                break
            for doc in placed:
                node = {k: v for k, v in doc.items() if k not in ("type", "parent_id", "trace_id")}
                parent = nodes.get(str(doc.get("parent_id")))
                (inside if parent is None else parent.setdefault("subsegments", [])).append(node)
                _index(node, nodes)
            waiting = [d for d in waiting if all(d is not p for p in placed)]
        return inside, forward + [HEADER + json.dumps(doc).encode() for doc in waiting]

    def _drain(self) -> list[bytes]:
        datagrams = []
        while True:
            try:
                datagrams.append(self._relay.recv(MAX_DATAGRAM))
            except BlockingIOError:
                return datagrams

    def _send(self, datagram: bytes) -> None:
        with contextlib.suppress(OSError):  # tracing must never fail the invocation
            self._out.sendto(datagram, self.daemon)


def _index(node: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> None:
    nodes[str(node.get("id"))] = node
    for child in node.get("subsegments") or []:
        if isinstance(child, dict):
            _index(child, nodes)


def _phase(name: str, start: float, end: float) -> dict[str, Any]:
    return {"name": name, "id": secrets.token_hex(8), "start_time": start, "end_time": max(start, end)}


def _document(datagram: bytes) -> dict[str, Any] | None:
    _, _, body = datagram.partition(b"\n")
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def from_environment(process_started: float) -> FunctionSegments | None:
    """The environment's daemon when the function has an X-Ray daemon address; it takes the
    address over, so the SDK (configured at import) sends here."""
    daemon = os.environ.get("AWS_XRAY_DAEMON_ADDRESS")
    if not daemon:
        return None
    segments = FunctionSegments(daemon, os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function"), process_started)
    os.environ["AWS_XRAY_DAEMON_ADDRESS"] = segments.relay_address
    return segments
