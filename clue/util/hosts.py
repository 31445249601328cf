"""Hosts as the data-use guard reads them: from the text of a URL, never resolved (clue/backends/data_use.py)."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from clue.errors import ConfigError

_AUTHORITY = re.compile(r"(?P<host>\[[0-9A-Za-z:.%]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?")
# LDH labels, and "_" (container service names such as vllm_server carry one)
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?)*")


def url_host(url: str) -> str:
    """The host of an http(s) URL, lower-cased, an IPv6 literal without brackets; ConfigError when the authority is
    not a plain ASCII host name or address with an optional port (user-info, Unicode, odd characters)."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ConfigError(
            f"{url!r} is not plain printable ASCII: write an internationalised host name in its xn-- (punycode) "
            "form, with no spaces or control characters"
        )
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise ConfigError(f"{url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{url!r} is not an http(s) URL")
    match = _AUTHORITY.fullmatch(parts.netloc)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise ConfigError(f"{url!r}: the host part {parts.netloc!r} is not a host name or address with a port")
    return normal_host(match["host"], url)


def normal_host(host: str, where: str) -> str:
    """A host as the guard compares it: lower case, brackets stripped; an address or an LDH name."""
    host = host.lower()
    if host.startswith("[") or ":" in host:
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{where}: {host!r} is not a host name or an IPv6 address") from None
        return host
    if host.endswith("."):  # "localhost." is localhost; "127.0.0.1." is a name the resolver is asked about
        host = host[:-1]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            raise ConfigError(f"{where}: {host + '.'!r} is an address with a trailing dot: write {host!r}")
    if not _HOST.fullmatch(host) or len(host) > 253:
        raise ConfigError(f"{where}: {host!r} is not a host name (letters, digits, '-' and '.'; IDNs as xn--)")
    return host


def is_loopback(host: str) -> bool:
    """Whether a normalised host names this machine by its text alone: a loopback address (an IPv4-mapped one too)
    or `localhost` / `*.localhost` (RFC 6761; held to a loopback peer when connecting)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # "127.1", "0x7f.0.0.1", "2130706433": not written as an address, never taken for one
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
