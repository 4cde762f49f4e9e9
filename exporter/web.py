"""The exporter's HTTP endpoints on aiohttp: ``/``, the telemetry path, ``/-/healthy``, ``/-/ready``, ``/-/reload``.

The telemetry path serves the pre-rendered exposition from the store (or its
gzip twin, compressed once per generation off the event loop, when the scraper
accepts gzip), followed by the handful of process metrics that
prometheus_client renders per scrape.  Nothing here ever calls a provider.

The server is aiohttp's (request parsing, keep-alive, chunked bodies), run on
an asyncio event loop: the command line's main loop, or, for tests and tools
that call :meth:`HttpServer.start` from ordinary threads, a loop of its own in
a background thread.  Handlers only read the store's published, immutable
exposition; the poller threads that publish never touch the loop.

With a ``--web.config.file`` (:mod:`exporter.webconfig`) the server speaks TLS
and/or asks for HTTP basic auth, as exporter-toolkit does, through an
``ssl.SSLContext`` and aiohttp middleware:

* TLS: plain HTTP sent to the TLS port gets a short ``400`` ("Client sent an
  HTTP request to an HTTPS server"), like Go's server; a handshake must finish
  within the header timeout; ``client_allowed_sans`` is checked on the
  verified client certificate before any request is read.
* Basic auth applies to every path, ``/-/healthy`` and ``/-/ready`` included
  (as in exporter-toolkit).  Passwords are checked with ``bcrypt.checkpw`` in
  worker threads; successful checks are cached in memory, keyed by a SHA-256 of
  user, hash and password, so a scrape every few seconds does not pay bcrypt.
* ``rate_limit`` answers ``429`` past the bucket; ``http_server_config.headers``
  go on every answer.

Against hostile clients (each covered by tests over real sockets):

* a request's header section must arrive complete within
  :data:`HEADER_TIMEOUT` (10 s, Go's ``ReadHeaderTimeout`` in exporter-toolkit)
  of the connection's start or of the request's first byte, and may hold at
  most :data:`MAX_HEADER_BYTES` (``431``), :data:`MAX_HEADERS` fields
  (``431``) of :data:`MAX_FIELD_SIZE` bytes (``431``); the request line at most
  :data:`MAX_REQUEST_LINE` bytes (``414``); an idle keep-alive connection is
  closed after :data:`IDLE_TIMEOUT`;
* aiohttp's parser answers ``400`` to malformed request lines, conflicting or
  repeated ``Content-Length`` and ``Transfer-Encoding`` with ``Content-Length``
  (no request smuggling); an HTTP/0.9 request line (``GET /`` and nothing
  else) gets ``400`` at once; unknown methods ``501``; bodies over
  :data:`MAX_BODY_BYTES` ``413``;
* ``POST``/``PUT /-/reload`` exists only with ``--web.enable-lifecycle``
  (``404`` otherwise), behind basic auth when it is configured;
* no traceback is logged for anything a client does (debug level, without the
  exception); a bug in a handler answers ``500`` and is logged as an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from exporter import statusboard
from exporter.store import Store

if TYPE_CHECKING:
    from exporter.webconfig import WebConfig

log = logging.getLogger(__name__)

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

_PLAIN_TO_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


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


class BasicAuth:
    """HTTP basic auth against bcrypt hashes, with a cache of successful checks.

    Unknown users are checked against a dummy hash of the same cost, so the
    answer takes as long as for a known user with a wrong password.  Failures
    are never cached (each costs one bcrypt), and at most ``max_parallel``
    bcrypt checks run at once, so a flood of wrong passwords cannot take every
    core.  :meth:`check` blocks (bcrypt): the server calls it in a worker
    thread, after :meth:`cached` found no cached success.
    """

    CACHE_SIZE = 256

    def __init__(self, users: Mapping[str, bytes], max_parallel: int = 4):
        import bcrypt  # imported only when basic auth is configured

        self._bcrypt = bcrypt
        self._users = {u.encode("utf-8"): h for u, h in users.items()}
        cost = min((int(h.split(b"$")[2]) for h in self._users.values()), default=10)
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost))
        self._cache: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._parallel = threading.BoundedSemaphore(max_parallel)
        self.bcrypt_checks = 0  # how many times bcrypt actually ran (for tests and debugging)

    def _key(self, authorization: str | None) -> tuple[bytes, bytes, bytes, bool] | None:
        """(cache key, password, hash, known user) of a well-formed basic credential, else None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            return None
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        hashed = self._users.get(user)
        known = hashed is not None
        if hashed is None:
            hashed = self._dummy
        key = hashlib.sha256(b"%d:%s:%s:%s" % (len(user), user, hashed, password)).digest()
        return key, password, hashed, known

    def _hit(self, key: bytes) -> bool:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
            return False

    def cached(self, authorization: str | None) -> bool | None:
        """True for a cached success, False for a malformed credential, None when bcrypt must decide."""
        parsed = self._key(authorization)
        if parsed is None:
            return False
        return True if self._hit(parsed[0]) and parsed[3] else None

    def check(self, authorization: str | None) -> bool:
        parsed = self._key(authorization)
        if parsed is None:
            return False
        key, password, hashed, known = parsed
        if self._hit(key):
            return known
        with self._parallel:
            if self._hit(key):  # another thread verified the same credentials meanwhile
                return known
            with self._lock:
                self.bcrypt_checks += 1
            try:
                ok = self._bcrypt.checkpw(password, hashed)
            except ValueError:  # e.g. a password longer than bcrypt's 72 bytes
                ok = False
        ok = ok and known
        if ok:
            with self._lock:
                self._cache[key] = None
                while len(self._cache) > self.CACHE_SIZE:
                    self._cache.popitem(last=False)
        return ok


