"""Webhook delivery of the emulators: wire helpers (signature, URLs) and the threaded sender with retries."""

from __future__ import annotations

import copy
import hashlib
import heapq
import hmac
import http.client
import itertools
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .events import RESPONSE_CAP, logger

# ---------------------------------------------------------------------------
# wire helpers


def meta_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` value: ``sha256=`` + hex HMAC-SHA256 of the exact body bytes, keyed by the app secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def append_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended to its query (``?`` or ``&`` as needed; a fragment stays last)."""
    parts = urlsplit(url)
    extra = urlencode(list(params), quote_via=quote)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redact_url(url: str, configured: str | None = None) -> str:
    """``url`` with the values of the configured URL's own query parameters (tokens) replaced by ``***``."""
    keys = {k for k, _ in parse_qsl(urlsplit(configured or url).query, keep_blank_values=True)}
    if not keys:
        return url
    parts = urlsplit(url)
    pairs = [(k, "***" if k in keys else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode(pairs, quote_via=quote, safe="*"), parts.fragment)
    )


def validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL must be an absolute http(s) URL, got {url!r}")
    return url


@dataclass
class OutgoingRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes = b""


# ---------------------------------------------------------------------------
# the sender


class WebhookSender:
    """Delivers webhook requests from worker threads, with retries, and records every event.

    ``timeout`` bounds each attempt (connect and read); a failed attempt is retried ``retries`` times,
    after ``backoff``, ``2 * backoff``, ... seconds.  Workers start on the first :meth:`submit` (or
    :meth:`start`) and stop with :meth:`stop`, which abandons what is still queued (recorded as
    ``cancelled``).
    """

    def __init__(
        self,
        provider: str,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        backoff: float = 0.5,
        workers: int = 4,
        max_records: int = 100_000,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.provider = provider
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.workers = workers
        self._log = log or logger
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, dict[str, Any], OutgoingRequest]] = []
        self._seq = itertools.count(1)
        self._records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._in_flight = 0

    # -- configuration and lifecycle ------------------------------------------

    def configure(
        self, *, timeout: float | None = None, retries: int | None = None, backoff: float | None = None
    ) -> None:
        with self._cond:
            if timeout is not None:
                if timeout <= 0:
                    raise ValueError("timeout must be > 0")
                self.timeout = float(timeout)
            if retries is not None:
                if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
                    raise ValueError("retries must be an integer >= 0")
                self.retries = retries
            if backoff is not None:
                if backoff < 0:
                    raise ValueError("backoff must be >= 0")
                self.backoff = float(backoff)

    def start(self) -> None:
        with self._cond:
            self._stopping = False
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self.workers:
                name = f"{self.provider.lower()}-webhooks-{len(self._threads)}"
                thread = threading.Thread(target=self._work, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            abandoned = [item[2] for item in self._heap]
            self._heap.clear()
            for record in abandoned:
                record["status"] = "cancelled"
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if abandoned:
            self._log.info("%s webhooks: %d queued event(s) abandoned at stop", self.provider, len(abandoned))

    # -- records -----------------------------------------------------------

    def new_record(self, **fields: Any) -> dict[str, Any]:
        """Create and keep the record of one event (status ``pending``)."""
        record = {
            "id": next(self._seq),
            "provider": self.provider,
            "status": "pending",
            "http_status": None,
            "fault": None,
            "queued_wall": self._clock(),
            "queued_monotonic": time.monotonic(),
            "sent_wall": None,
            "sent_monotonic": None,
            "delivered_wall": None,
            "delivered_monotonic": None,
            "attempts": [],
        }
        record.update(fields)
        with self._cond:
            self._records.append(record)
        return record

    def records(self) -> list[dict[str, Any]]:
        with self._cond:
            return copy.deepcopy(list(self._records))

    def clear_records(self) -> None:
        with self._cond:
            self._records.clear()

    def idle(self) -> bool:
        """True when nothing is queued or being sent."""
        with self._cond:
            return not self._heap and self._in_flight == 0

    # -- delivery ----------------------------------------------------------

    def submit(self, record: dict[str, Any], request: OutgoingRequest) -> None:
        if not self._threads:
            self.start()
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic(), record["id"], record, request))
            self._cond.notify()

    def _take(self) -> tuple[dict[str, Any], OutgoingRequest] | None:
        """Wait for the next delivery that is due and count it in flight (None: the sender is stopping)."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, record, request = heapq.heappop(self._heap)
                    self._in_flight += 1
                    return record, request
                self._cond.wait(None if not self._heap else max(0.001, self._heap[0][0] - now))

    def _work(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            record, request = taken
            try:
                retry_at = self._attempt(record, request)
            except Exception:  # never let a bug kill a worker
                self._log.exception(
                    "%s webhooks: unexpected error delivering event %s", self.provider, record.get("id")
                )
                retry_at = None
                record["status"] = "failed"
            with self._cond:
                self._in_flight -= 1
                if retry_at is not None and not self._stopping:
                    heapq.heappush(self._heap, (retry_at, record["id"], record, request))
                    self._cond.notify()
                elif retry_at is not None:
                    record["status"] = "cancelled"

    def _attempt(self, record: dict[str, Any], request: OutgoingRequest) -> float | None:
        """One attempt; returns when to retry (monotonic), or None when done."""
        wall, mono = self._clock(), time.monotonic()
        with self._cond:
            if record["sent_wall"] is None:
                record["sent_wall"], record["sent_monotonic"] = wall, mono
        status, error = self._send(request)
        attempt = {"wall": wall, "monotonic": mono, "status": status, "error": error}
        with self._cond:
            record["attempts"].append(attempt)
            record["http_status"] = status
            if status is not None and 200 <= status < 300:
                record["status"] = "delivered"
                record["delivered_wall"], record["delivered_monotonic"] = self._clock(), time.monotonic()
                return None
            tries = len(record["attempts"])
            if tries > self.retries:
                record["status"] = "failed"
                self._log.warning(
                    "%s webhooks: giving up on event %s (%s %s) after %d attempt(s): %s",
                    self.provider,
                    record["id"],
                    record.get("field"),
                    record.get("event") or "",
                    tries,
                    error or f"HTTP {status}",
                )
                return None
            delay = self.backoff * 2.0 ** (tries - 1)
        self._log.info(
            "%s webhooks: event %s attempt %d failed (%s); retrying in %.2fs",
            self.provider,
            record["id"],
            tries,
            error or f"HTTP {status}",
            delay,
        )
        return time.monotonic() + delay

    def _send(self, request: OutgoingRequest) -> tuple[int | None, str | None]:
        parts = urlsplit(request.url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host = parts.hostname
        if not host:  # validate_url refuses such a URL before it is ever used
            return None, "the webhook URL has no host"
        try:
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, parts.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(host, parts.port, timeout=self.timeout)
            try:
                conn.putrequest(request.method, target, skip_accept_encoding=True)
                for name, value in request.headers:
                    conn.putheader(name, value)
                if request.method != "GET" or request.body:
                    conn.putheader("Content-Length", str(len(request.body)))
                conn.endheaders(request.body or None)
                response = conn.getresponse()
                response.read(RESPONSE_CAP)
                return response.status, None
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
