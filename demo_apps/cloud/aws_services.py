"""DynamoDB, S3, SQS and Kinesis for the local cloud: moto in server mode on a loopback port.

Functions reach it with plain boto3, exactly as code runs against AWS: the emulator gives
every environment ``AWS_ENDPOINT_URL`` (boto3 reads it for every service) and fake
credentials, so nothing in a handler knows it is local.
"""

from __future__ import annotations

import logging
import urllib.request
from typing import Any, Final

from moto.server import ThreadedMotoServer

from demo_apps.local_collector import free_port

REGION: Final = "us-east-1"


class AwsServices:
    """One moto server; `environment()` is what a process needs to use it through boto3."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address=host, port=self.port, verbose=False)
        self._started = False
        self._clients: list[Any] = []

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> AwsServices:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per AWS call
        if not self._started:
            self._server.start()
            self._started = True
            # moto keeps its data per process, not per server: start from empty services, as a
            # fresh account would (one local cloud at a time per process)
            request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass
        return self

    def stop(self) -> None:
        for client in self._clients:  # first: their kept-alive connections hold the server's handlers
            client.close()
        self._clients.clear()
        if self._started:
            self._server.stop()
            self._started = False

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self, service: str) -> Any:
        """A boto3 client against this server (for the emulator's own calls: DLQs, destinations),
        closed when the server stops."""
        import boto3

        client = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self._clients.append(client)
        return client

    def __enter__(self) -> AwsServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