class _TokenBucket:
    """exporter-toolkit's ``rate_limit``: one request per *interval*, bursts up to *burst*, for the whole server."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def allow(self) -> bool:  # called on the event loop only
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


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


# --------------------------------------------------------------------------
# The connection: aiohttp's, with a header deadline and a cap on the header section
# --------------------------------------------------------------------------


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

    # -- the watch ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
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
        else:
            self._seen += len(data)
            self._tail = window[-3:]
        if self._seen > self._max_header_bytes:
            return 431, "Request Header Fields Too Large"
        return None

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


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else ""


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


# --------------------------------------------------------------------------
# The exporter's application
# --------------------------------------------------------------------------


class App:
    def __init__(
        self,
        store: Store,
        telemetry_path: str = "/metrics",
        ready: Callable[[], bool] | None = None,
        reload: Callable[[], tuple[bool, str]] | None = None,
        shard: tuple[int, int] | None = None,
        lifecycle: bool = False,
    ):
        self.store = store
        self.telemetry_path = telemetry_path
        self.ready = ready or store.ready
        #: POST /-/reload: returns (success, one-line message); None where there is no file to reload.
        #: Blocking: the server runs it in a worker thread.
        self.reload = reload
        #: --web.enable-lifecycle: whether /-/reload exists at all
        self.lifecycle = lifecycle
        self.shard = shard
        self.started_at = time.time()
        self._process = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self._process)
        PlatformCollector(registry=self._process)

    def process_metrics(self) -> bytes:
        return generate_latest(self._process)

    def landing_page(self, query: dict[str, str] | None = None) -> bytes:
        """The status board: rendered from the store's snapshots, never from a provider."""
        return statusboard.render(self.store, self.telemetry_path, time.time(), query, shard=self.shard)

    # -- routes ------------------------------------------------------------------

    def routes(self, server: HttpServer) -> list[web.AbstractRouteDef]:
        out: list[web.AbstractRouteDef] = [
            web.get(self.telemetry_path, self.metrics),
            web.get("/", self.index),
            web.get("/-/healthy", self.healthy),
            web.get("/-/ready", self.readiness),
        ]
        if self.lifecycle:
            out += [web.post("/-/reload", self.reload_config), web.put("/-/reload", self.reload_config)]
        return out

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        exposition = self.store.exposition
        tail = self.process_metrics()
        headers = {"Vary": "Accept-Encoding"}
        if accepts_gzip(request.headers.get("Accept-Encoding")):
            compressed = exposition.gzip()
            # cached (the usual case): no round trip through the loop's thread-safe wakeup
            gz = compressed.result() if compressed.done() else await asyncio.wrap_future(compressed)
            headers["Content-Encoding"] = "gzip"
            end = gz.finish(tail)
            return await send(
                request, [gz.prefix, end], len(gz.prefix) + len(end), CONTENT_TYPE, headers, write_size=COMPRESSED_PIECE
            )
        joined = exposition.plain()
        body = joined.result() if joined.done() else await asyncio.wrap_future(joined)
        return await send(request, [body, tail], len(body) + len(tail), CONTENT_TYPE, headers)

    async def index(self, request: web.Request) -> web.StreamResponse:
        query = {k: v for k, v in request.query.items()}
        # a page of thousands of numbers takes a while to render: not on the loop, which keeps serving scrapes
        page = await asyncio.get_running_loop().run_in_executor(None, self.landing_page, query)
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def healthy(self, request: web.Request) -> web.StreamResponse:
        return _text(200, "Healthy")

    async def readiness(self, request: web.Request) -> web.StreamResponse:
        if self.ready():
            return _text(200, "Ready")
        return _text(503, "Not ready: the first poll round has not been published yet")

    async def reload_config(self, request: web.Request) -> web.StreamResponse:
        if self.reload is None:
            return _text(503, "Reloading is not available in this mode")
        ok, message = await asyncio.get_running_loop().run_in_executor(None, self.reload)
        return _text(200 if ok else 500, message)


