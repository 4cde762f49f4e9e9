"""The emulators' HTTP layer: aiohttp connection protocol, connection-level faults, request handling and error
replies."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from ..scenario import DATA_FAULT_KINDS, Fault
from .records import ApiError, BodyError, Context, Reply, Request, RequestRecord
from .wire import MAX_BODY_BYTES

if TYPE_CHECKING:
    from .base import ProviderEmulator


# ---------------------------------------------------------------------------
# HTTP server: aiohttp on an event loop in a thread of the emulator's own
#
# Request parsing, keep-alive and chunked bodies are aiohttp's.  The emulator
# answers with the provider's shapes, so a request aiohttp cannot parse still
# gets the provider's error envelope (``handle_error``).  Faults that need the
# connection itself use the transport aiohttp hands over: ``refuse`` aborts a
# new connection before aiohttp sees it (or a reused one before its request is
# read), ``reset`` aborts with SO_LINGER 0 so the peer sees RST, ``truncate``
# sends the headers and half the body and closes, ``oversize`` streams a
# shared padding buffer.  ``delay`` and the providers' own processing run in
# worker threads (``_serve`` is synchronous), never on the loop.

_PADDING = bytearray()


_PADDING_LOCK = threading.Lock()


def _padding(size: int) -> memoryview:
    """``size`` bytes of ``x``, a read-only view of one buffer that only ever grows."""
    global _PADDING
    with _PADDING_LOCK:
        if len(_PADDING) < size:
            _PADDING = bytearray(b"x") * size
        return memoryview(_PADDING).toreadonly()[:size]


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close a connection with RST (SO_LINGER 0) instead of FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    transport.abort()  # type: ignore[attr-defined]


class _Connection(RequestHandler):
    """aiohttp's connection protocol, with the ``refuse`` fault and provider-shaped parse errors."""

    def __init__(self, manager: Any, emulator: ProviderEmulator, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self.emulator = emulator
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.emulator._refuse_now():  # accept the connection and close it at once with a reset, without a byte
            _reset(transport)
            return
        super().connection_made(transport)

    # asyncio's Protocol.eof_received returns bool | None (True keeps the transport open); aiohttp narrows it to None
    def eof_received(self) -> bool:  # type: ignore[override]
        """The client half-closed: answer what it already sent, then close (aiohttp would drop the connection)."""
        self.close()
        return True

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        emulator = self.emulator
        if isinstance(exc, LineTooLong):
            status = 414 if exc.args[1:2] == (MAX_REQUEST_LINE,) else 431
        emulator._logger.debug("%s emulator: unparsable request: %s", emulator.provider_name, exc)
        if status == 400:
            reply = emulator._body_error_reply("", "", emulator._clock(), BodyError(400, "Malformed HTTP request."))
            resp = _response(reply, emulator.server_software, emulator._clock())
        else:
            resp = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}\n")
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        self.emulator._logger.debug("%s emulator: connection error", self.emulator.provider_name)


MAX_REQUEST_LINE = 65536 + 64  # long query strings (a CAMS GET carries every parameter) are legitimate


def _response(reply: Reply, server_software: str, now: float) -> web.Response:
    # The Date header comes from the emulator's clock (``now``), as a real server's from its own.
    resp = web.Response(
        status=reply.status,
        body=reply.body,
        headers={
            "Content-Type": reply.content_type,
            "Server": server_software,
            "Date": formatdate(now, usegmt=True),
            **reply.headers,
        },
    )
    return resp


async def _read_body(request: web.BaseRequest) -> bytes:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise BodyError(413, "The request body is too large.")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyError(413, "The request body is too large.") from None
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        raise BodyError(400, "Malformed request body.") from None


