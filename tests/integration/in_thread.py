"""A uvicorn server on a loopback port, in a thread of this test process, for tests that need to
reach into the server (its state, lowered bounds) while talking to it over real sockets."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import uvicorn

from tests.waiting import wait_until


@contextlib.contextmanager
def uvicorn_in_thread(config: uvicorn.Config) -> Iterator[tuple[int, uvicorn.Server]]:
    """Serve `config` (its host and port are not used) until the block ends: the port, and the
    server. The socket is bound here and handed over, so no other test worker can take the port
    between finding it free and the server binding it."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
        thread.start()
        try:
            wait_until(lambda: server.started, timeout_s=10, poll_s=0.02)
            yield listening.getsockname()[1], server
        finally:
            server.should_exit = True
            thread.join(10)
