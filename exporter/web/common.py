"""Limits, names and the short answers shared by the web server's modules."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from http import HTTPStatus

from aiohttp import web

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


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else ""
