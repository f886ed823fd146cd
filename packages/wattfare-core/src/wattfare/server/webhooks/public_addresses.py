"""Live-mode deliveries reach public addresses only, as resolved when the connection is made.

A live endpoint's URL is checked when it is saved (`endpoints.checked_url`), but only as written: a name is not
resolved then, and what it resolves to can change by the time a delivery is sent (a record pointed at 127.0.0.1
or at a cloud's metadata address 169.254.169.254, DNS rebinding with a zero TTL). So every live delivery resolves
its host itself, refuses it unless every address is public, and connects to the address it checked: the URL's
host becomes that address, while the `Host` header and TLS (SNI and the certificate's name, httpx's
`sni_hostname`) keep the name. Redirects are never followed (`deliverer`), so no second hop escapes the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address

import httpx

Address = IPv4Address | IPv6Address
# A name's addresses for a port, as `getaddrinfo` gives them (injectable, so tests need no DNS records).
Resolver = Callable[[str, int], Awaitable[list[Address]]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: Address) -> bool:
    """Whether `address` is on the public internet, an IPv4 address carried inside an IPv6 one included."""
    if isinstance(address, IPv6Address):
        teredo = address.teredo
        embedded = address.ipv4_mapped or address.sixtofour or (teredo[1] if teredo else None)
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    # `is_global` leaves multicast in (224.0.0.0/4 is not private): a delivery is never sent to a group.
    return address.is_global and not address.is_multicast


async def system_resolver(host: str, port: int) -> list[Address]:
    """The addresses the operating system resolves `host` to."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An IPv6 link-local answer carries its zone (`fe80::1%eth0`): the address is what is checked.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]


class NotPublicError(httpx.ConnectError):
    """The endpoint's host resolved to an address that is not public: nothing was sent."""


class PublicOnlyTransport(httpx.AsyncBaseTransport):
    """Sends each request to a public address its host resolved to, checked on the way (see the module)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        resolve: Resolver = system_resolver,
        allowed: Callable[[Address], bool] = is_public,
    ) -> None:
        """Wrap `inner`, which makes the connections."""
        self._inner = inner
        self._resolve = resolve
        self._allowed = allowed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve, check, pin the address, then send."""
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = await self._resolve(host, port)
            except OSError as exc:
                raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from exc
        refused = [address for address in addresses if not self._allowed(address)]
        if refused or not addresses:
            what = f"resolves to {refused[0]}" if refused else "resolves to no address"
            raise NotPublicError(f"{host} {what}, which is not a public address: nothing was sent", request=request)
        request.url = request.url.copy_with(host=str(addresses[0]))
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()
