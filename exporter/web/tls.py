"""The TLS gate: plain HTTP on the TLS port refused, the handshake under a deadline, allowed SANs."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from exporter.web.common import (
    LINGER_SECONDS,
    _err,
    _peer,
)

if TYPE_CHECKING:
    from exporter.web.server import HttpServer

log = logging.getLogger("exporter.web")  # the name of the module this package was split from


_PLAIN_TO_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


class _TLSGate(asyncio.Protocol):
    """The first protocol of a TLS connection: sniffs plain HTTP, then hands over to TLS and aiohttp.

    The first byte is peeked (not read) on a duplicate of the socket: a TLS
    handshake record (0x16) goes to ``loop.start_tls``, which performs the
    handshake under the header timeout; anything else is plain HTTP sent to the
    TLS port and gets Go's short ``400``.  After the handshake the client
    certificate is checked against ``client_allowed_sans``, and only then is
    the HTTP protocol attached.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, server: HttpServer, make_protocol: Callable[[], asyncio.Protocol]
    ):
        self._loop = loop
        self._server = server
        self._make_protocol = make_protocol
        self._transport: asyncio.Transport | None = None
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._early: list[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.gates.add(self)
        transport.pause_reading()  # type: ignore[attr-defined]
        self._sock = transport.get_extra_info("socket").dup()
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._peek)
        self._timer = self._loop.call_later(self._server.header_timeout, self._give_up)

    def _drop_peek(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _give_up(self) -> None:
        self._timer = None
        self._drop_peek()
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._drop_peek()
        self._server.gates.discard(self)

    def close(self) -> None:
        self._drop_peek()
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()

    def _peek(self) -> None:
        assert self._sock is not None and self._transport is not None
        try:
            first = self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        self._drop_peek()
        transport = self._transport
        if not first:
            transport.close()
        elif first[0] != 0x16:  # not a TLS handshake record: most likely plain HTTP
            log.debug("plain HTTP request on the TLS port", extra={"client": _peer(transport)})
            transport.write(_PLAIN_TO_TLS)
            transport.resume_reading()  # read and drop what follows for a moment, then close
            self._loop.call_later(LINGER_SECONDS, transport.close)
        else:
            self._early = []
            self._task = self._loop.create_task(self._upgrade(transport))

    def data_received(self, data: bytes) -> None:
        # Plaintext from the TLS layer between the handshake and the HTTP protocol taking over (kept
        # for it), or what follows a refused plain-HTTP request (dropped).
        if self._early is not None:
            self._early.append(data)

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        client = _peer(transport)
        server = self._server
        ssl_context = server.ssl_context
        assert ssl_context is not None  # a gate is made only on a TLS listener
        try:
            tls = await self._loop.start_tls(
                transport, self, ssl_context, server_side=True, ssl_handshake_timeout=server.header_timeout
            )
        except (TimeoutError, OSError, ValueError, ConnectionError) as e:
            log.debug("TLS handshake failed", extra={"client": client, "error": _err(e)})
            transport.close()
            return
        if tls is None:
            transport.close()
            return
        tls_config = server.tls
        if (
            tls_config is not None
            and tls_config.client_allowed_sans
            and not tls_config.allowed_san(tls.get_extra_info("peercert"))
        ):
            log.debug("client certificate has none of client_allowed_sans", extra={"client": client})
            tls.close()
            return
        self._server.gates.discard(self)
        protocol = self._make_protocol()
        tls.set_protocol(protocol)
        protocol.connection_made(tls)
        early, self._early = self._early, None
        if early:
            protocol.data_received(b"".join(early))
