"""The listen address: ``[host]:port`` parsing and the listening socket."""

from __future__ import annotations

import contextlib
import socket

from exporter.web.common import (
    LISTEN_BACKLOG,
)


def parse_listen_address(value: str) -> tuple[str, int]:
    """``:10067``, ``0.0.0.0:10067``, ``[::1]:10067``, ``localhost:0`` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid listen address {value!r}: expected [host]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ``""`` listens on every interface (IPv6 and IPv4 where the host has IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "":
        host = "0.0.0.0"
        if socket.has_ipv6:
            try:
                socket.socket(socket.AF_INET6).close()
                family, host = socket.AF_INET6, "::"
            except OSError:
                pass
    if family == socket.AF_INET and host not in ("", "0.0.0.0"):
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        address = infos[0][4]
    else:
        address = (host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
