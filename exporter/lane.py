"""One poll step per event-loop turn: scrapes are answered between the steps of a poll.

A large poll has many answers in flight (16 spaces at once by default), and
several of them can arrive while the loop is busy.  asyncio then runs every
ready task in the same turn of the loop before it looks at its sockets again,
so a scrape that arrives meanwhile waits for all of them: a turn of 5 answers
decoded and parsed at about 2 ms each keeps a scrape waiting 10 ms.

A task calls :func:`turn` before each CPU-heavy step (sending a request,
decoding and parsing an answer).  The lane lets one waiting task go per turn
of the loop, in the order they asked; between two turns the loop polls its
sockets, so a scrape waits for at most one step.  Waiting for a turn is
cancellable, and a cancelled waiter never holds the lane.  When nothing else
waits, a turn costs one pass of the loop.
"""

from __future__ import annotations

import asyncio
import collections
import weakref

__all__ = ["Lane", "turn"]


class Lane:
    """Lets at most one waiter go per turn of the event loop (see the module's doc)."""

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._pumping = False

    def __len__(self) -> int:
        """Waiters not yet let go (some may have been cancelled)."""
        return len(self._waiters)

    async def turn(self) -> None:
        """Wait for this task's turn: a later pass of the loop than the previous waiter's."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        if not self._pumping:
            self._pumping = True
            loop.call_soon(self._pump, loop)
        await waiter

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        # A callback scheduled with call_soon runs in the next pass of the loop, after the sockets were polled:
        # one waiter is let go per pass, and its task runs in the pass after.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)
                break
        if self._waiters:
            loop.call_soon(self._pump, loop)
        else:
            self._pumping = False


_lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Lane] = weakref.WeakKeyDictionary()


def lane() -> Lane:
    """The running loop's lane (one per loop, so tests with loops of their own never share one)."""
    loop = asyncio.get_running_loop()
    found = _lanes.get(loop)
    if found is None:
        found = _lanes[loop] = Lane()
    return found


async def turn() -> None:
    """Wait for a turn in the running loop's lane before a CPU-heavy step of a poll."""
    await lane().turn()
