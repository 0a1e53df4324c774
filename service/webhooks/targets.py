"""Where a webhook may be sent: public addresses only, unless the operator allows private ones.

A webhook URL names a host the project chose; without a check the scheduler would POST, from
inside the deployment, to whatever that host is: `127.0.0.1:<vLLM>`, the cloud's metadata
service at `169.254.169.254`, a database on the cluster network. So an address is refused when
it is not globally routable (loopback, private, link-local, unique-local, CGNAT, multicast,
unspecified, reserved, documentation; an IPv4-mapped or NAT64-embedded IPv6 address is judged
by the IPv4 address inside it), and a name when any address it resolves to is refused.

The check runs twice: when an endpoint is created (400 naming `url`), and when a delivery
connects. The second is the one that holds: `GuardedBackend` resolves the name once, checks
every address, and opens the socket to a checked address itself, so a name that resolves to
a public address at the check and to `127.0.0.1` a moment later (DNS rebinding) reaches
nothing. The request still carries the URL's host in `Host` and in TLS's SNI and certificate
check (httpcore takes them from the URL, not from the socket).

`WHETSTONE_WEBHOOK_ALLOW_PRIVATE_URLS` lifts the address rule, for receivers on the operator's
own network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the addresses it resolves to, as text."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


class RefusedTarget(Exception):
    """A webhook host or address that deliveries may not reach; the message says why."""


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (numeric forms such as `2130706433` or `0177.0.0.1`
    included: the system resolver reads them as the address they denote)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal(address: str) -> str | None:
    """What keeps deliveries from `address` (an IP address as text), e.g. "a loopback
    address"; None when they may reach it."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return refusal(str(inner))
    for kind, flag in (
        ("a loopback", ip.is_loopback),
        ("an unspecified", ip.is_unspecified),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a unique-local", ip in _UNIQUE_LOCAL),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
    ):
        if flag:
            return f"{kind} address"
    if not ip.is_global:
        return "not a public address"
    return None


def check_addresses(host: str, addresses: Iterable[str]) -> list[str]:
    """`addresses` if every one is public; else `RefusedTarget` naming the first refused."""
    checked = list(addresses)
    if not checked:
        raise RefusedTarget(f"{host} resolves to no address")
    for address in checked:
        why = refusal(address)
        if why is not None:
            shown = (
                f"{host} is" if host.strip("[]") == address else f"{host} resolves to {address},"
            )
            raise RefusedTarget(f"{shown} {why}")
    return checked


def check_host(host: str, port: int, resolver: Resolver = resolve) -> None:
    """At creation: refuse a host that is, or resolves to, an address deliveries may not
    reach. A name that does not resolve (yet) passes: each delivery checks again."""
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError):
        return
    check_addresses(host, addresses)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's TCP connector with the check between resolving and connecting: the socket
    goes to an address that passed it, never to a second resolution of the name."""

    def __init__(self, allow_private: bool = False, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as e:
            raise httpcore.ConnectError(f"cannot resolve {host}") from e
        if not self.allow_private:
            check_addresses(host, addresses)
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as e:
                last = e
        raise last or httpcore.ConnectError(f"cannot connect to {host}")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks are not sent over Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over `GuardedBackend`; no proxy from the environment (a proxy would
    connect in our place, past the check)."""

    def __init__(self, allow_private: bool = False, resolver: Resolver = resolve) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(allow_private, resolver),
        )


def client(
    timeout: float, allow_private: bool = False, resolver: Resolver = resolve
) -> httpx.Client:
    """The deliverer's HTTP client: guarded, no redirects followed, nothing from the env."""
    return httpx.Client(
        transport=GuardedTransport(allow_private, resolver),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
