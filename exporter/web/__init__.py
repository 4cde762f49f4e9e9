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

from .base import (
    log as log,
    CONTENT_TYPE as CONTENT_TYPE,
    REALM as REALM,
    SERVER as SERVER,
    HEADER_TIMEOUT as HEADER_TIMEOUT,
    IDLE_TIMEOUT as IDLE_TIMEOUT,
    MAX_REQUEST_LINE as MAX_REQUEST_LINE,
    MAX_FIELD_SIZE as MAX_FIELD_SIZE,
    MAX_HEADERS as MAX_HEADERS,
    MAX_HEADER_BYTES as MAX_HEADER_BYTES,
    MAX_BODY_BYTES as MAX_BODY_BYTES,
    LINGER_SECONDS as LINGER_SECONDS,
    LISTEN_BACKLOG as LISTEN_BACKLOG,
    ACCEPT_BATCH as ACCEPT_BATCH,
    WRITE_PIECE as WRITE_PIECE,
    COMPRESSED_PIECE as COMPRESSED_PIECE,
    METHODS as METHODS,
    parse_listen_address as parse_listen_address,
    accepts_gzip as accepts_gzip,
)
from .auth import (
    BasicAuth as BasicAuth,
)
from .app import (
    App as App,
    send as send,
)
from .server import (
    bind as bind,
    HttpServer as HttpServer,
)

