"""A dnspython resolver for a configured ``nameserver`` (``ip`` or ``ipv4:port``) or the system's:
one parser of that setting for config validation, DNS service discovery and the audit's DNS checks.
"""

from __future__ import annotations

import ipaddress

import dns.asyncresolver

__all__ = ["make_resolver", "split_nameserver"]


def split_nameserver(text: str) -> tuple[str, int | None] | None:
    """``(ip, port or None)``, or None when ``text`` is not an IP address, optionally IPv4:port
    (an IPv6 address takes no port here: dnspython's ``port`` is separate).

    >>> split_nameserver("10.0.0.2:5353"), split_nameserver("::1"), split_nameserver("dns.example")
    (('10.0.0.2', 5353), ('::1', None), None)
    """
    host, sep, port = text.rpartition(":") if text.count(":") == 1 else ("", "", "")
    addr = host if sep else text
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return None
    if not sep:
        return addr, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return addr, int(port)


def make_resolver(nameserver: str | None, lifetime: float) -> dns.asyncresolver.Resolver:
    """The system's resolver (``nameserver`` None), or one asking only ``nameserver``. Raises
    ``ValueError`` for a nameserver that is not an IP address (config validation rejects those)
    and dnspython's errors when the system has no resolver configuration."""
    resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        parsed = split_nameserver(nameserver)
        if parsed is None:
            raise ValueError(f"invalid nameserver {nameserver!r}")
        resolver.nameservers = [parsed[0]]
        if parsed[1] is not None:
            resolver.port = parsed[1]
    resolver.lifetime = lifetime
    return resolver
