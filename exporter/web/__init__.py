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

The package, by concern: :mod:`~exporter.web.listen` (the listen address and
its socket), :mod:`~exporter.web.middleware` (basic auth, rate limit, errors),
:mod:`~exporter.web.connection` (the header deadline and cap),
:mod:`~exporter.web.tls` (the TLS gate), :mod:`~exporter.web.app` (the
exporter's routes: the status board, from :mod:`exporter.statusboard`, the
telemetry path, health, reload) and :mod:`~exporter.web.server` (the server's
lifecycle); :mod:`~exporter.web.common` holds the limits they share.
"""

from exporter.web.app import App, accepts_gzip, send
from exporter.web.common import (
    ACCEPT_BATCH,
    COMPRESSED_PIECE,
    CONTENT_TYPE,
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    LINGER_SECONDS,
    LISTEN_BACKLOG,
    MAX_BODY_BYTES,
    MAX_FIELD_SIZE,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    METHODS,
    REALM,
    SERVER,
    WRITE_PIECE,
)
from exporter.web.listen import bind, parse_listen_address
from exporter.web.middleware import BasicAuth
from exporter.web.server import HttpServer, WebApp

__all__ = [
    "ACCEPT_BATCH",
    "COMPRESSED_PIECE",
    "CONTENT_TYPE",
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "LINGER_SECONDS",
    "LISTEN_BACKLOG",
    "MAX_BODY_BYTES",
    "MAX_FIELD_SIZE",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_REQUEST_LINE",
    "METHODS",
    "REALM",
    "SERVER",
    "WRITE_PIECE",
    "App",
    "BasicAuth",
    "HttpServer",
    "WebApp",
    "accepts_gzip",
    "bind",
    "parse_listen_address",
    "send",
]
