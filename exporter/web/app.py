"""The exporter's application: the status board, the telemetry path, health, readiness, reload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from exporter import statusboard
from exporter.store import Store
from exporter.web.common import (
    COMPRESSED_PIECE,
    CONTENT_TYPE,
    WRITE_PIECE,
    _text,
)

if TYPE_CHECKING:
    from exporter.web.server import HttpServer


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
        #: set once shutdown began: reloads are refused (503)
        self.shutting_down = False
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
        if self.shutting_down:
            return _text(503, "Shutting down: the configuration is not reloaded")
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
