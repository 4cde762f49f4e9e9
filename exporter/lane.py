"""One poll step per event-loop turn, and none while an HTTP request is answered.

A large poll has many answers in flight (16 spaces at once by default), and
several of them can arrive while the loop is busy.  asyncio then runs every
ready task in the same turn of the loop before it looks at its sockets again,
so a scrape that arrives meanwhile waits for all of them: a turn of 5 answers
decoded and parsed at about 2 ms each keeps a scrape waiting 10 ms.

A task calls :func:`turn` before each CPU-heavy step of a poll (sending a
request, handling the bytes of an answer as they arrive, decoding and parsing
it).  The lane lets one waiting task go per turn of the loop, in the order
they asked; between two turns the loop polls its sockets, so a scrape waits
for at most one step.  Waiting for a turn is cancellable, and a cancelled
waiter never holds the lane.  When nothing else waits, a turn costs one pass
of the loop.

HTTP requests go first.  The server's connection (:mod:`exporter.web.connection`)
tells the lane when a request's header section has arrived and when its
answer is written (:meth:`Lane.request_started`, :meth:`Lane.request_done`);
in between, no step is let go, so the few loop passes that answer a scrape
carry no poll work.  The pause is bounded: after :data:`MAX_PAUSE` one step
goes anyway, and under a steady stream of requests (or one slow client) polls
still take one step per ``MAX_PAUSE``.  While requests are answered the
interpreter also switches threads more often (:data:`ANSWERING_SWITCH_INTERVAL`),
so a worker thread (a large answer decoded off the loop, a compression) hands
the GIL back to the loop thread quickly after each of its system calls, and the
cyclic garbage collector waits (a young collection after a poll's allocations
can take a few milliseconds): it runs in the poll's next step instead, or once
the pause reaches :data:`MAX_PAUSE`.

Computations too long for one step (folding a poll of thousands of numbers,
re-rendering them) are written as generators that ``yield`` every few hundred
items (:data:`Steps`).  :func:`sliced` runs one on the loop in slices of
about :data:`SLICE` seconds, each in a turn of its own, so a scrape that
arrives meanwhile waits for one slice at most; :func:`finish` runs
one to its end at once (small accounts, tests, other threads), and
:func:`at_once` makes the plain function of a generator's.  On the loop,
not in a worker thread: a thread would hold the GIL through the C loops of a
large computation (a sort, a join, a comprehension), which a scrape then waits
for whatever the switch interval.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import sys
import time
import weakref
from collections.abc import Callable, Generator
from typing import ParamSpec, TypeVar

__all__ = [
    "ANSWERING_SWITCH_INTERVAL",
    "MAX_PAUSE",
    "SLICE",
    "Lane",
    "Steps",
    "at_once",
    "finish",
    "lane",
    "sliced",
    "turn",
]

T = TypeVar("T")
P = ParamSpec("P")
#: a computation cut into steps: a generator that yields (None) between two steps and returns its result
Steps = Generator[None, None, T]

#: the longest poll steps wait while HTTP requests are answered; under a steady stream of requests a poll still
#: takes one step per MAX_PAUSE (10 ms: a scrape of 10,000 numbers is answered in about 2)
MAX_PAUSE = 0.01
#: the interpreter's switch interval while requests are answered (``sys.setswitchinterval``; the process runs
#: with 0.5 ms otherwise, see exporter.cli): how long the loop thread may wait for the GIL held by a worker
#: thread after each of its system calls
ANSWERING_SWITCH_INTERVAL = 0.00005
#: how long :func:`sliced` computes before it lets the loop look at its sockets (a slice ends after the step that
#: crosses it; a scrape of 10,000 numbers is answered in about 1.5 ms)
SLICE = 0.0005


class Lane:
    """Lets at most one waiter go per turn of the event loop, none while requests are answered (see the module)."""

    def __init__(self) -> None:
        #: resolved with True when let go although requests are answered (the pause reached max_pause)
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._pumping = False  # a pump is scheduled: in the next pass, or at the end of a pause
        self._timer: asyncio.TimerHandle | None = None  # the pump at the end of a pause
        self._answering = 0  # HTTP requests whose header section arrived and whose answer is not written yet
        self._paused_at = 0.0  # loop time at which the current pause began (or a step last went during it)
        self._switch = 0.0  # the switch interval to restore once no request is answered
        self._gc = False  # the cyclic collector was enabled when requests began to be answered (see _collect)
        #: the longest steps wait while requests are answered (:data:`MAX_PAUSE`; a test may lengthen it)
        self.max_pause = MAX_PAUSE

    def __len__(self) -> int:
        """Waiters not yet let go (some may have been cancelled)."""
        return len(self._waiters)

    @property
    def answering(self) -> int:
        """HTTP requests being answered now."""
        return self._answering

    async def turn(self) -> None:
        """Wait for this task's turn: a later pass of the loop than the previous waiter's.

        A waiter is let go in one pass and its task runs in the next.  When a
        request's header section arrived in between, the step would run before
        the request's handler; it waits again instead, first in line.
        """
        loop = asyncio.get_running_loop()
        first = False
        while True:
            waiter: asyncio.Future[bool] = loop.create_future()
            if first:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            if not self._pumping:
                self._pumping = True
                loop.call_soon(self._pump, loop)
            forced = await waiter
            if forced or not self._answering:
                return
            first = True  # a request arrived since this waiter was let go: it goes first

    def request_started(self) -> None:
        """A request's header section arrived: steps wait until it is answered (at most MAX_PAUSE)."""
        if not self._answering:
            self._paused_at = asyncio.get_running_loop().time()
            self._switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch, ANSWERING_SWITCH_INTERVAL))
            self._gc = gc.isenabled()
            gc.disable()  # a collection triggered by the answer's allocations waits for the poll's next step
        self._answering += 1

    def request_done(self) -> None:
        """A request started with :meth:`request_started` was answered, or its connection was lost."""
        if self._answering <= 0:
            raise RuntimeError("request_done() without request_started()")
        self._answering -= 1
        if self._answering:
            return
        sys.setswitchinterval(self._switch)
        self._collect()
        if self._timer is not None:  # the pause ends now, not at its deadline
            self._timer.cancel()
            self._timer = None
            loop = asyncio.get_running_loop()
            loop.call_soon(self._pump, loop)

    def _collect(self) -> None:
        """Let the cyclic collector run again, if it ran before requests were answered."""
        if self._gc:
            self._gc = False
            gc.enable()

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        # A callback scheduled with call_soon runs in the next pass of the loop, after the sockets were polled:
        # one waiter is let go per pass, and its task runs in the pass after.
        self._pumping, self._timer = False, None
        while self._waiters and self._waiters[0].done():  # a cancelled waiter is skipped
            self._waiters.popleft()
        if not self._waiters:
            return
        forced = False
        if self._answering:
            now = loop.time()
            due = self._paused_at + self.max_pause
            if now < due:  # requests are answered first
                self._pumping = True
                self._timer = loop.call_at(due, self._pump, loop)
                return
            self._paused_at = now  # paused for max_pause already: one step goes, the next waits another
            forced = True
            self._collect()  # and collections are not put off any longer either
        self._waiters.popleft().set_result(forced)
        if self._waiters:
            self._pumping = True
            loop.call_soon(self._pump, loop)


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


def finish(steps: Steps[T]) -> T:
    """Run a computation cut into steps to its end, at once."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def at_once(steps: Callable[P, Steps[T]]) -> Callable[P, T]:
    """The plain form of a function that returns a computation cut into steps: it runs it to its end at once."""

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return finish(steps(*args, **kwargs))

    run.__doc__ = steps.__doc__
    return run


async def sliced(steps: Steps[T], budget: float = SLICE) -> T:
    """Run a computation cut into steps on the loop, ``budget`` seconds at a time, each slice in a turn of its own.

    Cancellable between two slices (the generator is closed: it never resumes).
    """
    clock = time.perf_counter
    try:
        while True:
            await turn()
            deadline = clock() + budget
            try:
                next(steps)  # at least one step per slice
                while clock() < deadline:
                    next(steps)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
    finally:
        steps.close()
