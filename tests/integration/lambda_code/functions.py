"""Handlers for the local Lambda tests: traced with Fluoro's tracer, as real functions are."""

import hashlib
import os
import time
from typing import Any

import tracer

INIT_STARTED = time.time()
time.sleep(0.2)  # init work: a cold start's init duration includes it
tracer.configure()  # OTEL_SERVICE_NAME and the endpoint come from the environment


@tracer.traced.handler
def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "trace_header": os.environ.get("_X_AMZN_TRACE_ID"),
        "pid": os.getpid(),
    }


@tracer.traced.handler
def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event.get("sleep_s", 0.5)))
    return {"slept": event.get("sleep_s", 0.5)}


@tracer.traced.handler
def burn(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """CPU-bound: hashes for a fixed amount of work."""
    digest = b"x"
    for _ in range(int(event.get("rounds", 200_000))):
        digest = hashlib.sha256(digest).digest()
    return {"digest": digest.hex()[:8]}


@tracer.traced.handler
def burn_timed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """CPU-bound for `cpu_s` of this process's CPU time; what it took, measured inside the handler."""
    wall_started, cpu_started = time.perf_counter(), time.process_time()
    digest = b"x"
    while time.process_time() - cpu_started < float(event.get("cpu_s", 0.05)):
        for _ in range(200):
            digest = hashlib.sha256(digest).digest()
    return {"cpu_s": time.process_time() - cpu_started, "wall_s": time.perf_counter() - wall_started}


HELD: list[bytearray] = []  # what `hold` keeps between invocations, as a leaking handler would


@tracer.traced.handler
def hold(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allocates and touches `mb` megabytes, kept for the environment's life."""
    for _ in range(int(event["mb"])):
        HELD.append(bytearray(b"\1" * (1024 * 1024)))
    return {"held_mb": len(HELD)}


@tracer.traced.handler
def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError("bad input")


@tracer.traced.handler
def fill_tmp(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Writes `mb` megabytes into the environment's /tmp (TMPDIR)."""
    import tempfile

    with tempfile.NamedTemporaryFile(delete=False) as out:
        out.write(b"\0" * int(event["mb"] * 1024 * 1024))
    return {"wrote_mb": event["mb"]}


@tracer.traced.handler
def tmp_files(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Writes /tmp/<name> (a literal /tmp, not TMPDIR); what /tmp holds and its size."""
    with open(f"/tmp/{event['name']}", "w") as out:
        out.write(context.aws_request_id)
    stats = os.statvfs("/tmp")
    return {
        "files": sorted(os.listdir("/tmp")),
        "size_mb": stats.f_blocks * stats.f_frsize // (1024 * 1024),
        "opt": sorted(os.listdir("/opt")) if os.path.isdir("/opt") else None,
    }


@tracer.traced.handler
def module_files(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Where each of `modules` was imported from, and what it says its VALUE is (if it has one)."""
    import importlib

    found = {name: importlib.import_module(name) for name in event["modules"]}
    return {name: [module.__file__, getattr(module, "VALUE", None)] for name, module in found.items()}


@tracer.traced.handler
def reach(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """GET a private resource; a connection nobody answers raises (a timeout)."""
    import httpx

    answer = httpx.get(event["url"], timeout=1.0)
    return {"status": answer.status_code, "body": answer.text, "ip": os.environ.get("FLUORO_VPC_PRIVATE_IP")}
