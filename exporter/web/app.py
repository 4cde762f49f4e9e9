"""The exporter's aiohttp application and its middleware (web config, errors, methods, body limit)."""

from __future__ import annotations

from typing import TYPE_CHECKING
import asyncio
import time
from typing import Awaitable, Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from exporter import statusboard
from exporter.store import Store

from .base import COMPRESSED_PIECE, CONTENT_TYPE, REALM, WRITE_PIECE, _closing, _text, accepts_gzip, log
from .auth import _BCRYPT

if TYPE_CHECKING:
    from .server import HttpServer


# --------------------------------------------------------------------------
# The exporter's application
# --------------------------------------------------------------------------


class App:
    def __init__(self, store: Store, telemetry_path: str = "/metrics", ready: Callable[[], bool] | None = None,
                 reload: Callable[[], tuple[bool, str]] | None = None, shard: tuple[int, int] | None = None,
                 lifecycle: bool = False):
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

    def routes(self, server: "HttpServer") -> list[web.AbstractRouteDef]:
        out = [
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
            return await send(request, [gz.prefix, end], len(gz.prefix) + len(end), CONTENT_TYPE, headers,
                              write_size=COMPRESSED_PIECE)
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


async def send(request: web.Request, pieces: Iterable[bytes], length: int, content_type: str,
               headers: Mapping[str, str] | None = None, write_size: int = WRITE_PIECE) -> web.StreamResponse:
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
                await resp.write(view[start:start + write_size])
    await resp.write_eof()
    return resp


# --------------------------------------------------------------------------
# Middleware: the exporter-toolkit web config, errors, methods, body limit
# --------------------------------------------------------------------------

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _middlewares(server: "HttpServer") -> list:
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
        log.debug("http request", extra={"client": request.remote or "", "method": request.method,
                                         "path": request.path[:200], "status": resp.status})
        return resp

    @web.middleware
    async def rate_limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not server.rate_limiter.allow():
            return _text(429, "Too Many Requests", {"Retry-After": "1"})
        return await handler(request)

    @web.middleware
    async def basic_auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
        auth = server.auth
        header = request.headers.get("Authorization")
        ok = auth.cached(header)
        if ok is None:
            ok = await asyncio.get_running_loop().run_in_executor(_BCRYPT, auth.check, header)
        if not ok:
            return _text(401, "Unauthorized", {"WWW-Authenticate": f'Basic realm="{REALM}"'})
        return await handler(request)

    out = [guard]
    if server.rate_limiter is not None:
        out.append(rate_limit)
    if server.auth is not None:
        out.append(basic_auth)
    return out