async def send(
    request: web.Request,
    pieces: Iterable[bytes],
    length: int,
    content_type: str,
    headers: Mapping[str, str] | None = None,
    write_size: int = WRITE_PIECE,
) -> web.StreamResponse:
    """Answer 200 with the ``length`` bytes of ``pieces``, written one after the other, each drained."""
    resp = web.StreamResponse(status=200, headers=headers)
    resp.headers["Content-Type"] = content_type
    resp.content_length = length
    await resp.prepare(request)
    # The headers go out on their own: aiohttp would otherwise join them with the first piece, a copy of
    # that piece on Python < 3.12.9 (it avoids transport.writelines there).
    request.writer.send_headers()
    if request.method != "HEAD":
        for piece in pieces:
            view = memoryview(piece)
            for start in range(0, len(view), write_size):
                await resp.write(view[start : start + write_size])
    await resp.write_eof()
    return resp


# --------------------------------------------------------------------------
# Middleware: the exporter-toolkit web config, errors, methods, body limit
# --------------------------------------------------------------------------

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _middlewares(server: HttpServer) -> list[Middleware]:
    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Unknown methods 501, HTTP/0.9 400, bodies over the limit 413; a bug answers 500 and is logged."""
        if request.version < (1, 0):
            return _closing(_text(400, "HTTP/0.9 is not supported"))
        if request.method not in server.methods:
            return _closing(_text(501, "Not Implemented"))
        length = request.content_length
        if server.refuse_large_bodies and length is not None and length > server.max_body:
            return _closing(_text(413, f"Payload Too Large: at most {server.max_body} bytes"))
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            # aiohttp's 404 and 405 (with its Allow header), in the exporter's short form
            resp = _text(e.status, None, {k: v for k, v in e.headers.items() if k.lower() == "allow"})
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            log.error("request failed", extra={"path": request.path[:200]}, exc_info=True)
            resp = _text(500, "Internal Server Error")
        # never the query string: on the webhook port it carries tokens
        log.debug(
            "http request",
            extra={
                "client": request.remote or "",
                "method": request.method,
                "path": request.path[:200],
                "status": resp.status,
            },
        )
        return resp

    limiter, auth = server.rate_limiter, server.auth

    @web.middleware
    async def rate_limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
        assert limiter is not None  # installed only with a limiter
        if not limiter.allow():
            return _text(429, "Too Many Requests", {"Retry-After": "1"})
        return await handler(request)

    @web.middleware
    async def basic_auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
        assert auth is not None  # installed only with users
        header = request.headers.get("Authorization")
        ok = auth.cached(header)
        if ok is None:
            ok = await asyncio.get_running_loop().run_in_executor(_BCRYPT, auth.check, header)
        if not ok:
            return _text(401, "Unauthorized", {"WWW-Authenticate": f'Basic realm="{REALM}"'})
        return await handler(request)

    out: list[Middleware] = [guard]
    if limiter is not None:
        out.append(rate_limit)
    if auth is not None:
        out.append(basic_auth)
    return out


#: where bcrypt runs (it takes ~0.1 s of CPU; BasicAuth lets 4 run at once)
_BCRYPT = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bcrypt")


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


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


class _LoopThread:
    """An event loop running in a daemon thread, for servers started from ordinary (non-async) code."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class WebApp(Protocol):
    """What an :class:`HttpServer` serves: an application that lists its routes."""

    def routes(self, server: HttpServer) -> Sequence[web.AbstractRouteDef]: ...


