"""The exporter's HTTP endpoints: ``/``, the telemetry path, ``/-/healthy`` and ``/-/ready``.

The telemetry path serves the pre-rendered exposition from the store (or its
pre-compressed gzip twin when the scraper accepts gzip), followed by the handful of
process metrics that prometheus_client renders per scrape.  Nothing here ever
calls a provider.

With a ``--web.config.file`` (:mod:`exporter.webconfig`) the server speaks TLS
and/or asks for HTTP basic auth, as exporter-toolkit does:

* TLS is negotiated per connection in that connection's worker thread, never
  in the accept loop, under the connection timeout: a client that connects and
  never finishes its handshake holds one worker, not the server.  Plain HTTP
  sent to the TLS port gets a short ``400`` ("Client sent an HTTP request to an
  HTTPS server"), like Go's server.
* Basic auth applies to every path, ``/-/healthy`` and ``/-/ready`` included
  (as in exporter-toolkit).  Passwords are checked with ``bcrypt.checkpw``;
  successful checks are cached in memory, keyed by a SHA-256 of user, hash and
  password, so a scrape every few seconds does not pay bcrypt every time.

Against hostile clients:

* request line at most 8 KiB (``414``), header section at most 32 KiB and 100
  fields (``431``), malformed requests ``400``; the connection is then closed
  after reading what the client still sends for a moment, so it sees the
  answer instead of a reset;
* every read and write on a connection times out after 10 s without progress
  (the client is dropped; this also bounds idle keep-alive connections);
* at most 512 connections are served at once (one thread each); past that a new
  connection is answered ``503`` (plain HTTP) and closed at once.  Slow clients hold their
  slot for at most the timeout; a scrape needs just one free slot;
* no traceback is logged for anything a client does: connection errors are
  logged at debug level, without the exception.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import http.client
import logging
import os
import socket
import bisect
import ssl
from urllib.parse import parse_qs
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from exporter import statusboard
from exporter.store import Store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REALM = "whatsapp-number-exporter"

#: Defaults of the limits described in the module docstring.
CONNECTION_TIMEOUT = 10.0
MAX_CONNECTIONS = 512
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
MAX_DISCARDED_BODY = 64 * 1024
LINGER_SECONDS = 1.0

_PLAIN_TO_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                 b"Client sent an HTTP request to an HTTPS server.\n")
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
         b"Retry-After: 1\r\nConnection: close\r\n\r\nToo many connections")


def parse_listen_address(value: str) -> tuple[str, int]:
    """``:10067``, ``0.0.0.0:10067``, ``[::1]:10067``, ``localhost:0`` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid listen address {value!r}: expected [host]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class BasicAuth:
    """HTTP basic auth against bcrypt hashes, with a cache of successful checks.

    Unknown users are checked against a dummy hash of the same cost, so the
    answer takes as long as for a known user with a wrong password.  Failures
    are never cached (each costs one bcrypt), and at most ``max_parallel``
    bcrypt checks run at once, so a flood of wrong passwords cannot take every
    core.
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

    def check(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        if not sep:
            return False
        hashed = self._users.get(user)
        known = hashed is not None
        if hashed is None:
            hashed = self._dummy
        key = hashlib.sha256(b"%d:%s:%s:%s" % (len(user), user, hashed, password)).digest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return known
        with self._parallel:
            with self._lock:  # another thread may have verified the same credentials meanwhile
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return known
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

    def __init__(self, interval: float, burst: int, clock=time.monotonic):
        self._interval = interval
        self._burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler, app: "App", web_config=None,
                 timeout: float = CONNECTION_TIMEOUT, max_connections: int = MAX_CONNECTIONS):
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        elif host == "":
            # Listen on every interface, IPv6 and IPv4 where the host has IPv6.
            if socket.has_ipv6:
                try:
                    socket.socket(socket.AF_INET6).close()
                    self.address_family = socket.AF_INET6
                    address = ("::", address[1])
                except OSError:
                    address = ("0.0.0.0", address[1])
            else:
                address = ("0.0.0.0", address[1])
        self.app = app
        self.web_config = web_config
        self.tls = web_config.tls if web_config is not None else None
        self.ssl_context = self.tls.context if self.tls is not None else None
        self.auth = BasicAuth(web_config.users) if web_config is not None and web_config.users else None
        rl = web_config.rate_limit if web_config is not None else None
        self.rate_limiter = _TokenBucket(rl.interval, rl.burst) if rl else None
        self.extra_headers = tuple(web_config.headers) if web_config is not None else ()
        self.connection_timeout = timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refused = 0
        self._refused_logged_at = 0.0
        super().__init__(address, handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        super().server_bind()

    # -- one thread per connection, at most max_connections of them ----------

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self._refuse(request, client_address)
            return
        try:
            threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name="http-conn", daemon=True).start()
        except RuntimeError:  # the OS would not give us another thread
            self._slots.release()
            self._refuse(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request, client_address):
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= 60:
            self._refused_logged_at = now
            log.warning("connection limit reached, refusing new connections",
                        extra={"max_connections": self.max_connections, "refused_total": self._refused})
        try:
            if self.ssl_context is None:
                request.setblocking(False)
                request.send(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def finish_request(self, request, client_address):
        request.settimeout(self.connection_timeout)
        if self.ssl_context is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        conn = self._handshake(request, client_address)
        if conn is None:
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _handshake(self, sock: socket.socket, client_address) -> ssl.SSLSocket | None:
        """TLS server handshake on an accepted socket, in its worker thread, under the connection timeout."""
        client = str(client_address[0])
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except OSError as e:
            log.debug("connection closed before TLS handshake", extra={"client": client, "error": _err(e)})
            return None
        if not first:
            return None
        if first[0] != 0x16:  # not a TLS handshake record: most likely plain HTTP
            log.debug("plain HTTP request on the TLS port", extra={"client": client})
            try:
                sock.sendall(_PLAIN_TO_TLS)
            except OSError:
                return None
            _linger(sock)
            return None
        try:
            conn = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as e:
            log.debug("TLS setup failed", extra={"client": client, "error": _err(e)})
            return None
        try:
            conn.do_handshake()
        except (OSError, ValueError) as e:
            log.debug("TLS handshake failed", extra={"client": client, "error": _err(e)})
            conn.close()
            return None
        if self.tls.client_allowed_sans and not self.tls.allowed_san(conn.getpeercert()):
            log.debug("client certificate has none of client_allowed_sans", extra={"client": client})
            conn.close()
            return None
        return conn

    def handle_error(self, request, client_address):
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):  # resets, timeouts, TLS errors: the client's doing
            log.debug("connection error", extra={"client": str(client_address[0]), "error": _err(exc)})
        else:
            log.error("connection handler failed", extra={"client": str(client_address[0])}, exc_info=True)


def _err(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError) and getattr(e, "reason", None):
        return str(e.reason)
    return type(e).__name__ + (f": {e.strerror}" if isinstance(e, OSError) and e.strerror else "")


def _linger(sock, seconds: float = LINGER_SECONDS, limit: int = 1024 * 1024) -> None:
    """Half-close, then read and drop what the client still sends for a moment.

    Closing a socket with unread input makes the kernel send a reset, and the
    client may then lose the error answer it has not read yet.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    deadline = time.monotonic() + seconds
    total = 0
    try:
        while total < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            total += len(data)
    except (OSError, ValueError):
        pass


