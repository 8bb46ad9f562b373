"""How many connections the listener admits: `max.connections` and `max.connections.per.ip`.

Kafka's acceptor (`Acceptor.accept` and `ConnectionQuotas`) treats the two limits differently,
and so do we:

  max.connections         broker-wide. At the limit the acceptor stops accepting until a
                          connection closes (`waitForConnectionSlot`): new clients wait in the
                          listen backlog, connected but unanswered, and are served in turn.
  max.connections.per.ip  a connection from an address that already has its maximum (or its
                          entry in `max.connections.per.ip.overrides`) is accepted and closed at
                          once, logged as "Rejected connection from <ip>, address already has the
                          configured maximum of <n> connections." (TooManyConnectionsException).

Addresses are compared as IP addresses, an IPv4-mapped IPv6 peer as its IPv4 address. Override
hosts are resolved once, when the listener starts (Kafka: `InetAddress.getByName`); a host name
applies to every address it resolves to. Pure bookkeeping: the server owns the sockets.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def peer_address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def resolve_overrides(overrides: Iterable[tuple[str, int]]) -> dict[IPAddress, int]:
    """`max.connections.per.ip.overrides` entries by address (blocking DNS: call at start-up)."""
    resolved: dict[IPAddress, int] = {}
    for host, count in overrides:
        try:
            addresses = [peer_address(host)]
        except ValueError:
            addresses = [peer_address(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
        for address in addresses:
            resolved[address] = count
    return resolved


class ConnectionQuotas:
    def __init__(self, max_connections: int, max_per_ip: int, overrides: dict[IPAddress, int]) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.overrides = overrides
        self.total = 0
        self._counts: dict[IPAddress, int] = {}

    def slot_available(self) -> bool:
        return self.total < self.max_connections

    def limit_for(self, address: IPAddress) -> int:
        return self.overrides.get(address, self.max_per_ip)

    def count(self, address: IPAddress) -> int:
        return self._counts.get(address, 0)

    def admit(self, address: IPAddress) -> bool:
        """Count a new connection from `address`, or refuse it (over its per-IP limit)."""
        count = self._counts.get(address, 0)
        if count >= self.limit_for(address):
            return False
        self._counts[address] = count + 1
        self.total += 1
        return True

    def release(self, address: IPAddress) -> None:
        count = self._counts.pop(address)
        if count > 1:
            self._counts[address] = count - 1
        self.total -= 1
