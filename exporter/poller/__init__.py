"""Scheduled polling on the exporter's one event loop: one actor task per account.

* APScheduler's :class:`AsyncIOScheduler` runs on the loop that serves HTTP.
  Every account has a poll job (the first at once, then every
  ``poll_interval`` with jitter) and, for providers whose health is a read of
  its own (CAMS ``GetWhatsappHealthStatus``, 5 calls per second), a health
  sweep job every ``health_poll_interval``.  A job does nothing but post a
  request to the account's actor.
* Each account's state is owned by ONE task, its :class:`_Actor`: scheduled
  polls, webhook refreshes, health reads, webhook facts, expiries and reloads
  are requests in its inbox (an :class:`asyncio.Queue`), handled one at a time
  by :meth:`_Actor._handle`, the one place where an account's state changes.
  Provider I/O (a poll's units, a sweep, a refresh) runs in tasks the actor
  starts; their results come back as requests, and pure functions
  (:mod:`exporter.merge`) fold them into the next immutable
  :class:`~exporter.store.AccountSnapshot`, published in one swap.  No locks.
* Polls of one account never overlap: a scheduled poll that comes while one
  runs is dropped (coalesced); a refresh that needs a whole poll runs right
  after it.  A webhook's re-read of a few numbers does not wait for a running
  poll, and a poll that started before a number was re-read keeps the newer
  reading.  Units of one account are polled concurrently, as tasks (at most
  ``concurrency`` at once); every credential has one
  :class:`~exporter.ratelimit.TokenBucket` and one pooled
  :class:`httpx.AsyncClient`, shared by the accounts that sign with it.
* Large polls are folded and their snapshots rendered on the loop in slices
  (:func:`exporter.lane.sliced`), so scrapes keep answering meanwhile; the swap
  into the store is still a single step.
* Shutdown (:meth:`Poller.begin_shutdown`) cancels every task at once and
  closes the buckets: no provider call starts after it.
* A reload (:meth:`Poller.areconfigure`) retires changed and removed
  accounts: their tasks are cancelled and awaited before their provider (and,
  once no account uses it, their credential's bucket and HTTP client) is
  closed.  An unchanged account whose polls are paused after refused
  credentials resumes at once.

For code that is not on the loop (tests, benchmarks, the reload thread) the
public methods are also callable from other threads: they run on the loop and
wait for it (a loop thread of the poller's own if none was started).
"""

from exporter.poller.actor import _Actor
from exporter.poller.facade import Poller
from exporter.poller.state import (
    HEALTH_ACTION,
    HEALTH_PUBLISH_INTERVAL,
    HINTS,
    OFFLOAD_NUMBERS,
    REFUSALS_BEFORE_PAUSE,
)

__all__ = [
    "HEALTH_ACTION",
    "HEALTH_PUBLISH_INTERVAL",
    "HINTS",
    "OFFLOAD_NUMBERS",
    "REFUSALS_BEFORE_PAUSE",
    "Poller",
    "_Actor",
]
