"""Provider answers handled in turns of the lane, as their bytes arrive (see :mod:`exporter.lane`).

httpx hands the bytes a socket received to its HTTP/1.1 parser in the task
that waits for them, and many answers of a poll can arrive in the same pass
of the event loop: every one of them is then parsed, its body chunks
gathered and its headers built before the loop looks at its sockets again.
:class:`LanedBackend` wraps httpcore's network backend so that each read
that returned bytes waits for a turn of the lane first, like sending a
request and decoding an answer do: one such step per pass, none while an
HTTP request of the exporter is answered.

httpx (0.28) has no option for the network backend of the pool it builds,
so :func:`lane_reads` puts the wrapper in place on the pool of an
``httpx.AsyncHTTPTransport``; it returns False, and the client works as
before, if a later httpx builds its pool otherwise
(tests/integration/test_provider_transport.py checks that it does not).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from exporter.lane import turn

__all__ = ["LanedBackend", "LanedStream", "lane_reads"]

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class LanedStream(httpcore.AsyncNetworkStream):
    """A network stream whose reads, once they return bytes, wait for a turn of the lane."""

    def __init__(self, inner: httpcore.AsyncNetworkStream):
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        if data:  # an end of stream is handled at once: nothing to parse
            await turn()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)
        await turn()  # what follows a write (the exchange's next state, the next read) is a step of its own

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return LanedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class LanedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, with every stream it opens a :class:`LanedStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend):
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return LanedStream(await self.inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return LanedStream(await self.inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def lane_reads(transport: httpx.AsyncHTTPTransport) -> bool:
    """Put :class:`LanedBackend` under ``transport``'s connection pool; False if its pool has no backend to wrap."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.AsyncNetworkBackend):
        return False
    if not isinstance(backend, LanedBackend):
        pool._network_backend = LanedBackend(backend)  # type: ignore[union-attr]
    return True
