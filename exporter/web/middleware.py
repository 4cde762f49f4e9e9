"""Middleware: the exporter-toolkit web config (basic auth, rate limit), errors, methods, body limit."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.web.common import (
    REALM,
    _closing,
    _text,
)

if TYPE_CHECKING:
    from exporter.web.server import HttpServer

log = logging.getLogger("exporter.web")  # the name of the module this package was split from


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
