"""A VPC for the local cloud: subnets, security groups, and private resources behind them.

Real connections, real timeouts. Each subnet maps onto a loopback range (10.0.1.0/24 ->
127.10.1.0/24), so a VPC function's environment gets an interface address there when it
starts (a short delay, as attaching an ENI adds to the init) and its outgoing TCP connections
leave from that address (the worker binds them: ``FLUORO_VPC_ADDRESS``). A private resource
is reached through a guard on a loopback port that looks at the connection's source: an
address whose security groups the resource's group admits is forwarded to the resource;
anything else is held open and never answered, so the client times out — a fault in its
trace, as an unreachable private address is on AWS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from demo_apps.local_collector import free_port

_logger = logging.getLogger(__name__)
ENI_ATTACH_S: Final = 0.15  # added to the init of every VPC environment
HOLD_S: Final = 60.0  # how long a refused connection is left hanging
MAX_HELD: Final = 256


class VpcError(ValueError):
    """A VPC setting that does not exist (a subnet or security group); names it."""


@dataclass(frozen=True)
class VpcConfig:
    """A function's VpcConfig: the subnets it may take an address in, its security groups."""

    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]


@dataclass
class _Subnet:
    cidr: ipaddress.IPv4Network
    loopback: ipaddress.IPv4Network
    hosts: itertools.count[int] = field(default_factory=lambda: itertools.count(10))


class Vpc:
    """Subnets, security groups (who may connect to whom), addresses handed out."""

    def __init__(self) -> None:
        self._subnets: dict[str, _Subnet] = {}
        self._ingress: dict[str, set[str]] = {}  # group -> groups admitted inbound
        self._groups_of: dict[str, tuple[str, ...]] = {}  # loopback address -> its groups
        self._lock = threading.Lock()

    def add_subnet(self, name: str, cidr: str) -> None:
        network = ipaddress.IPv4Network(cidr)
        second, third = network.network_address.packed[1:3]
        self._subnets[name] = _Subnet(network, ipaddress.IPv4Network(f"127.{second}.{third}.0/24"))

    def add_security_group(self, name: str, admits: tuple[str, ...] = ()) -> None:
        self._ingress[name] = set(admits)

    def check(self, config: VpcConfig) -> None:
        for subnet in config.subnets:
            if subnet not in self._subnets:
                raise VpcError(f"subnet {subnet!r} does not exist")
        for group in config.security_groups:
            if group not in self._ingress:
                raise VpcError(f"security group {group!r} does not exist")

    def attach(self, config: VpcConfig) -> tuple[str, str]:
        """A new interface in the config's first subnet: (its loopback address, its VPC address)."""
        self.check(config)
        with self._lock:
            subnet = self._subnets[config.subnets[0]]
            host = next(subnet.hosts)
            loopback = str(subnet.loopback.network_address + host)
            self._groups_of[loopback] = config.security_groups
        return loopback, str(subnet.cidr.network_address + host)

    def admits(self, resource_group: str, source_address: str) -> bool:
        allowed = self._ingress.get(resource_group, set())
        return any(group in allowed for group in self._groups_of.get(source_address, ()))


class PrivateResource:
    """A TCP service reachable only from admitted security groups, through a guard port."""

    def __init__(
        self, vpc: Vpc, name: str, target: tuple[str, int], security_group: str, port: int | None = None
    ) -> None:
        self.vpc, self.name, self.target, self.security_group = vpc, name, target, security_group
        self.port = port or free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopping = threading.Event()
        self._held: deque[tuple[float, socket.socket]] = deque()
        self._thread = threading.Thread(target=self._accept, name=f"vpc-{name}", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def start(self) -> PrivateResource:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, (source, _) = self._listener.accept()
            except OSError:
                return
            if self.vpc.admits(self.security_group, source):
                threading.Thread(target=self._forward, args=(client,), daemon=True).start()
            else:  # no route: never answered, the caller's connect or read times out
                self._hold(client)

    def _hold(self, client: socket.socket) -> None:
        """Keep a refused connection open unanswered; at most MAX_HELD, the oldest closed first."""
        now = time.monotonic()
        self._held.append((now, client))
        while self._held and (len(self._held) > MAX_HELD or now - self._held[0][0] > HOLD_S):
            self._held.popleft()[1].close()

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return

        def pipe(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        forward = threading.Thread(target=pipe, args=(client, upstream), daemon=True)
        forward.start()
        pipe(upstream, client)
        forward.join(10)  # either direction's end shuts both sockets down, so the other ends too
        client.close()
        upstream.close()

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        while self._held:
            self._held.popleft()[1].close()
