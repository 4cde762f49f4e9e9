"""The server: an aiohttp server on one pre-bound socket, plain HTTP or TLS, started and stopped."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from exporter.web import common as limits
from exporter.web.connection import _Connection
from exporter.web.listen import bind, parse_listen_address
from exporter.web.middleware import BasicAuth, _middlewares, _TokenBucket
from exporter.web.tls import _TLSGate

if TYPE_CHECKING:
    from exporter.webconfig import WebConfig


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
        header_timeout: float = limits.HEADER_TIMEOUT,
        idle_timeout: float = limits.IDLE_TIMEOUT,
        max_body: int = limits.MAX_BODY_BYTES,
        methods: frozenset[str] = limits.METHODS,
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
            response.headers["Server"] = limits.SERVER
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
                max_header_bytes=limits.MAX_HEADER_BYTES,
                keepalive_timeout=self.idle_timeout,
                access_log=None,
                max_line_size=limits.MAX_REQUEST_LINE,
                max_field_size=limits.MAX_FIELD_SIZE,
                max_headers=limits.MAX_HEADERS,
                lingering_time=limits.LINGER_SECONDS,
            )

        factory = http if self.ssl_context is None else (lambda: _TLSGate(loop, self, http))
        # asyncio accepts up to `backlog` connections per wakeup of the listening socket and sets them all
        # up before anything else runs (bpo-27906); a burst of a thousand new connections would then hold a
        # keep-alive scrape for ~0.1 s.  Accept in batches of ACCEPT_BATCH, and give the kernel its deep
        # queue back (create_server() re-listens with `backlog`).
        self._server = await loop.create_server(factory, sock=self._sock, backlog=limits.ACCEPT_BATCH)
        self._sock.listen(limits.LISTEN_BACKLOG)

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
