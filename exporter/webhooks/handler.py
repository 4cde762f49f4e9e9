"""The HTTP side: the receiver's aiohttp routes, the request body, and its listener."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web as aioweb

from exporter import web
from exporter.webhooks.vocabulary import (
    _TEXT,
    MAX_BODY_BYTES,
)

if TYPE_CHECKING:
    from exporter.webhooks.receiver import Reply, WebhookReceiver

log = logging.getLogger("exporter.webhooks")  # the name of the module this package was split from


#: seconds a request body may take to arrive
BODY_TIMEOUT = 10.0


_POST_PATHS = {"/webhooks/meta": "meta", "/webhooks/nxcloud": "nxcloud"}
_GET_PATHS = {"/webhooks/meta": "meta", "/webhooks/kaleyra": "kaleyra"}


class _BodyError(Exception):
    def __init__(self, reason: str, status: int, message: str):
        super().__init__(message)
        self.reason, self.status, self.message = reason, status, message


def _answer(
    status: int, body: bytes = b"", content_type: str = _TEXT, headers: Mapping[str, str] | None = None
) -> aioweb.Response:
    return aioweb.Response(status=status, body=body, headers={"Content-Type": content_type, **(headers or {})})


class _Routes:
    """The receiver's HTTP side: one catch-all aiohttp route, since which endpoints exist changes on reload."""

    def __init__(self, receiver: WebhookReceiver):
        self.receiver = receiver

    def routes(self, server: web.HttpServer) -> list[aioweb.AbstractRouteDef]:
        return [aioweb.route("*", "/{path:.*}", self.dispatch)]

    async def dispatch(self, request: aioweb.Request) -> aioweb.StreamResponse:
        app, path, method = self.receiver, request.path, request.method
        if method == "HEAD":  # a HEAD never acts on an event
            if path == "/-/healthy":
                return _answer(200, b"Healthy\n")
            if path in _GET_PATHS or path in _POST_PATHS:
                allow = ", ".join(m for m, paths in (("GET", _GET_PATHS), ("POST", _POST_PATHS)) if path in paths)
                return _answer(405, headers={"Allow": allow})
            return _answer(404)
        if method == "GET":
            if path == "/-/healthy":
                return _answer(200, b"Healthy\n")
            if path in _GET_PATHS and app.enabled(_GET_PATHS[path]):
                query = request.query_string
                if _GET_PATHS[path] == "meta":
                    return self._reply(request, lambda: app.handle_meta_verify(query))
                return self._reply(request, lambda: app.handle_kaleyra(query))
            if path in _POST_PATHS and app.enabled(_POST_PATHS[path]):
                return _answer(405, b"Method Not Allowed\n", headers={"Allow": "POST"})
            return _answer(404, b"Not found\n")
        if method == "POST":
            provider = _POST_PATHS.get(path)
            if provider is None or not app.enabled(provider):
                if path in _GET_PATHS and app.enabled(_GET_PATHS[path]):
                    return _answer(405, b"Method Not Allowed\n", headers={"Allow": "GET"})
                return _answer(404, b"Not found\n")
            try:
                body = await self._read_body(request)
            except _BodyError as e:
                app.reject(provider, e.reason)
                resp = _answer(e.status, (e.message + "\n").encode())
                resp.force_close()  # the client may still be sending what was refused
                return resp
            headers = _header_lists(request)
            if provider == "meta":
                return self._reply(request, lambda: app.handle_meta(headers, body))
            return self._reply(request, lambda: app.handle_nxcloud(headers, body))
        return _answer(405, b"Method Not Allowed\n", headers={"Allow": "GET, POST"})

    @staticmethod
    def _reply(request: aioweb.Request, fn: Callable[[], Reply]) -> aioweb.StreamResponse:
        try:
            reply = fn()
        except Exception:
            log.error("webhook request failed", extra={"path": request.path[:200]}, exc_info=True)
            return _answer(500, b"Internal Server Error\n")
        return _answer(reply.status, reply.body, reply.content_type, reply.headers)

    @staticmethod
    async def _read_body(request: aioweb.Request) -> bytes:
        """The request body, at most MAX_BODY_BYTES, by Content-Length or chunked (aiohttp decodes both)."""
        if request.content_length is None and "Transfer-Encoding" not in request.headers:
            raise _BodyError("invalid_body", 411, "Length Required")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise _BodyError("too_large", 413, f"Payload Too Large: at most {MAX_BODY_BYTES} bytes")
        try:
            # aiohttp stops at client_max_size (MAX_BODY_BYTES); a client that stops sending is cut off
            return await asyncio.wait_for(request.read(), BODY_TIMEOUT)
        except aioweb.HTTPRequestEntityTooLarge:
            raise _BodyError("too_large", 413, f"Payload Too Large: at most {MAX_BODY_BYTES} bytes") from None
        except TimeoutError:
            raise _BodyError("invalid_body", 408, "Request Timeout: the body did not arrive in time") from None
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # a malformed chunked body
            raise _BodyError("invalid_body", 400, "Bad Request: malformed body") from None


def _header_lists(request: aioweb.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


class _Listener(web.HttpServer):
    """One bound listening socket of the receiver: the exporter's aiohttp server with the webhook routes.

    No TLS, no basic auth: providers cannot send basic auth, and Meta needs a
    publicly trusted certificate, which a reverse proxy or ingress usually
    terminates.  The hardening of :mod:`exporter.web` applies (header deadline,
    header limits, idle timeout); bodies are capped at :data:`MAX_BODY_BYTES`.
    """

    thread_name = "webhooks-http"

    def __init__(
        self,
        listen_address: str,
        receiver: WebhookReceiver,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        header_timeout: float = web.HEADER_TIMEOUT,
    ):
        super().__init__(
            _Routes(receiver),
            listen_address,
            None,
            header_timeout=header_timeout,
            max_body=MAX_BODY_BYTES,
            refuse_large_bodies=False,
            loop=loop,
        )
