"""What every provider client shares: one budgeted, bounded-retry async HTTP caller.

A provider client subclasses :class:`BudgetedClient` and supplies one
``attempt`` coroutine per logical call (sign, send, check the envelope); this
class takes a token from the credential's bucket before every attempt, retries
transient failures with jittered exponential backoff, and reports every
attempt to the request counters.

The HTTP client is an :class:`httpx.AsyncClient` with connection pooling, one
per credential (:func:`new_http_client`), shared by every account that signs
with it; each request carries the account's own timeout.  The pool keeps as
many connections as the credential's requests can be in flight at once (its
units polled at once, plus one for a sweep or a refresh): httpcore checks every
pooled connection on each request, so idle spares cost CPU on every call.  A
request beyond them waits for a free connection without a deadline of its own
(the bucket paces requests anyway; the account's timeout bounds each exchange).

A cancelled task (shutdown, reload) stops at its next ``await``: while waiting
for a token no request is sent, and an exchange in flight is abandoned.

Scrapes keep answering while many answers of a poll arrive at once: sending a
request, handling the bytes of an answer as they arrive
(:mod:`exporter.providers.netlane`) and decoding and parsing it each wait for a
turn of the lane (:mod:`exporter.lane`), so the loop does one such step per
pass and polls its sockets in between; an answer larger than
:data:`OFFLOAD_BYTES` is decoded and parsed in a worker thread instead
(:func:`off_loop`, :func:`load_json`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Required, TypedDict, TypeVar

import httpx

from exporter import __version__
from exporter.lane import Steps, finish, sliced, turn
from exporter.providers.errors import ProviderError
from exporter.providers.netlane import lane_reads
from exporter.ratelimit import BucketClosed, TokenBucket

MAX_BODY_BYTES = 32 * 1024 * 1024
#: answers larger than this are decoded and parsed in a worker thread, not on the event loop (a CAMS answer of
#: 100 numbers, 40 KB, takes about 0.5 ms and one turn of the lane on the loop, see the module's doc)
OFFLOAD_BYTES = 256 * 1024
#: connections a credential's client keeps beyond its requests in flight at once (a sweep, a refresh)
SPARE_CONNECTIONS = 1
T = TypeVar("T")
log = logging.getLogger(__name__)

# on_request(action, error_reason_or_None) is called once per HTTP attempt.
RequestObserver = Callable[[str, "str | None"], None]


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`BudgetedClient`, passed through by every provider's client."""

    bucket: Required[TokenBucket]
    timeout: float
    max_retries: int
    on_request: RequestObserver | None
    sleep: Callable[[float], Awaitable[None]] | None
    http: httpx.AsyncClient | None


def request_timeout(seconds: float) -> httpx.Timeout:
    """An exchange's deadlines: ``seconds`` to connect, send and read; no deadline for a free connection."""
    return httpx.Timeout(seconds, pool=None)


def new_http_client(timeout: float = 10.0, in_flight: int = 1) -> httpx.AsyncClient:
    """The pooled HTTP client of one credential, for ``in_flight`` requests at once (see the module's doc)."""
    connections = max(1, in_flight) + SPARE_CONNECTIONS
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    )
    if not lane_reads(transport):
        log.warning("answers are handled without turns of the lane: this httpx builds its pool otherwise")
    return httpx.AsyncClient(
        timeout=request_timeout(timeout),
        headers={"accept": "application/json", "user-agent": f"whatsapp-number-exporter/{__version__}"},
        follow_redirects=False,
        transport=transport,
    )


async def off_loop(func: Callable[..., T], *args: Any, size: int) -> T:
    """``func(*args)`` (a pure decode or parse): in a worker thread when ``size`` (the answer's bytes) is large,
    else on the loop in a turn of its own (:mod:`exporter.lane`)."""
    if size > OFFLOAD_BYTES:
        return await asyncio.to_thread(func, *args)
    await turn()
    return func(*args)


