"""Per-credential QPS budget.

Each credential gets one :class:`TokenBucket`, shared by every account, space
and action that signs with it.  The bucket holds one token, refilled every
``1 / qps`` seconds (plus a small safety margin): calls are *paced*, evenly
spaced, rather than sent in bursts.  That makes the guarantee hold where it
matters, at the provider: with a burst of ``qps`` calls at the start of every
second, any delay between sending and arrival (a busy event loop, a slow
connection, the provider's own queue) pushes part of one burst into the next
second's; with even spacing a call would have to be late by several spacings.
For a budget of ``qps`` >= 1 calls are ``1/floor(qps)`` seconds apart, so no
one-second window holds more than ``floor(qps)`` of them; below 1, one call
per ``1/qps`` seconds.

A throttling answer from the provider puts the whole credential on hold
(:meth:`hold`) for a backoff period: every caller then waits, not just the one
that was refused.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

SAFETY_MARGIN = 0.025  # seconds added to every window


class TokenBucket:
    def __init__(
        self,
        qps: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        margin: float = SAFETY_MARGIN,
    ):
        if not qps > 0:
            raise ValueError("qps must be > 0")
        self.qps = qps
        per_second = math.floor(qps) if qps >= 1 else qps
        self.interval = (1.0 + margin) / per_second
        self._clock = clock
        self._cond = threading.Condition()
        self._sleep = sleep
        self._next = float("-inf")  # earliest time of the next call
        self.waited_seconds = 0.0  # total time callers spent waiting for a token
        self.acquired = 0

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            # Test clocks: sleeping advances the fake clock; release the lock meanwhile.
            self._cond.release()
            try:
                self._sleep(seconds)
            finally:
                self._cond.acquire()
        else:
            self._cond.wait(seconds)

    def delay(self) -> float:
        """Seconds until a token is available (0 if one is free now)."""
        with self._cond:
            return max(0.0, self._next - self._clock())

    def acquire(self, timeout: float | None = None, cancelled: Callable[[], bool] | None = None) -> bool:
        """Block until a token is taken.  Returns False on timeout or cancellation."""
        with self._cond:
            start = self._clock()
            while True:
                now = self._clock()
                wait = self._next - now
                if wait <= 0:
                    self._next = now + self.interval
                    self.acquired += 1
                    self.waited_seconds += now - start
                    return True
                if cancelled is not None and cancelled():
                    return False
                if timeout is not None:
                    remaining = start + timeout - now
                    if remaining <= 0:
                        return False
                    wait = min(wait, remaining)
                # Wake at least every 0.5 s to notice cancellation.
                self._wait(min(wait, 0.5))

    def hold(self, seconds: float) -> None:
        """Pause the credential for ``seconds`` (after a throttling answer)."""
        with self._cond:
            self._next = max(self._next, self._clock() + seconds)
            self._cond.notify_all()

    def cancel_waiters(self) -> None:
        with self._cond:
            self._cond.notify_all()
