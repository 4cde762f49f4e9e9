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

Per-action limits live inside the credential's bucket: a provider documents
some actions with a lower limit than the credential's overall budget (CAMS:
``GetWhatsappHealthStatus`` at 5 per second, inside the account's 10).  Each
such action has its own next-call time, and a call of it waits until *both*
the credential and the action allow it; both times advance at the same
instant, under one lock.  (Taking two tokens one after the other would not do:
a call that waited for the second could be sent right after the next call of
its action, closer than the action's spacing.)  Actions without a limit of
their own wait only for the credential.

A throttling answer from the provider puts the whole credential on hold
(:meth:`hold`) for a backoff period: every caller then waits, not just the one
that was refused.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Mapping

SAFETY_MARGIN = 0.025  # seconds added to every window


def spacing(qps: float, margin: float = SAFETY_MARGIN) -> float:
    """Seconds between two calls so that no one-second window holds more than ``qps`` of them."""
    if not qps > 0:
        raise ValueError("qps must be > 0")
    per_second = math.floor(qps) if qps >= 1 else qps
    return (1.0 + margin) / per_second


class TokenBucket:
    def __init__(
        self,
        qps: float,
        *,
        action_qps: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        margin: float = SAFETY_MARGIN,
    ):
        self.qps = qps
        self.interval = spacing(qps, margin)
        #: per-action limits that are tighter than the credential's (others would never bind)
        self.action_qps = {a: q for a, q in (action_qps or {}).items() if spacing(q, margin) > self.interval}
        self._action_interval = {a: spacing(q, margin) for a, q in self.action_qps.items()}
        self._action_next = dict.fromkeys(self.action_qps, float("-inf"))
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

    def acquire(self, timeout: float | None = None, cancelled: Callable[[], bool] | None = None,
                action: str = "") -> bool:
        """Block until a token is taken (for ``action``: within its own limit too).

        Returns False on timeout or cancellation.
        """
        limited = action in self._action_next
        with self._cond:
            start = self._clock()
            while True:
                now = self._clock()
                wait = self._next - now
                if limited:
                    wait = max(wait, self._action_next[action] - now)
                if wait <= 0:
                    self._next = now + self.interval
                    if limited:
                        self._action_next[action] = now + self._action_interval[action]
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
