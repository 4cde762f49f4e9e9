"""Constants and small helpers of the exporter's HTTP server: limits, listen addresses, gzip negotiation, error text."""

from __future__ import annotations

import logging
import ssl
from http import HTTPStatus
from typing import Mapping

from aiohttp import web


log = logging.getLogger("exporter.web")  # the name it had as exporter/web.py (it shows in the logs)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


REALM = "whatsapp-number-exporter"


SERVER = "whatsapp-number-exporter"


#: Limits described in the module docstring.
HEADER_TIMEOUT = 10.0


IDLE_TIMEOUT = 120.0


MAX_REQUEST_LINE = 8192


MAX_FIELD_SIZE = 8190  # one less than the request line: tells aiohttp's two LineTooLong apart (414 / 431)


MAX_HEADERS = 100


MAX_HEADER_BYTES = 32 * 1024


MAX_BODY_BYTES = 64 * 1024


LINGER_SECONDS = 1.0


LISTEN_BACKLOG = 1024  # connections the kernel queues before accept


ACCEPT_BATCH = 8  # connections accepted per event-loop iteration


#: bytes handed to the transport at once, then drained: what the socket cannot take at once is copied into the
#: transport's buffer, so large bodies go in 1 MiB pieces (the uncompressed body: 82 MB at 10,000 numbers);
#: a body up to COMPRESSED_PIECE (the gzip body: 2.4 MB there) goes in one write
WRITE_PIECE = 1 << 20


COMPRESSED_PIECE = 8 << 20


METHODS = frozenset({"GET", "HEAD", "POST", "PUT"})


_PLAIN_TO_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                 b"Client sent an HTTP request to an HTTPS server.\n")


def parse_listen_address(value: str) -> tuple[str, int]:
    """``:10067``, ``0.0.0.0:10067``, ``[::1]:10067``, ``localhost:0`` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid listen address {value!r}: expected [host]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip, q-values honoured (``gzip;q=0`` forbids it)."""
    if not header:
        return False
    gz = star = None
    for item in header.split(","):
        name, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        name = name.strip().lower()
        if name in ("gzip", "x-gzip"):
            gz = max(q, gz or 0.0)
        elif name == "*":
            star = q
    if gz is not None:
        return gz > 0
    return star is not None and star > 0


def _err(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError) and getattr(e, "reason", None):
        return str(e.reason)
    return type(e).__name__ + (f": {e.strerror}" if isinstance(e, OSError) and e.strerror else "")


def _text(status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
    body = f"{message or HTTPStatus(status).phrase}\n"
    return web.Response(status=status, text=body, content_type="text/plain", charset="utf-8", headers=headers)


def _closing(resp: web.StreamResponse) -> web.StreamResponse:
    """``resp``, after which the connection is closed (the client may still be sending what was refused)."""
    resp.force_close()
    return resp


def _peer(transport) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else ""