async def off_loop_steps(steps: Steps[T], *, size: int) -> T:
    """A pure parse cut into steps (:data:`exporter.lane.Steps`): in a worker thread when ``size`` (the answer's
    bytes) is large, else on the loop in slices, each in a turn of its own (:func:`exporter.lane.sliced`)."""
    if size > OFFLOAD_BYTES:
        return await asyncio.to_thread(finish, steps)
    return await sliced(steps)


async def load_json(content: bytes) -> Any:
    """``json.loads``, in a worker thread for a large answer (the loop keeps serving scrapes)."""
    return await off_loop(json.loads, content, size=len(content))


async def json_body(status: int, content: bytes, retry_after: float | None = None) -> Any:
    """An answer's decoded JSON (None when empty); a body that is not JSON is ``throttled`` with a 429,
    ``upstream`` with a 5xx, else a ``parse`` error."""
    try:
        return await load_json(content) if content else None
    except (ValueError, UnicodeDecodeError):
        if status == 429:
            raise ProviderError("throttled", "HTTP 429", http_status=429, retry_after=retry_after) from None
        reason = "upstream" if status >= 500 else "parse"
        raise ProviderError(reason, f"HTTP {status} with a body that is not JSON", http_status=status) from None


class BudgetedClient:
    def __init__(
        self,
        *,
        bucket: TokenBucket,
        timeout: float = 10.0,
        max_retries: int = 3,
        on_request: RequestObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        http: httpx.AsyncClient | None = None,
    ):
        self._bucket = bucket
        self._timeout = timeout
        self._deadlines = request_timeout(timeout)
        self._max_retries = max_retries
        self._on_request = on_request or (lambda action, reason: None)
        self._sleep = sleep or asyncio.sleep
        self._owns_http = http is None
        self._http = http if http is not None else new_http_client(timeout)

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it (a shared one is closed by its owner)."""
        if self._owns_http:
            await self._http.aclose()

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes = b""
    ) -> tuple[int, bytes, httpx.Headers]:
        """One HTTP exchange; transport failures become ProviderError, bodies are size-capped."""
        response: httpx.Response | None = None
        try:
            async with self._http.stream(
                method, url, headers=headers, content=content or None, timeout=self._deadlines
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                    # Refuse before reading a byte of it.
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
                            "parse", f"response larger than {MAX_BODY_BYTES} bytes", http_status=response.status_code
                        )
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks), response.headers
        except httpx.TimeoutException as exc:
            raise ProviderError("timeout", f"no answer within {self._timeout:g}s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise ProviderError("upstream", f"transport error: {type(exc).__name__}: {exc}"[:300]) from None
        except RuntimeError as exc:  # the shared client was closed under a retired provider
            raise ProviderError("upstream", f"transport closed: {exc}"[:300]) from None
        finally:
            if response is not None:
                # httpx (0.28, 0.29) links a response and its stream both ways (encode/httpx#3733): the pair, its
                # request and headers (about 50 objects) would wait for the cyclic collector, and collecting a
                # poll's worth of them at once holds the interpreter for 10 ms or more.  The stream is closed by
                # now; an empty one takes its place.
                response.stream = httpx.ByteStream(b"")

    async def call(self, action: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """One logical call: budgeted, with bounded retries for transient failures."""
        tries = 0
        while True:
            try:
                await self._bucket.acquire(action=action)
            except BucketClosed:
                raise ProviderError(
                    "timeout", "the credential was retired while waiting for its QPS budget", action=action
                ) from None
            try:
                await turn()  # signing, building and sending a request is a step of its own
                result = await attempt()
            except ProviderError as err:
                err.action = action
                self._on_request(action, err.reason)
                if not err.retryable or tries >= self._max_retries:
                    raise
                delay = backoff(tries, err)
                if err.reason == "throttled":
                    # The whole credential slows down, not just this caller.
                    self._bucket.hold(delay)
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


def backoff(attempt: int, err: ProviderError) -> float:
    """Exponential backoff with full jitter; the provider's retry-after wins when given."""
    if err.retry_after:
        return min(err.retry_after, 60.0) + random.uniform(0, 0.5)
    base = 1.0 if err.reason == "throttled" else 0.5
    return random.uniform(base / 2, min(30.0, base * (2**attempt)))


def retry_after_seconds(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds and seconds > 0 else None