class _ServerMixin:
    """Request handling and error replies of :class:`ProviderEmulator`."""

    # what this mixin uses of the emulator (see the package docstring)
    provider_name: str
    server_software: str
    json_content_type: str
    padding_key: str
    _logger: logging.Logger
    _log_level: int
    _clock: Callable[[], float]
    _lock: threading.RLock
    _records: deque[RequestRecord]
    _workers: ThreadPoolExecutor | None

    if TYPE_CHECKING:

        def _refuse_now(self, method: str = "", path: str = "") -> bool: ...

    # -- hooks for subclasses ------------------------------------------------

    def _new_context(self, req: Request | None) -> Context:
        """A fresh context (``req`` is None when the body could not even be read)."""
        return Context(request_id=str(uuid.uuid4()))

    def _process(self, req: Request, ctx: Context) -> Reply:
        """Answer one request; raise :class:`ApiError` for error answers."""
        raise NotImplementedError

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        raise NotImplementedError

    def _internal_error(self) -> ApiError:
        """The error answered when a handler crashes."""
        return ApiError("InternalError", "Internal error.", 500)

    def _body_error(self, exc: BodyError) -> ApiError:
        """The error answered when the body cannot be read."""
        return ApiError("InvalidParameter", exc.message, exc.status)

    def _fault_error(self, ctx: Context, fault: Fault) -> ApiError:
        """The error an ``error`` fault raises."""
        return ApiError(
            fault.code, fault.message, fault.http_status, retry_after=fault.retry_after, http200=fault.http200
        )

    def _common_headers(self, ctx: Context) -> dict[str, str]:
        """Headers every answer carries (e.g. a request id)."""
        return {}

    def _html_reply(self, ctx: Context) -> Reply:
        """What an ``html`` fault answers: an HTML error page of a proxy in front of the API."""
        page = (
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return Reply(502, page, "text/html", self._common_headers(ctx), code="fault:html")

    def _malformed_reply(self, ctx: Context, reply: Reply) -> Reply:
        """What a ``malformed`` fault answers: HTTP 200 with the first half of the real body."""
        body = reply.body
        return Reply(
            200,
            body[: max(1, len(body) // 2)],
            self.json_content_type,
            self._common_headers(ctx),
            code="fault:malformed",
        )

    def _oversize_reply(self, ctx: Context, reply: Reply, megabytes: float) -> Reply:
        """What an ``oversize`` fault answers: the real answer with one ignored string field
        (:attr:`padding_key`) making the body about ``megabytes`` MiB.  Bodies that are neither a JSON
        object nor an XML document are left alone."""
        body = reply.body
        target = int(megabytes * (1 << 20))
        key = self.padding_key.encode("ascii")
        stripped = body.rstrip()
        if stripped.startswith(b"{") and stripped.endswith(b"}"):
            head = stripped[:-1]
            opening = head.rstrip() + (b"," if head.strip() != b"{" else b"") + b'"' + key + b'":"'
            closing = b'"}'
        elif stripped.startswith(b"<") and stripped.rfind(b"</") > 0:
            cut = stripped.rfind(b"</")
            opening, closing = stripped[:cut] + b"<" + key + b">", b"</" + key + b">" + stripped[cut:]
        else:
            return reply
        fill = max(0, target - len(opening) - len(closing))
        # the padding is one shared buffer sent without a copy: building tens of MiB per answer would hold
        # the GIL long enough to delay every other request of the process (and their arrival times)
        return replace(reply, body=opening, tail=(_padding(fill), closing))

    def _data_fault(self, ctx: Context, payload: Any) -> Any:
        """Providers pass every successful payload through here before encoding it."""
        if ctx.fault in DATA_FAULT_KINDS:
            return self._corrupt_answer(ctx.fault, ctx.action, payload)
        return payload

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        """Apply a data fault (``unknown_enum``, ``null_fields``, ``duplicate_numbers``) to the decoded
        successful answer of ``action``; only called for actions in :attr:`data_fault_actions`."""
        return payload

    # -- request processing ------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The one aiohttp handler: read the body, let the provider answer (in a worker thread), write it."""
        arrival = self._clock()
        conn = cast(_Connection, request.protocol)  # the protocol factory of ProviderEmulator._open
        conn.served += 1
        target = request.raw_path
        if conn.served > 1 and self._refuse_now(request.method, target.split("?", 1)[0]):
            # a keep-alive connection opened before the endpoint started refusing
            _reset(request.transport)
            return web.Response(status=500)  # never sent: the connection is gone
        try:
            body = await _read_body(request)
        except BodyError as exc:
            resp = _response(
                self._body_error_reply(request.method, target, arrival, exc), self.server_software, self._clock()
            )
            resp.force_close()
            return resp
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        req = Request(request.method, target, headers, body, arrival)
        reply = await asyncio.get_running_loop().run_in_executor(self._workers, self._serve, req)
        return await self._write(request, reply)

    async def _write(self, request: web.BaseRequest, reply: Reply) -> web.StreamResponse:
        if reply.reset:
            _reset(request.transport)
            return web.Response(status=500)  # never sent: the connection is gone
        # The Date header comes from the emulator's clock, as a real server's from its own.
        headers = {
            "Content-Type": reply.content_type,
            "Server": self.server_software,
            "Date": formatdate(self._clock(), usegmt=True),
            **reply.headers,
        }
        resp = web.StreamResponse(status=reply.status, headers=headers)
        resp.content_length = len(reply.body) + sum(len(part) for part in reply.tail)
        if reply.truncate:
            # the real status line and headers (full Content-Length, no "Connection: close"), half the body,
            # then the connection is closed as if the server died mid-body
            await resp.prepare(request)
            await resp.write(reply.body[: len(reply.body) // 2])
            transport = request.transport
            if transport is not None:
                if transport.can_write_eof():
                    transport.write_eof()
                transport.close()
            return resp
        await resp.prepare(request)
        await resp.write(reply.body)
        for part in reply.tail:
            for start in range(0, len(part), 1 << 20):
                await resp.write(part[start : start + (1 << 20)])
        return resp

    def _record(self, req_method: str, path: str, arrival: float, ctx: Context, reply: Reply) -> None:
        record = ctx.record(arrival, 0 if reply.reset else reply.status, reply.code, req_method, path)
        with self._lock:
            self._records.append(record)

    def _body_error_reply(self, method: str, target: str, arrival: float, exc: BodyError) -> Reply:
        ctx = self._new_context(None)
        reply = self._error_reply(ctx, self._body_error(exc))
        self._record(method, target.split("?", 1)[0], arrival, ctx, reply)
        return reply

    def _serve(self, req: Request) -> Reply:
        ctx = self._new_context(req)
        ctx.path = req.target.split("?", 1)[0]
        started = time.monotonic()
        try:
            reply = self._process(req, ctx)
        except ApiError as exc:
            reply = self._error_reply(ctx, exc)
        except Exception:  # never let a bug take the server down
            self._logger.exception(
                "%s emulator: unexpected error while handling %s %s", self.provider_name, req.method, req.target[:200]
            )
            reply = self._error_reply(ctx, self._internal_error())
        if ctx.fault == "malformed":
            reply = self._malformed_reply(ctx, reply)
        elif ctx.fault == "truncate" and not reply.reset:
            reply = replace(reply, truncate=True, code="fault:truncate")
        elif ctx.fault == "oversize" and ctx.fault_spec is not None and not reply.reset:
            reply = self._oversize_reply(ctx, reply, ctx.fault_spec.megabytes or 0.0)
        self._record(req.method, ctx.path, req.arrival, ctx, reply)
        self._logger.log(
            self._log_level,
            "%s %s ak=%s space=%s -> %s %s (%.1f ms)",
            req.method,
            ctx.action or "-",
            ctx.access_key_id or "-",
            ctx.space_id or "-",
            "reset" if reply.reset else reply.status,
            reply.code,
            (time.monotonic() - started) * 1000,
        )
        return reply
