"""The asynchronous provider transport: one ``httpx.AsyncClient`` per credential, budgeted, bounded retries.

The Twilio and Infobip clients are written against this module (``async def
poll_unit``, ``async def aclose``), for the asyncio runtime.  Until that runtime
polls them directly, :class:`SyncBridge` runs each provider on an event loop of
its own so the current poller can call it, and :class:`ThreadBucketBudget` lets
an async client take its tokens from the credential's current (thread-based)
:class:`~exporter.ratelimit.TokenBucket`.  Both adapters are the only pieces to
drop when the runtime moves: the clients only see the :class:`Budget` protocol.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import httpx

from exporter import __version__
from exporter.providers.errors import ProviderError
from exporter.providers.transport import MAX_BODY_BYTES, RequestObserver, backoff

T = TypeVar("T")
log = logging.getLogger(__name__)


class Budget(Protocol):
    """A credential's request budget as an async client sees it."""

    async def acquire(self, action: str) -> bool:
        """Wait for a token for ``action``; False when the wait was cancelled."""
        ...

    def hold(self, seconds: float) -> None:
        """Pause the whole credential (after a throttling answer)."""
        ...


class ThreadBucketBudget:
    """A :class:`~exporter.ratelimit.TokenBucket` (thread-based) as a :class:`Budget`."""

    def __init__(self, bucket: Any, cancelled: Callable[[], bool] = lambda: False):
        self.bucket = bucket
        self._cancelled = cancelled

    async def acquire(self, action: str) -> bool:
        if self.bucket.acquire(timeout=0, action=action):  # a free token: no thread hop
            return True
        return await asyncio.to_thread(self.bucket.acquire, cancelled=self._cancelled, action=action)

    def hold(self, seconds: float) -> None:
        self.bucket.hold(seconds)


class AsyncBudgetedClient:
    """One logical call = budgeted attempts with jittered exponential backoff; at most
    ``max_concurrent`` requests of the credential in flight at once."""

    def __init__(
        self,
        *,
        budget: Budget,
        timeout: float = 10.0,
        max_retries: int = 3,
        on_request: RequestObserver | None = None,
        max_concurrent: int = 4,
        cancelled: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._budget = budget
        self._timeout = timeout
        self._max_retries = max_retries
        self._on_request = on_request or (lambda action, reason: None)
        self._cancelled = cancelled
        self._sleep = sleep
        self._max_concurrent = max_concurrent
        self._slots: asyncio.Semaphore | None = None
        self._http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
            headers={"accept": "application/json", "user-agent": f"whatsapp-number-exporter/{__version__}"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, httpx.Headers]:
        """One HTTP exchange; transport failures become ProviderError, bodies are size-capped."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_concurrent)
        async with self._slots:
            try:
                async with self._http.stream(method, url, headers=headers) as response:
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                        raise ProviderError(
                            "parse",
                            f"response of {declared} bytes is larger than {MAX_BODY_BYTES}",
                            http_status=response.status_code,
                        )
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_BODY_BYTES:
                            raise ProviderError(
                                "parse",
                                f"response larger than {MAX_BODY_BYTES} bytes",
                                http_status=response.status_code,
                            )
                        chunks.append(chunk)
                    return response.status_code, b"".join(chunks), response.headers
            except httpx.TimeoutException as exc:
                raise ProviderError("timeout", f"no answer within {self._timeout:g}s ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise ProviderError("upstream", f"transport error: {type(exc).__name__}: {exc}"[:300]) from None

    async def call(self, action: str, attempt: Callable[[], Coroutine[Any, Any, T]]) -> T:
        tries = 0
        while True:
            if not await self._budget.acquire(action):
                raise ProviderError("timeout", "cancelled while waiting for the QPS budget", action=action)
            try:
                result = await attempt()
            except ProviderError as err:
                err.action = action
                self._on_request(action, err.reason)
                if not err.retryable or tries >= self._max_retries or self._cancelled():
                    raise
                delay = backoff(tries, err)
                if err.reason == "throttled":
                    self._budget.hold(delay)  # the whole credential slows down
                else:
                    await self._sleep(delay)
                log.info(
                    "retrying after a transient error",
                    extra={
                        "action": action,
                        "reason": err.reason,
                        "code": err.code,
                        "backoff_seconds": round(delay, 3),
                    },
                )
                tries += 1
                continue
            self._on_request(action, None)
            return result


class SyncBridge:
    """An event loop in a thread of its own, running one async provider for the thread-based poller."""

    def __init__(self, name: str):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"provider-loop:{name}"[:60], daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("the provider is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class BridgedProvider:
    """An async provider (``async poll_unit``, ``async aclose``) behind the current sync Provider protocol."""

    def __init__(self, name: str, build: Callable[[], Any]):
        self._bridge = SyncBridge(name)

        async def make() -> Any:
            return build()  # built on the provider's loop: its AsyncClient belongs there

        self.inner = self._bridge.run(make())
        self.actions = self.inner.actions
        self.client = getattr(self.inner, "client", None)

    def poll_unit(self, unit: Any, now: float) -> Any:
        return self._bridge.run(self.inner.poll_unit(unit, now))

    def close(self) -> None:
        """Close the client and stop the loop; a second call does nothing."""
        if self._bridge.closed:
            return
        try:
            self._bridge.run(self.inner.aclose())
        finally:
            self._bridge.close()