class _HeaderLimit:
    """Wraps the request's input while its header section is read: caps its total size."""

    def __init__(self, raw, limit: int):
        self._raw = raw
        self._left = limit

    def readline(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise http.client.LineTooLong("header section")
        cap = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        line = self._raw.readline(cap)
        self._left -= len(line)
        if self._left < 0:
            raise http.client.LineTooLong("header section")
        return line

    def __getattr__(self, name):
        return getattr(self._raw, name)


class App:
    def __init__(self, store: Store, telemetry_path: str = "/metrics", ready: Callable[[], bool] | None = None,
                 reload: Callable[[], tuple[bool, str]] | None = None, shard: tuple[int, int] | None = None):
        self.store = store
        self.telemetry_path = telemetry_path
        self.ready = ready or store.ready
        #: POST /-/reload: returns (success, one-line message); None where there is no file to reload
        self.reload = reload
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


class Handler(BaseHTTPRequestHandler):
    server_version = "whatsapp-number-exporter"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_TIMEOUT  # replaced by the server's connection timeout in setup()
    disable_nagle_algorithm = True
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"
    # Answer even an unparsable request line with a status line (the stdlib would answer it as HTTP/0.9).
    default_request_version = "HTTP/1.0"

    def setup(self):
        self.timeout = getattr(self.server, "connection_timeout", CONNECTION_TIMEOUT)
        self._linger = False
        self._responded = False
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self._linger:
                _linger(self.connection)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        log.debug("http request", extra={"client": self.client_address[0], "line": (format % args)[:200]})

    def handle_one_request(self):
        """The stdlib's, with tighter limits on the request line and the header section."""
        self._responded = False
        self._status = 200
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            rfile = self.rfile
            self.rfile = _HeaderLimit(rfile, MAX_HEADER_BYTES)
            try:
                parsed = self.parse_request()
            finally:
                self.rfile = rfile
            if not parsed:
                return
            if len(self.requestline.split()) == 2:  # "GET /": HTTP/0.9, which nothing legitimate sends
                self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 is not supported")
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Unsupported method")
                return
            method()
            self.wfile.flush()
        except TimeoutError:
            self.log_error("request timed out")
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        if code >= 400:
            self._linger = True  # the client may still be sending what we refused
        super().send_error(code, message, explain)

    def send_response_only(self, code, message=None):
        self._status = code
        super().send_response_only(code, message)

    def send_response(self, code, message=None):
        self._responded = True
        super().send_response(code, message)

    def end_headers(self):
        if getattr(self, "_status", 200) >= 200:  # not on an interim "100 Continue"
            for name, value in getattr(self.server, "extra_headers", ()):
                self.send_header(name, value)
        super().end_headers()

    def _send(self, status: int, body: bytes | list[bytes], content_type: str = "text/plain; charset=utf-8",
              headers: dict | None = None):
        """Answer with ``body``: bytes, or a short list of byte strings sent one after the other."""
        parts = body if isinstance(body, list) else [body]
        self._send_head(status, sum(map(len, parts)), content_type, headers)
        if self.command != "HEAD":
            for part in parts:
                self.wfile.write(part)

    def _send_head(self, status: int, length: int, content_type: str, headers: dict | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _send_exposition(self, exposition, tail: bytes) -> None:
        """The plain exposition: its pre-rendered pieces, never joined, then the process metrics."""
        self._send_head(200, exposition.length + len(tail), CONTENT_TYPE, {"Vary": "Accept-Encoding"})
        if self.command != "HEAD":
            _send_parts(self.connection, self.wfile, exposition.parts, exposition.offsets)
            self.wfile.write(tail)

    def _discard_body(self) -> bool:
        """Read and drop a request body (GET has none that matters); False when the connection must close."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._linger = True
            return True
        length = self.headers.get("Content-Length")
        if length is None:
            return True
        length = length.strip()
        if not length.isdigit():
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return False
        n = int(length)
        if n > MAX_DISCARDED_BODY:
            self.close_connection = True
            self._linger = True
            return True
        while n > 0:
            chunk = self.rfile.read(min(n, 65536))
            if not chunk:
                self.close_connection = True
                break
            n -= len(chunk)
        return True

    def do_GET(self):
        self._handle(self._route)

    do_HEAD = do_GET

    def do_POST(self):
        self._handle(self._route_post)

    do_PUT = do_POST

    def _handle(self, route):
        if not self._discard_body():
            return
        server = self.server
        limiter = getattr(server, "rate_limiter", None)
        if limiter is not None and not limiter.allow():
            self._send(429, b"Too Many Requests\n", headers={"Retry-After": "1"})
            return
        auth = getattr(server, "auth", None)
        if auth is not None and not auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})
            return
        try:
            route()
        except OSError:
            raise
        except Exception:
            log.error("request failed", extra={"path": self.path[:200]}, exc_info=True)
            if not self._responded:
                self._send(500, b"Internal Server Error\n")
            else:
                self.close_connection = True

    def _route_post(self):
        app: App = self.server.app
        path = self.path.split("?", 1)[0]
        if path != "/-/reload":
            self._send(405, b"Method Not Allowed\n", headers={"Allow": "GET, HEAD"})
        elif app.reload is None:
            self._send(503, b"Reloading is not available in this mode\n")
        else:
            ok, message = app.reload()
            self._send(200 if ok else 500, (message + "\n").encode())

    def _route(self):
        app: App = self.server.app
        path = self.path.split("?", 1)[0]
        if path == app.telemetry_path:
            exposition = app.store.exposition
            tail = app.process_metrics()
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                # One gzip member: the pre-compressed exposition, then the tail compressed now.
                self._send(200, exposition.gzip_parts(tail), CONTENT_TYPE, {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
            else:
                self._send_exposition(exposition, tail)
        elif path == "/":
            query = {k: v[0] for k, v in parse_qs(self.path.partition("?")[2]).items()}
            self._send(200, app.landing_page(query), "text/html; charset=utf-8")
        elif path == "/-/healthy":
            self._send(200, b"Healthy\n")
        elif path == "/-/reload":
            self._send(405, b"Only POST or PUT requests allowed\n", headers={"Allow": "POST, PUT"})
        elif path == "/-/ready":
            if app.ready():
                self._send(200, b"Ready\n")
            else:
                self._send(503, b"Not ready: the first poll round has not finished\n")
        else:
            self._send(404, b"Not found\n")


IOV_MAX = 1024  # buffers per sendmsg() call (the Linux limit)
COALESCE = 1 << 20
SENDMSG_BYTES = 1 << 20


def _send_parts(sock, wfile, parts: list[bytes], offsets: list[int]) -> None:
    """Send many byte strings without joining them: scatter-gather on plain sockets.

    The exposition is tens of thousands of pre-rendered pieces, and
    ``offsets[k]`` is where piece ``k`` ends.  One ``sendmsg`` hands the kernel
    up to 1024 pieces or about 1 MiB; after a short send a bisection finds
    where to resume, so the Python work per call does not grow with the
    number of pieces.  TLS sockets cannot scatter-gather, so pieces are
    coalesced into 1 MiB writes there.
    """
    n = len(parts)
    if not n:
        return
    if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
        start = 0
        while start < n:
            end = min(n, bisect.bisect_right(offsets, (offsets[start - 1] if start else 0) + COALESCE) + 1)
            wfile.write(b"".join(parts[start:end]))
            start = end
        return
    total, pos, i, head = offsets[-1], 0, 0, None
    while pos < total:
        j = min(n, i + IOV_MAX, bisect.bisect_right(offsets, pos + SENDMSG_BYTES) + 1)
        batch = parts[i:j] if head is None else [head, *parts[i + 1 : j]]
        pos += sock.sendmsg(batch)
        i = bisect.bisect_right(offsets, pos)  # the first piece not completely sent
        begin = offsets[i - 1] if i else 0
        head = memoryview(parts[i])[pos - begin :] if i < n and pos > begin else None


class HttpServer:
    """The exporter's HTTP(S) server.

    ``web_config`` is a :class:`exporter.webconfig.WebConfig` (TLS, basic auth,
    headers, rate limit) or None for plain HTTP without auth.  ``timeout`` is
    how long a connection may make no progress; ``max_connections`` how many
    connections are served at once.  ``handler`` serves the requests (the
    webhook receiver brings its own, on the same hardened server).
    """

    thread_name = "http"

    def __init__(self, app, listen_address: str, web_config=None, *,
                 timeout: float = CONNECTION_TIMEOUT, max_connections: int = MAX_CONNECTIONS, handler=None):
        host, port = parse_listen_address(listen_address)
        self.listen_address = listen_address
        self._server = _Server((host, port), handler or Handler, app, web_config, timeout=timeout,
                               max_connections=max_connections)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def tls(self) -> bool:
        return self._server.ssl_context is not None

    @property
    def auth(self) -> BasicAuth | None:
        return self._server.auth

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        if host in ("::", "0.0.0.0"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> "HttpServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, which a bound-only server never ran
            self._server.shutdown()
        self._server.server_close()
