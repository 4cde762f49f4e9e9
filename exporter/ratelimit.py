"""Per-credential QPS budget.

Each credential gets one :class:`TokenBucket`, shared by every account, space
and action that signs with it.  The bucket holds ``capacity`` tokens; a call
takes one, and each token comes back exactly ``window`` seconds after it was
taken (a sliding-window log).  That makes the guarantee exact: no window of
``window`` seconds ever contains more than ``capacity`` calls, which a classic
refill-rate bucket cannot promise (it allows a full burst plus a second's
refill inside one second).

For a budget of ``qps`` >= 1 the bucket holds ``floor(qps)`` tokens per second;
below 1, one token per ``1/qps`` seconds.  A small safety margin is added to
the window so that jitter between sending and the provider's arrival clock does
not push a burst into the previous second.

A throttling answer from the provider puts the whole credential on hold
(:meth:`hold`) for a backoff period: every caller then waits, not just the one
that was refused.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
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
        if qps >= 1:
            self.capacity = int(math.floor(qps))
            self.window = 1.0 + margin
        else:
            self.capacity = 1
            self.window = 1.0 / qps + margin
        self._clock = clock
        self._cond = threading.Condition()
        self._sleep = sleep
        self._taken: deque[float] = deque()
        self._hold_until = 0.0
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
            return self._delay_locked(self._clock())

    def _delay_locked(self, now: float) -> float:
        while self._taken and self._taken[0] + self.window <= now:
            self._taken.popleft()
        wait = max(0.0, self._hold_until - now)
        if len(self._taken) >= self.capacity:
            wait = max(wait, self._taken[0] + self.window - now)
        return wait

    def acquire(self, timeout: float | None = None, cancelled: Callable[[], bool] | None = None) -> bool:
        """Block until a token is taken.  Returns False on timeout or cancellation."""
        with self._cond:
            start = self._clock()
            while True:
                now = self._clock()
                wait = self._delay_locked(now)
                if wait <= 0:
                    self._taken.append(now)
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
            self._hold_until = max(self._hold_until, self._clock() + seconds)
            self._cond.notify_all()

    def cancel_waiters(self) -> None:
        with self._cond:
            self._cond.notify_all()
