"""Which addresses the shim may fetch from on a client's say-so (server-side request forgery).

A client ID metadata document is fetched from a URL the client chooses, so the URL could
point at the shim's own network: cloud metadata services, admin interfaces, loopback. The
policy here: resolve the host once, insist that *every* address it resolves to is public
(not special-use per RFC 6890 and later registrations), and connect to the address that was
checked, so a DNS answer that changes between check and connect (rebinding) changes nothing.
Loopback is allowed only when the operator says so (development and tests).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from .urls import is_loopback_host

__all__ = [
    "BlockedAddress",
    "IPAddress",
    "Resolver",
    "UnresolvableHost",
    "checked_address",
    "is_public_address",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``await resolver(host, port)`` -> the IP addresses (as text) the host resolves to."""

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Special-use blocks that older Pythons' ``is_global`` still calls global (RFC 6890 and later
# registrations): IETF protocol assignments, the deprecated 6to4 relay, IPv6 documentation
# (RFC 9637), SRv6 SIDs (RFC 9602) and deprecated site-local addresses.
_ALSO_SPECIAL = tuple(
    ipaddress.ip_network(net)
    for net in ("192.0.0.0/24", "192.88.99.0/24", "3fff::/20", "5f00::/16", "fec0::/10")
)


class UnresolvableHost(Exception):
    """The host has no usable address; the message completes "the host ..." ("could not be
    resolved", "resolved to an invalid address")."""


class BlockedAddress(Exception):
    """The host resolves to at least one address the policy forbids (never named: it may
    describe the internal network)."""


def is_public_address(address: IPAddress) -> bool:
    """Is this an address on the public Internet (not special-use per RFC 6890)?

    IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by the
    embedded address, since that is where the packets end up.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public_address(address.sixtofour)
        if any(address in net for net in _NAT64):
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _IPV4_COMPATIBLE:  # deprecated ::a.b.c.d (RFC 4291 §2.5.5.1)
            return False
    if any(address.version == net.version and address in net for net in _ALSO_SPECIAL):
        return False
    return address.is_global and not address.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's resolver (getaddrinfo), off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def checked_address(
    host: str, port: int, *, literal: IPAddress | None, resolver: Resolver, allow_loopback: bool = False
) -> IPAddress:
    """The address to connect to: the IP ``literal``, or the first address ``host`` resolves to
    (resolved once), once every answer is public, or loopback when ``allow_loopback``
    (development, tests). :class:`UnresolvableHost` or :class:`BlockedAddress` otherwise."""
    if literal is not None:
        addresses = [literal]
    else:
        try:
            answers = await resolver(host, port)
        except (OSError, UnicodeError):
            raise UnresolvableHost("could not be resolved") from None
        try:
            addresses = [ipaddress.ip_address(a) for a in answers]
        except ValueError:
            raise UnresolvableHost("resolved to an invalid address") from None
    if not addresses:
        raise UnresolvableHost("could not be resolved")
    if not all(is_public_address(a) or (allow_loopback and is_loopback_host(str(a))) for a in addresses):
        raise BlockedAddress("special-use address")
    return addresses[0]
