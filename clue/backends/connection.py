"""How the server backend reaches its server, so that prompts go where the data-use guard cleared them to go.

- No redirect is followed: a 3xx answer is an error naming where it pointed (urllib would re-send the key, and a
  redirect from an approved or loopback endpoint would take the conversation to another host).
- A URL that names this machine (`clue.util.hosts.is_loopback`) is held to it: proxies are bypassed, and a
  connection whose peer is not a loopback address (a hosts file mapping `localhost` elsewhere) is closed before a
  byte of the request is sent.
- `unix_socket` sends every request over that socket (the URL's path still applies; its host is only the Host
  header).
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from typing import Any

from clue.util.hosts import is_loopback, url_host


class NotLoopback(OSError):
    """The URL said this machine; the connection reached another."""


class RedirectRefused(urllib.error.HTTPError):
    """The server answered with a redirect, which clue does not follow."""


def _peer_is_loopback(sock: socket.socket) -> bool:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return True
    return is_loopback(str(sock.getpeername()[0]))  # an address: the rule the guard read the URL by


def _hold(conn: http.client.HTTPConnection) -> None:
    assert conn.sock is not None
    if not _peer_is_loopback(conn.sock):
        peer = conn.sock.getpeername()[0]
        conn.close()
        raise NotLoopback(
            f"{conn.host} resolved to {peer}, which is not this machine: nothing was sent (the data-use guard "
            "trusts a loopback name only while it reaches a loopback address)"
        )


class _LoopbackHTTP(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _hold(self)


class _LoopbackHTTPS(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()  # TLS's handshake carries the host name only; the request follows the check
        _hold(self)


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, *, path: str, timeout: float | None = None, **_: Any) -> None:
        super().__init__(host, timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Through(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens http and https requests with one connection class."""

    def __init__(self, http_class: Any, https_class: Any) -> None:
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self)
        self.http_class, self.https_class = http_class, https_class

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.http_class, req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.https_class, req)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        raise RedirectRefused(
            req.full_url,
            code,
            f"the server redirects to {newurl!r}; clue follows no redirect (prompts and the key go only to "
            "base_url): set base_url to the address that answers",
            headers,
            fp,
        )


def opener(base_url: str, unix_socket: str = "") -> urllib.request.OpenerDirector:
    """The opener the server backend sends every request with (see the module's docstring)."""
    if unix_socket:

        def unix(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            return _UnixHTTP(host, path=unix_socket, **kwargs)

        handlers: list[Any] = [urllib.request.ProxyHandler({}), _Through(unix, unix)]
    elif is_loopback(url_host(base_url)):
        handlers = [urllib.request.ProxyHandler({}), _Through(_LoopbackHTTP, _LoopbackHTTPS)]
    else:
        handlers = []  # the environment's proxies apply to an approved or public host, as urllib's default
    return urllib.request.build_opener(*handlers, _NoRedirect())
