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

The bucket is an asyncio primitive: :meth:`TokenBucket.acquire` is a
coroutine, callers queue on :class:`asyncio.Lock` objects, which serve their
waiters first come, first served, so the units of one credential share its
budget fairly; a waiter that is cancelled (a shutdown, a reload) leaves the
queue at once and takes no token.  A call of an action with a limit of its own
first queues for its action (holding its place there, so no other call of the
action can slip in), then for the credential; both next-call times advance at
the instant it is granted.  After :meth:`close` (its credential was retired)
every acquire raises :class:`BucketClosed`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping

SAFETY_MARGIN = 0.025  # seconds added to every window


class BucketClosed(RuntimeError):
    """The credential's bucket was closed (the credential left the configuration)."""


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
        sleep: Callable[[float], Awaitable[None]] | None = None,
        margin: float = SAFETY_MARGIN,
    ):
        self.qps = qps
        self.interval = spacing(qps, margin)
        #: per-action limits that are tighter than the credential's (others would never bind)
        self.action_qps = {a: q for a, q in (action_qps or {}).items() if spacing(q, margin) > self.interval}
        self._action_interval = {a: spacing(q, margin) for a, q in self.action_qps.items()}
        self._action_next = dict.fromkeys(self.action_qps, float("-inf"))
        self._action_lock = {a: asyncio.Lock() for a in self.action_qps}
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep or asyncio.sleep  # test clocks pass a coroutine that advances them
        self._next = float("-inf")  # earliest time of the next call
        self.closed = False
        self.waited_seconds = 0.0  # total time callers spent waiting for a token
        self.acquired = 0

    def delay(self) -> float:
        """Seconds until a token is available (0 if one is free now)."""
        return max(0.0, self._next - self._clock())

    async def _until(self, deadline: Callable[[], float]) -> None:
        """Sleep until ``deadline()`` (re-read after every sleep: a hold may push it)."""
        while True:
            if self.closed:
                raise BucketClosed("the credential's budget was closed")
            wait = deadline() - self._clock()
            if wait <= 0:
                return
            await self._sleep(wait)

    async def acquire(self, action: str = "") -> None:
        """Wait for a token (for ``action``: within its own limit too).

        Cancellation (``task.cancel()``) leaves the queue without taking a
        token; raises :class:`BucketClosed` once the bucket is closed.
        """
        if self.closed:
            raise BucketClosed("the credential's budget was closed")
        start = self._clock()
        action_lock = self._action_lock.get(action)
        if action_lock is None:
            async with self._lock:
                await self._until(lambda: self._next)
                self._next = self._clock() + self.interval
        else:
            async with action_lock:  # our place among this action's calls
                await self._until(lambda: self._action_next[action])
                async with self._lock:
                    await self._until(lambda: max(self._next, self._action_next[action]))
                    now = self._clock()
                    self._next = now + self.interval
                    self._action_next[action] = now + self._action_interval[action]
        self.acquired += 1
        self.waited_seconds += self._clock() - start

    def hold(self, seconds: float) -> None:
        """Pause the credential for ``seconds`` (after a throttling answer); waiters see it on waking."""
        self._next = max(self._next, self._clock() + seconds)

    def close(self) -> None:
        """Refuse every further acquire (waiters fail on waking; their tasks are normally cancelled first)."""
        self.closed = True
