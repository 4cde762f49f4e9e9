"""What every provider client shares: one budgeted, bounded-retry HTTP caller.

A provider client subclasses :class:`BudgetedClient` and supplies one
``attempt`` per logical call (sign, send, check the envelope); this class takes
a token from the credential's bucket before every attempt, retries transient
failures with jittered exponential backoff, and reports every attempt to the
request counters.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Mapping, TypeVar

import httpx

from exporter import __version__
from exporter.providers.errors import ProviderError
from exporter.ratelimit import TokenBucket

MAX_BODY_BYTES = 32 * 1024 * 1024
T = TypeVar("T")
log = logging.getLogger(__name__)

# on_request(action, error_reason_or_None) is called once per HTTP attempt.
RequestObserver = Callable[[str, "str | None"], None]


class BudgetedClient:
    def __init__(
        self,
        *,
        bucket: TokenBucket,
        timeout: float = 10.0,
        max_retries: int = 3,
        on_request: RequestObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        cancelled: Callable[[], bool] = lambda: False,
    ):
        self._bucket = bucket
        self._timeout = timeout
        self._max_retries = max_retries
        self._on_request = on_request or (lambda action, reason: None)
        self._sleep = sleep
        self._cancelled = cancelled
        self._http = httpx.Client(
            timeout=timeout,
            headers={"accept": "application/json", "user-agent": f"whatsapp-number-exporter/{__version__}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes = b""
    ) -> tuple[int, bytes, httpx.Headers]:
        """One HTTP exchange; transport failures become ProviderError, bodies are size-capped."""
        try:
            with self._http.stream(method, url, headers=headers, content=content or None) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                    # Refuse before reading a byte of it.
                    raise ProviderError("parse", f"response of {declared} bytes is larger than {MAX_BODY_BYTES}",
                                        http_status=response.status_code)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
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

    def call(self, action: str, attempt: Callable[[], T]) -> T:
        """One logical call: budgeted, with bounded retries for transient failures."""
        tries = 0
        while True:
            if not self._bucket.acquire(cancelled=self._cancelled, action=action):
                raise ProviderError("timeout", "cancelled while waiting for the QPS budget", action=action)
            try:
                result = attempt()
            except ProviderError as err:
                err.action = action
                self._on_request(action, err.reason)
                if not err.retryable or tries >= self._max_retries or self._cancelled():
                    raise
                delay = backoff(tries, err)
                if err.reason == "throttled":
                    # The whole credential slows down, not just this caller.
                    self._bucket.hold(delay)
                else:
                    self._sleep(delay)
                log.info(
                    "retrying after a transient error",
                    extra={"action": action, "reason": err.reason, "code": err.code, "backoff_seconds": round(delay, 3)},
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
