"""The SSRF guard: which webhook URLs skillwire may POST to.

Only ``http`` and ``https``. The host is resolved and every address it resolves to must be
public: private, loopback, link-local, multicast, reserved, unspecified and shared
(carrier-grade NAT) addresses are refused unless ``webhooks.allow_private`` is on or the
host is listed in ``webhooks.allow_hosts``. Cloud-metadata and credential endpoints are
refused always, whatever the configuration.

An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, SIIT, NAT64,
6to4, Teredo) reaches that IPv4 address through a translator or a tunnel, so every IPv4
address it embeds is checked by the same rules as the IPv6 address itself.

The same rules run at call time (a 422 naming ``webhook_url``) and at delivery time, where
the connection goes to exactly the addresses that were checked (``_transport``), so a DNS
answer that changes in between (rebinding) cannot steer a delivery inward.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from skillwire.protocol import ValidationError

__all__ = ["METADATA_ADDRESSES", "Target", "Unresolvable", "UnsafeUrl", "UrlGuard"]

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Where clouds hand out instance metadata and credentials: refused always.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # instance metadata: AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS Pod Identity credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity credentials over IPv6
        "100.100.100.200",  # Alibaba Cloud instance metadata
        "192.0.0.192",  # Oracle Cloud's former instance metadata
        "168.63.129.16",  # Azure WireServer (a public address, so no other rule catches it)
    )
)

_V4 = 0xFFFF_FFFF
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, but still routed by some stacks
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix (RFC 6052)
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 prefixes (RFC 8215)


def _rfc6052(value: int, prefix: int) -> int:
    """The IPv4 address an RFC 6052 address of prefix length ``prefix`` carries (bits 64-71
    are the reserved "u" octet, skipped)."""
    if prefix == 96:
        return value & _V4
    bits = f"{value:0128b}"
    carried = bits[prefix:64] + bits[72 : 72 + 32 - (64 - prefix)]
    return int(carried, 2)


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``address`` carries, by the encodings a translator or a tunnel
    would use to reach it; [] for an IPv4 address or a plain IPv6 one."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    value = int(address)
    found: list[int] = []
    if address.ipv4_mapped is not None:
        found.append(int(address.ipv4_mapped))
    elif (
        address in _SIIT
        or address in _NAT64
        or (address in _IPV4_COMPATIBLE and value > 1)  # not :: nor ::1
    ):
        found.append(value & _V4)
    elif address in _NAT64_LOCAL:  # the operator's prefix length is unknown: try each
        found.extend(_rfc6052(value, length) for length in (48, 56, 64, 96))
    elif address.sixtofour is not None:
        found.append(int(address.sixtofour))
    elif address.teredo is not None:
        server, client = address.teredo
        found.extend((int(server), int(client)))
    return [ipaddress.IPv4Address(v) for v in dict.fromkeys(found)]


def _metadata(address: IPAddress) -> str | None:
    """How ``address`` is a cloud metadata address (itself, or one it embeds), else None."""
    for inner in embedded_ipv4(address):
        if inner in METADATA_ADDRESSES:
            return f"an address wrapping {inner}, a cloud metadata address"
    return "a cloud metadata address" if address in METADATA_ADDRESSES else None


def _kind(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is, or None for a public one."""
    for flag, kind in (
        (address.is_loopback, "a loopback"),
        (address.is_unspecified, "an unspecified"),
        (address.is_link_local, "a link-local"),
        (address.is_multicast, "a multicast"),
        (address.is_reserved, "a reserved"),
        (address.is_private, "a private"),
        (not address.is_global, "a non-public"),
    ):
        if flag:
            return f"{kind} address"
    return None


class UnsafeUrl(Exception):
    """A URL skillwire refuses to deliver to; the message says why (never retried)."""


class Unresolvable(Exception):
    """The host name did not resolve (at delivery time: a network error, retried)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # lower case, IDNA-encoded, no brackets around IPv6, no trailing dot
    port: int


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class UrlGuard:
    def __init__(
        self, *, allow_private: bool, allow_hosts: Iterable[str], resolve_timeout: float = 5.0
    ) -> None:
        self.allow_private = allow_private
        self._hosts = {h.strip().lower().rstrip(".").strip("[]") for h in allow_hosts if h.strip()}
        self._resolve_timeout = resolve_timeout

    # -- the URL itself -----------------------------------------------------------------------
    def parse(self, url: str) -> Target:
        if len(url) > MAX_URL_LENGTH:
            raise UnsafeUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
            raise UnsafeUrl("the URL contains whitespace or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnsafeUrl(f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsafeUrl("only http and https URLs are allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise UnsafeUrl("the URL has no host")
        if _literal(host) is None:
            try:
                host = host.encode("idna").decode("ascii").lower()
            except UnicodeError:
                raise UnsafeUrl(f"{host!r} is not a valid host name") from None
        if port is None:
            port = 443 if scheme == "https" else 80
        return Target(scheme, host, port)

    def host_allowed(self, host: str) -> bool:
        """Listed in ``allow_hosts``: exactly, or under a ``*.example.org`` entry."""
        host = host.lower().rstrip(".")
        if host in self._hosts:
            return True
        return any(h.startswith("*.") and host.endswith(h[1:]) for h in self._hosts)

    # -- addresses ----------------------------------------------------------------------------
    def refusal(self, address: IPAddress) -> str | None:
        """What kind of address ``address`` is when it may not receive webhooks, else None.

        The IPv4 addresses it embeds are judged first (where the packets end up), then the
        address itself."""
        if (metadata := _metadata(address)) is not None:
            return metadata
        if self.allow_private:
            return None
        for inner in embedded_ipv4(address):
            if (kind := _kind(inner)) is not None:
                return f"an address wrapping {inner}, {kind}"
        return _kind(address)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``, each one checked; raises UnsafeUrl."""
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            addresses = await self._lookup(host, port)
        allowed_host = self.host_allowed(host)  # which opens everything but metadata
        for address in addresses:  # every answer must pass, or an attacker mixes one in
            kind = _metadata(address) if allowed_host else self.refusal(address)
            if kind is not None:
                shown = f"{host} resolves to {address}," if literal is None else f"{address} is"
                raise UnsafeUrl(f"{shown} {kind}, which is not allowed")
        return [str(a) for a in addresses]

    async def _lookup(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._resolve_timeout):
                infos = await loop.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise Unresolvable(f"cannot resolve {host}: {exc or 'timed out'}") from None
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            if address not in found:
                found.append(address)
        if not found:
            raise Unresolvable(f"cannot resolve {host}: no addresses")
        return found

    async def check(self, url: str) -> Target:
        """Parse and resolve ``url``; raises UnsafeUrl or Unresolvable."""
        target = self.parse(url)
        await self.resolve(target.host, target.port)
        return target

    async def check_call(self, url: str) -> None:
        """The call-time check: a bad webhook URL is a 422 naming ``webhook_url``."""
        try:
            await self.check(url)
        except (UnsafeUrl, Unresolvable) as exc:
            raise ValidationError(
                f"invalid `webhook_url`: {exc}",
                details={"field": "webhook_url", "constraint": str(exc)},
            ) from None
