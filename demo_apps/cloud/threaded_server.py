"""An ASGI app served by uvicorn on a loopback port, on a thread of its own (the local cloud's
HTTP faces: the Lambda Invoke API, API Gateway stages)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from demo_apps.local_collector import free_port


def closing_at_shutdown(*clients: httpx.AsyncClient) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A lifespan that closes `clients` when the server stops, on the loop their connections
    live on (closed later, or never, they are sockets the loop leaks as it closes)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for client in clients:
            await client.aclose()

    return lifespan


class ThreadedServer:
    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int | None = None, name: str = "asgi") -> None:
        self.host, self.port = host, port or free_port()
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self._thread.name} did not start on {self.endpoint}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
