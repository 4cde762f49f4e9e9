"""The connection: aiohttp's, with a header deadline and a cap on the header section."""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from exporter.lane import lane
from exporter.web.common import (
    LINGER_SECONDS,
    MAX_REQUEST_LINE,
    _err,
    _peer,
    _text,
)

log = logging.getLogger("exporter.web")  # the name of the module this package was split from


class _Connection(RequestHandler):
    """aiohttp's per-connection protocol, plus the two limits it lacks.

    Why here: aiohttp bounds the *idle* wait for a request (``keepalive_timeout``)
    and each header line, but not how long a client may take to send its
    header section, nor its total size.  A client that sends one header line
    every few seconds keeps a connection (and its parser state) forever, and a
    thousand of them are cheap for an attacker.  Go's ``http.Server`` has
    ``ReadHeaderTimeout`` for that; aiohttp has no option, and its parser is C
    code that reports only complete messages.  The protocol object is the one
    place that sees every byte before the parser and the moment a response is
    done, so the deadline lives here, as a timer on the event loop (no thread,
    no socket option):

    * it is armed when the connection is made (a client that connects and
      sends nothing is bounded too) and, after a response, at the first byte of
      the next request; it is disarmed when the blank line ending the header
      section arrives; on expiry the connection is closed without an answer
      (as Go does);
    * the bytes of the header section are counted on the way in; past
      :data:`MAX_HEADER_BYTES` the client gets ``431`` and the connection is
      closed, before the parser buffers more;
    * a first line that has the HTTP/0.9 shape (method and path, no version)
      gets ``400`` at once instead of waiting for headers that never come.

    The same two moments tell the poll's lane (:mod:`exporter.lane`) that a
    request is being answered, from the end of its header section until its
    answer is written (or the connection is lost): poll steps wait meanwhile,
    for at most ``MAX_PAUSE``, so a scrape's few loop passes carry no poll work.

    Only the first request of a pipelined burst is watched this way; the ones
    queued behind it are bounded by aiohttp's own per-line and per-count
    limits and by the idle timeout.  Nothing here parses the request: that
    stays aiohttp's.
    """

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        header_timeout: float,
        max_header_bytes: int,
        **kwargs: Any,
    ):
        super().__init__(manager, loop=loop, **kwargs)
        self._header_timeout = header_timeout
        self._max_header_bytes = max_header_bytes
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting = True  # the next bytes belong to a request's header section
        self._seen = 0  # bytes of that header section so far
        self._tail = b""  # its last bytes, to find the blank line across reads
        self._first_line: bytes | None = b""  # None once checked
        self._refused = False
        self._answering = False  # told the lane that a request is being answered (exporter.lane)

    # -- the watch ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._answered()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # an answer was sent: read and drop what the client still sends, until the close
        if self._awaiting and data:
            if self._deadline is None:
                self._arm()
            problem = self._watch(data)
            if problem is not None:
                self._refuse(*problem)
                return
        super().data_received(data)

    def eof_received(self) -> bool:  # type: ignore[override]  # aiohttp says None; asyncio.Protocol allows True
        """The client half-closed: answer what it already sent, then close (aiohttp would drop the connection)."""
        self.close()
        return True

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._answered()
            # the next bytes start the next request: its deadline is armed when its first byte arrives
            self._awaiting, self._seen, self._tail, self._first_line = True, 0, b"", b""

    def _watch(self, data: bytes) -> tuple[int, str] | None:
        if self._first_line is not None:
            line = (self._first_line + data[: MAX_REQUEST_LINE + 2]).lstrip(b"\r\n")
            end = line.find(b"\n")
            if end >= 0:
                self._first_line = None
                if len(line[:end].split()) == 2:  # "GET /": HTTP/0.9, which nothing legitimate sends
                    return 400, "HTTP/0.9 is not supported"
            elif len(line) <= MAX_REQUEST_LINE:
                self._first_line = line
            else:
                self._first_line = None  # aiohttp answers 414
        window = self._tail + data
        end = window.find(b"\r\n\r\n")
        if end < 0:
            end = window.find(b"\n\n")
        if end >= 0:
            self._seen += end - len(self._tail)
            self._awaiting = False
            self._disarm()
            if not self._answering:  # the request is answered before the poll's next step
                self._answering = True
                lane().request_started()
        else:
            self._seen += len(data)
            self._tail = window[-3:]
        if self._seen > self._max_header_bytes:
            return 431, "Request Header Fields Too Large"
        return None

    def _answered(self) -> None:
        if self._answering:
            self._answering = False
            lane().request_done()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self._loop.call_later(self._header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._awaiting and self.transport is not None:
            log.debug(
                "request headers not received in time: connection closed",
                extra={"client": _peer(self.transport), "header_timeout_seconds": self._header_timeout},
            )
            self.force_close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close, after a moment in which what the client still sends is dropped.

        Closing with unread input makes the kernel send a reset, and the client
        could lose the answer it has not read yet.
        """
        self._refused = True
        self._disarm()
        transport = self.transport
        if transport is None:
            return
        log.debug("request refused", extra={"client": _peer(transport), "status": status, "reason": message})
        body = f"{message}\n".encode()
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, HTTPStatus(status).phrase.encode(), len(body), body)
        )
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(LINGER_SECONDS, self.force_close)

    # -- aiohttp's error answers ---------------------------------------------------

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """Parse errors: a short answer that never echoes the request, logged at debug level without a traceback."""
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else None
            status = 414 if limit == MAX_REQUEST_LINE else 431
        elif isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc):
            status = 431
        log.debug(
            "bad request",
            extra={"client": request.remote or "", "status": status, "error": type(exc).__name__ if exc else ""},
        )
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had begun")
        resp = _text(status)
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp's "Error handling request": the client's doing, logged at debug level."""
        exc = kwargs.get("exc_info")
        log.debug("connection error", extra={"error": _err(exc) if isinstance(exc, BaseException) else ""})