class HttpServer:
    """An aiohttp server on one pre-bound socket, plain HTTP or TLS, with the web config's middleware.

    The socket is bound by the constructor, so a port that is taken raises
    ``OSError`` at once.  ``app`` provides ``routes(server)`` (the exporter's
    :class:`App`, or the webhook receiver).  ``loop`` is the event loop to
    serve on; without one, :meth:`start` runs a loop in a background thread.
    :meth:`start` and :meth:`stop` block until done and may be called from any
    thread except the loop's own; on the loop, await :meth:`serve` and
    :meth:`close` instead.
    """

    thread_name = "http"

    def __init__(
        self,
        app: WebApp,
        listen_address: str,
        web_config: WebConfig | None = None,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        max_body: int = MAX_BODY_BYTES,
        methods: frozenset[str] = METHODS,
        refuse_large_bodies: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
    ):
        host, port = parse_listen_address(listen_address)
        self.listen_address = listen_address
        self.app = app
        self.tls = web_config.tls if web_config is not None else None
        self.ssl_context: ssl.SSLContext | None = self.tls.context if self.tls is not None else None
        self.auth = BasicAuth(web_config.users) if web_config is not None and web_config.users else None
        rl = web_config.rate_limit if web_config is not None else None
        self.rate_limiter = _TokenBucket(rl.interval, rl.burst) if rl else None
        self.extra_headers = tuple(web_config.headers) if web_config is not None else ()
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.max_body = max_body
        self.methods = methods
        #: answer 413 before routing when Content-Length says too much (False: the routes do it themselves)
        self.refuse_large_bodies = refuse_large_bodies
        self._loop = loop
        self._own: _LoopThread | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        #: TLS connections still before their handshake (not yet known to aiohttp)
        self.gates: set[_TLSGate] = set()
        self._sock = bind(host, port)
        #: (host, port), or (host, port, flowinfo, scope_id) for IPv6
        self._address: tuple[str, int] | tuple[str, int, int, int] = self._sock.getsockname()

    # -- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def url(self) -> str:
        host = self._address[0]
        if host in ("::", "0.0.0.0"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    # -- on the loop -----------------------------------------------------------------

    def application(self) -> web.Application:
        application = web.Application(middlewares=_middlewares(self), client_max_size=self.max_body)
        application.add_routes(self.app.routes(self))

        async def headers(request: web.Request, response: web.StreamResponse) -> None:
            response.headers["Server"] = SERVER
            for name, value in self.extra_headers:
                response.headers[name] = value

        application.on_response_prepare.append(headers)
        return application

    async def serve(self) -> None:
        """Start serving on the running loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        runner = web.AppRunner(self.application(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        manager = runner.server
        assert manager is not None  # made by setup()

        def http() -> _Connection:
            return _Connection(
                manager,
                loop=loop,
                header_timeout=self.header_timeout,
                max_header_bytes=MAX_HEADER_BYTES,
                keepalive_timeout=self.idle_timeout,
                access_log=None,
                max_line_size=MAX_REQUEST_LINE,
                max_field_size=MAX_FIELD_SIZE,
                max_headers=MAX_HEADERS,
                lingering_time=LINGER_SECONDS,
            )

        factory = http if self.ssl_context is None else (lambda: _TLSGate(loop, self, http))
        # asyncio accepts up to `backlog` connections per wakeup of the listening socket and sets them all
        # up before anything else runs (bpo-27906); a burst of a thousand new connections would then hold a
        # keep-alive scrape for ~0.1 s.  Accept in batches of ACCEPT_BATCH, and give the kernel its deep
        # queue back (create_server() re-listens with `backlog`).
        self._server = await loop.create_server(factory, sock=self._sock, backlog=ACCEPT_BATCH)
        self._sock.listen(LISTEN_BACKLOG)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for gate in list(self.gates):
            gate.close()
        if self._runner is not None:
            await self._runner.cleanup()  # closes the connections still open
        self._server = self._runner = None

    # -- from ordinary threads ---------------------------------------------------------

    def _not_on_the_loop(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self._loop:
            raise RuntimeError("HttpServer.start()/stop() would block the loop it serves on: await serve()/close()")

    def start(self) -> HttpServer:
        self._not_on_the_loop()
        if self._loop is None:
            self._own = _LoopThread(f"{self.thread_name}:{self.port}")
            self._loop = self._own.loop
        asyncio.run_coroutine_threadsafe(self.serve(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        self._not_on_the_loop()
        if self._server is None and self._runner is None:  # bound, never started
            self._sock.close()
        elif self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(timeout=30)
        if self._own is not None:
            self._own.close()
            self._own = None
            self._loop = None
