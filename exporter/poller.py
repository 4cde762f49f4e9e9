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
* Large snapshots are published (rendered) in a worker thread, so scrapes keep
  answering meanwhile; the swap into the store is still a single step.
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

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable, Mapping

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from exporter import merge, model, wabafacts
from exporter.config import Account, Config
from exporter.providers import make_provider
from exporter.providers.base import Capability, Provider
from exporter.providers.errors import ProviderError
from exporter.providers.transport import new_http_client
from exporter.ratelimit import TokenBucket
from exporter.store import AccountSnapshot, PollResult, Store

log = logging.getLogger(__name__)

HINTS = {
    "auth": "check the credential (id and secret) of this account, and the host clock",
    "permission": "check that this credential may read this space/app/WABA (see the minimal policy in docs/providers/cams.md)",
    "request": "check the configured space/app/WABA id and phone numbers of this account",
    "throttled": "the provider throttled the calls; lower qps or raise poll_interval if this persists",
}

#: consecutive polls refused for auth/permission reasons before the account's polls pause
REFUSALS_BEFORE_PAUSE = 2
#: the provider action of a health read (CAMS)
HEALTH_ACTION = "GetWhatsappHealthStatus"
#: a sweep publishes what it read at most this often
HEALTH_PUBLISH_INTERVAL = 1.0
#: snapshots with more numbers than this are rendered in a worker thread
OFFLOAD_NUMBERS = 500


class _Stats:
    """Request counters of one account, updated by its client on every attempt (on the loop)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()

    def observe(self, action: str, reason: str | None) -> None:
        self.requests[action] += 1
        if reason is not None:
            self.errors[(action, reason)] += 1

    def copy(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        return dict(self.requests), dict(self.errors)


class _Credential:
    """The budget and the pooled HTTP client of one credential, shared by the accounts that sign with it."""

    def __init__(self, account: Account):
        self.key = account.credential_key
        self.qps = account.qps
        self.action_qps = dict(account.action_qps)
        self.bucket = TokenBucket(account.qps, action_qps=account.action_qps)
        self.http: httpx.AsyncClient = new_http_client(account.timeout)
        self.users = 0  # actors (live or retiring) that use it

    def fits(self, account: Account) -> bool:
        return self.qps == account.qps and self.action_qps == dict(account.action_qps)

    async def aclose(self) -> None:
        self.bucket.close()
        await self.http.aclose()


@dataclasses.dataclass
class _AccountState:
    """What an account knows besides its published snapshot; written only by its actor."""

    facts: wabafacts.WabaFacts = model.NO_FACTS  # WABA restrictions, bans, violations (webhooks; the state file)
    told_limits: dict[str, model.BusinessLimit] = dataclasses.field(default_factory=dict)
    number_last_success: dict[str, float] = dataclasses.field(default_factory=dict)
    space_last_success: dict[str, float] = dataclasses.field(default_factory=dict)
    last_success_at: float | None = None
    hold_until: float = 0.0  # auth/permission failures: no polls before this time
    rejections: int = 0  # consecutive polls refused for auth/permission reasons
    refreshed_at: dict[str, float] = dataclasses.field(default_factory=dict)  # numbers re-read by a refresh, when
    health_read_at: dict[str, float] = dataclasses.field(default_factory=dict)  # number -> its last health read
    slow_sweep_warned: bool = False
    tiers_read_at: float = 0.0  # when the last poll that read the numbers' tiers started


class _Actor:
    """The one task that owns an account's state: every change is a request handled by :meth:`_handle`."""

    def __init__(self, poller: "Poller", account: Account, provider: Provider, credential: _Credential,
                 stats: _Stats, state: _AccountState):
        self.poller = poller
        self.account = account
        self.name = account.name
        self.provider = provider
        self.credential = credential
        self.stats = stats
        self.state = state
        self.snapshot = poller._snapshot(self, None, {}, {}, {})
        self.inbox: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.work: set[asyncio.Task] = set()  # provider I/O started by the actor
        self.polling: asyncio.Task | None = None
        self.sweeping: asyncio.Task | None = None
        self.poll_waiters: list[asyncio.Future] = []  # resolved when the running poll is published
        self.next_waiters: list[asyncio.Future] = []  # ... by the poll that follows it
        self.poll_again = False
        self.publishing: asyncio.Future | None = None  # a snapshot being rendered in a worker thread
        self.waiters: set[asyncio.Future] = set()  # callers waiting for a request to be done (Poller._ask)
        self.retired = False

    @property
    def clock(self) -> Callable[[], float]:
        return self.poller._clock

    # -- the mailbox ------------------------------------------------------------

    def start(self) -> None:
        self.inbox = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"account {self.name}")

    def post(self, kind: str, *args: Any) -> None:
        """Hand a request to the actor (on the loop's thread)."""
        if self.inbox is not None and not self.retired:
            self.inbox.put_nowait((kind, args))

    async def _run(self) -> None:
        while True:
            kind, args = await self.inbox.get()
            try:
                await self._handle(kind, args)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the account's task or other accounts
                log.exception("account request failed unexpectedly", extra={"account": self.name, "request": kind})

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.work.add(task)
        task.add_done_callback(self.work.discard)
        return task

    def cancel(self) -> None:
        """Cancel the actor and every call it started (shutdown, retirement)."""
        self.retired = True
        for task in list(self.work):
            task.cancel()
        if self.task is not None:
            self.task.cancel()
        for waiter in [*self.poll_waiters, *self.next_waiters, *self.waiters]:
            if not waiter.done():
                waiter.cancel()

    async def drain(self) -> None:
        """Wait until the cancelled tasks have ended and the last publish has landed."""
        tasks = [t for t in [self.task, *self.work] if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.publishing is not None:
            await asyncio.gather(self.publishing, return_exceptions=True)

    # -- the one place where the account's state changes ------------------------

    async def _handle(self, kind: str, args: tuple) -> None:
        if kind == "poll":  # (scheduled: bool, waiter or None)
            self._request_poll(*args)
        elif kind == "polled":
            await self._polled(*args)
        elif kind == "poll_crashed":
            await self._poll_crashed()
        elif kind == "refresh":  # (phones or None, waiter or None)
            self._refresh(*args)
        elif kind == "numbers_read":
            await self._numbers_read(*args)
        elif kind == "sweep":  # (waiter or None)
            self._sweep(*args)
        elif kind == "health_read":  # (phones)
            self._spawn(self._read_health(sorted(set(args[0])), include_wabas=False, waiter=None))
        elif kind == "health":
            await self._health(*args)
        elif kind == "swept":
            await self._swept(*args)
        elif kind == "waba_update":
            await self._waba_update(*args)
        elif kind == "business_limit":
            await self._business_limit(*args)
        elif kind == "expire_facts":
            await self._expire_facts()
        elif kind == "resume":
            self._resume()
        elif kind == "drop_stale":
            await self._drop_stale()
        elif kind == "ack":  # every request posted before it has been handled
            if not args[0].done():
                args[0].set_result(None)
        else:
            raise ValueError(f"unknown request {kind!r}")

    async def _publish(self, snapshot: AccountSnapshot) -> None:
        """The next snapshot: the actor's own copy and the store's, in one swap each."""
        if self.retired:
            return
        self.snapshot = snapshot
        store = self.poller._store
        if len(snapshot.numbers) > OFFLOAD_NUMBERS:
            # Rendering many numbers is CPU work: a worker thread, so that scrapes keep answering; the
            # new exposition is compressed before it is served, so no scrape waits for its compression.
            # Shielded: once started it lands, and a retirement waits for it (see drain).
            self.publishing = asyncio.ensure_future(
                asyncio.to_thread(functools.partial(store.update, snapshot, compress_first=True))
            )
            await asyncio.shield(self.publishing)
        else:
            store.update(snapshot)

    async def _republish(self) -> None:
        cur = self.snapshot
        await self._publish(self.poller._snapshot(self, cur.poll, dict(cur.numbers), dict(cur.wabas),
                                                  dict(cur.configured), cur.dropped))

    # -- polls --------------------------------------------------------------------

    def _request_poll(self, scheduled: bool, waiter: asyncio.Future | None) -> None:
        if self.polling is not None:
            if not scheduled:  # a refresh or an explicit poll: one more poll after this one
                self.poll_again = True
                if waiter is not None:
                    self.next_waiters.append(waiter)
            elif waiter is not None:
                self.poll_waiters.append(waiter)
            return  # a scheduled poll while one runs: coalesced
        if waiter is not None:
            self.poll_waiters.append(waiter)
        if self.clock() < self.state.hold_until:
            self.post("drop_stale")  # paused: only the expiry of old numbers, and the waiters are answered
            return
        now = self.clock()
        self.polling = self._spawn(self._poll_io(now, time.monotonic()))

    async def _poll_io(self, now: float, started: float) -> None:
        """Provider I/O of one poll: every unit, concurrently (at most ``concurrency`` at once)."""
        account = self.account
        limit = asyncio.Semaphore(max(1, account.concurrency))

        async def one(unit):
            async with limit:
                try:
                    return await self.provider.poll_unit(unit, now)
                except ProviderError as err:
                    return err

        try:
            outcomes = await asyncio.gather(*(one(unit) for unit in account.units))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("poll failed unexpectedly", extra={"account": self.name})
            self.post("poll_crashed")
            return
        self.post("polled", now, started, list(outcomes))

    def _poll_done(self) -> None:
        self.polling = None
        done, self.poll_waiters = self.poll_waiters, []
        for waiter in done:
            if not waiter.done():
                waiter.set_result(None)
        if self.poll_again:
            self.poll_again = False
            self.poll_waiters, self.next_waiters = self.next_waiters, []
            self._request_poll(False, None)

    async def _poll_crashed(self) -> None:
        cur = self.snapshot
        now = self.clock()
        result = PollResult(False, now, 0.0, self.state.last_success_at,
                            dict(cur.poll.space_success) if cur.poll else {}, "internal error")
        try:
            await self._publish(self.poller._snapshot(self, result, dict(cur.numbers), dict(cur.wabas),
                                                      dict(cur.configured)))
        finally:
            self._poll_done()

    async def _polled(self, now: float, started: float, outcomes: list) -> None:
        try:
            await self._apply_poll(now, started, outcomes)
        finally:
            self._poll_done()

    async def _apply_poll(self, now: float, started: float, outcomes: list) -> None:
        account, state, poller = self.account, self.state, self.poller
        prev = self.snapshot
        first = prev.poll is None
        fold = merge.fold_poll([u.id for u in account.units], outcomes, prev.numbers, prev.wabas,
                               state.number_last_success, state.space_last_success, now,
                               account.max_staleness, account.max_numbers)
        for sid, err in fold.failures:
            poller._log_failure(account, sid, err)
        for sid, phones in fold.twice.items():  # once per unit and poll, not once per number
            log.warning("numbers listed twice; keeping the first of each",
                        extra={"account": self.name, "space_id": sid, "count": len(phones),
                               "phone_numbers": ",".join(phones[:5]) + (",..." if len(phones) > 5 else "")})
        if fold.dropped:
            log.warning("max_numbers reached: numbers left out of the metrics", extra={
                "account": self.name, "max_numbers": account.max_numbers, "dropped": fold.dropped,
                "hint": "raise max_numbers, or split the account's spaces over several accounts or exporters"})
        state.number_last_success = fold.number_last_success
        state.space_last_success = fold.space_last_success
        found = dict(fold.found)
        # A number re-read by a webhook refresh after this poll started is newer than this poll's reading.
        state.refreshed_at = {p: t for p, t in state.refreshed_at.items() if t >= now}
        for phone in state.refreshed_at:
            if phone in found and phone in prev.numbers:
                found[phone] = prev.numbers[phone].number
        # Likewise a health read published after this poll's units were read: keep it, not the older one.
        if state.health_read_at:
            found.update(merge.newer_health(prev.numbers, found, state.health_read_at, now))
        changed = [] if first else merge.changed_numbers(prev.numbers, found)
        numbers = merge.track(prev.numbers, found, self.clock())
        state.tiers_read_at = now
        state.told_limits = {b: limit for b, limit in state.told_limits.items() if limit.observed_at > now}
        finished = self.clock()
        failures = [err for _, err in fold.failures]
        success = not failures
        if success:
            state.last_success_at = finished
        error = "" if success else str(failures[-1])[:200]
        result = PollResult(success, finished, time.monotonic() - started, state.last_success_at, fold.space_ok, error)
        log.debug("poll finished", extra={"account": self.name, "success": success, "numbers": len(numbers),
                                         "duration_seconds": round(result.duration, 3)})
        await self._publish(poller._snapshot(self, result, numbers, fold.wabas, fold.configured, fold.dropped))
        self._after_poll([e for e in failures if isinstance(e, ProviderError)], fold.any_unit_ok)
        if Capability.HEALTH_SWEEP in self.provider.capabilities:
            if first:
                poller._kick_health(self.name)  # the first sweep needs the numbers: it starts now
            elif changed:
                self._spawn(self._read_health(changed, include_wabas=False, waiter=None))

    def _after_poll(self, failures: list[ProviderError], any_unit_ok: bool) -> None:
        """Credentials that are refused do not heal by retrying: back off much longer.

        ``any_unit_ok``: some unit answered, so the credential itself is accepted
        and only part of what it asked for was refused; no pause then.
        """
        state, account = self.state, self.account
        refused = [f for f in failures if f.reason in ("auth", "permission")]
        if not refused or any_unit_ok:
            state.rejections = 0
            return
        state.rejections += 1
        if state.rejections < REFUSALS_BEFORE_PAUSE:
            return  # one refusal can be a gateway's hiccup: the next poll comes at the usual time
        base = max(5 * account.poll_interval, 300.0)
        hold = min(3600.0, base * 2 ** (state.rejections - REFUSALS_BEFORE_PAUSE))
        state.hold_until = self.clock() + hold
        err = refused[-1]
        log.error(
            "credential refused: polls of this account are paused",
            extra={"account": account.name, "provider": account.provider, "reason": err.reason, "code": err.code,
                   "paused_seconds": round(hold), "hint": HINTS[err.reason] + "; then reload the configuration "
                   "(SIGHUP or POST /-/reload) to retry at once"},
        )

    def _resume(self) -> None:
        """A reload: a credential paused after refusals is tried again at once."""
        if self.state.hold_until <= self.clock():
            return
        self.state.hold_until = 0.0
        self.state.rejections = 0
        log.info("polls resumed by a reload", extra={"account": self.name})
        self._request_poll(False, None)

    # -- webhook refreshes ----------------------------------------------------------

    def _refresh(self, phones: frozenset[str] | None, waiter: asyncio.Future | None) -> None:
        cur = self.snapshot
        units = {unit.id: unit for unit in self.account.units}
        wanted = sorted(phones or ())
        known = [cur.numbers.get(p) for p in wanted] if cur.poll is not None else [None]
        if (not wanted or Capability.READ_NUMBER not in self.provider.capabilities
                or any(t is None or t.number.space_id not in units for t in known)):
            self._request_poll(False, waiter)  # a new number, or a provider that reads whole units only
            return
        if self.clock() < self.state.hold_until:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return  # refused credentials: the paused schedule decides
        self._spawn(self._read_numbers([(p, units[t.number.space_id], t.number) for p, t in zip(wanted, known)],
                                       waiter))

    async def _read_numbers(self, plan: list, waiter: asyncio.Future | None) -> None:
        fresh: dict[str, tuple[model.PhoneNumber, float]] = {}
        for phone, unit, number in plan:
            read_at = self.clock()
            try:
                got = await self.provider.poll_number(unit, number, read_at)
            except ProviderError as err:
                self.poller._log_failure(self.account, unit.id, err)  # the next scheduled poll tries again
                continue
            if got.phone_number != phone:
                got = dataclasses.replace(got, phone_number=phone)
            fresh[phone] = (got, read_at)
        self.post("numbers_read", fresh, waiter)

    async def _numbers_read(self, fresh: dict, waiter: asyncio.Future | None) -> None:
        try:
            if not fresh:
                return
            cur = self.snapshot
            for phone, (_, read_at) in fresh.items():
                self.state.refreshed_at[phone] = read_at
                self.state.number_last_success[phone] = read_at
            still_there = {phone: number for phone, (number, _) in fresh.items() if phone in cur.numbers}
            numbers = {**cur.numbers, **merge.track(cur.numbers, still_there, self.clock())}
            await self._publish(self.poller._snapshot(self, cur.poll, numbers, dict(cur.wabas), dict(cur.configured),
                                                      cur.dropped))
        finally:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- health sweeps (CAMS GetWhatsappHealthStatus) --------------------------------

    def _sweep(self, waiter: asyncio.Future | None) -> None:
        if Capability.HEALTH_SWEEP not in self.provider.capabilities or self.snapshot.poll is None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return  # not polled yet: the first poll starts the first sweep
        if self.sweeping is not None:
            if waiter is not None:
                self.sweeping.add_done_callback(lambda _: waiter.done() or waiter.set_result(None))
            return
        snap = self.snapshot
        phones = sorted(snap.numbers, key=lambda p: (self.state.health_read_at.get(p, float("-inf")), p))
        self._warn_if_slow(len(phones) + len(snap.wabas))
        self.sweeping = self._spawn(self._read_health(phones, include_wabas=True, waiter=waiter))

    def _warn_if_slow(self, calls: int) -> None:
        """Say once when the action's budget makes a sweep longer than health_poll_interval."""
        account = self.account
        qps = min(account.action_qps.get(HEALTH_ACTION, account.qps), account.qps)
        needed = calls / qps
        slow = needed > account.health_poll_interval
        if slow and not self.state.slow_sweep_warned:
            log.warning("health sweeps take longer than health_poll_interval: each number's health is read less often",
                        extra={"account": account.name, "calls": calls, "action_qps": qps,
                               "sweep_seconds_at_least": round(needed), "health_poll_interval_seconds":
                               account.health_poll_interval, "hint": "see whatsapp_exporter_health_sweep_duration_seconds"})
        self.state.slow_sweep_warned = slow

    async def _read_health(self, phones: list[str], *, include_wabas: bool, waiter: asyncio.Future | None) -> None:
        """Provider I/O of a sweep (or of a read of a few numbers); readings go to the actor as they come."""
        account, provider, clock = self.account, self.provider, self.clock
        units = {unit.id: unit for unit in account.units}
        complete = True
        started = time.monotonic()
        try:
            if include_wabas:
                for unit in account.units:
                    if clock() < self.state.hold_until:
                        complete = False
                        return
                    try:
                        await provider.read_waba_health(unit, clock())
                    except ProviderError as err:
                        complete = False
                        self.poller._log_failure(account, unit.id, err)
            readings: dict[str, model.Health] = {}
            read_at: dict[str, float] = {}
            last_publish = time.monotonic()
            for phone in phones:
                if clock() < self.state.hold_until:
                    complete = False
                    return
                tracked = self.snapshot.numbers.get(phone)
                unit = units.get(tracked.number.space_id) if tracked is not None else None
                if unit is None:
                    continue  # left the account meanwhile
                try:
                    readings[phone] = await provider.read_health(unit, phone, clock())
                    read_at[phone] = clock()
                except ProviderError as err:
                    complete = False
                    self.poller._log_failure(account, unit.id, err)
                    if err.reason in ("auth", "permission", "throttled"):
                        break  # the credential or its budget is failing: the next sweep tries again
                if readings and time.monotonic() - last_publish >= HEALTH_PUBLISH_INTERVAL:
                    self.post("health", readings, read_at)
                    readings, read_at, last_publish = {}, {}, time.monotonic()
            self.post("health", readings, read_at)
        finally:
            if include_wabas:
                self.post("swept", complete, time.monotonic() - started, waiter)
            elif waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _health(self, readings: Mapping[str, model.Health], read_at: Mapping[str, float]) -> None:
        self.state.health_read_at.update(read_at)
        cur = self.snapshot
        fresh = merge.with_health(cur.numbers, readings)
        numbers = {**cur.numbers, **merge.track(cur.numbers, fresh, self.clock())} if fresh else dict(cur.numbers)
        snapshot = self.poller._snapshot(self, cur.poll, numbers, dict(cur.wabas), dict(cur.configured), cur.dropped)
        if fresh or snapshot.node_entities != cur.node_entities:
            await self._publish(snapshot)

    async def _swept(self, complete: bool, duration: float, waiter: asyncio.Future | None) -> None:
        self.sweeping = None
        try:
            if complete:
                self.provider.sweep_finished(duration)
                await self._republish()
        finally:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- what webhooks tell ---------------------------------------------------------

    async def _waba_update(self, update: wabafacts.WabaUpdate) -> None:
        self.state.facts = wabafacts.apply(self.state.facts, update, self.clock())
        self.poller._state_file.save(self.name, self.state.facts)
        await self._republish()
        self.poller._schedule_expiry(self)

    async def _business_limit(self, business: str, tier: str) -> None:
        self.state.told_limits[business] = model.BusinessLimit(business, tier, self.clock(), "webhook")
        await self._republish()

    async def _expire_facts(self) -> None:
        active = self.state.facts.active(self.clock())
        if active is not self.state.facts:
            self.state.facts = active
            self.poller._state_file.save(self.name, active)
        await self._republish()
        self.poller._schedule_expiry(self)

    async def _drop_stale(self) -> None:
        """While polls are paused, still drop numbers older than max_staleness."""
        cur = self.snapshot
        now = self.clock()
        keep = {p: t for p, t in cur.numbers.items()
                if now - self.state.number_last_success.get(p, now) <= self.account.max_staleness}
        try:
            if len(keep) != len(cur.numbers):
                await self._publish(dataclasses.replace(cur, numbers=keep))
        finally:
            if self.polling is None:
                done, self.poll_waiters = self.poll_waiters, []
                for waiter in done:
                    if not waiter.done():
                        waiter.set_result(None)


class Poller:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        state_file: wabafacts.StateFile | None = None,
        backoff_sleep: Callable[[float], Awaitable[None]] | None = None,
    ):
        """``backoff_sleep``: how clients wait out a retry's backoff (default asyncio.sleep; tests pass
        a coroutine that returns at once)."""
        self._config = config
        self._backoff_sleep = backoff_sleep
        self._store = store
        self._clock = clock
        self._state_file = state_file or wabafacts.StateFile(None)
        self._restored = self._state_file.load(clock())
        self._stopping = False
        self._credentials: dict[tuple, _Credential] = {}
        self._actors: dict[str, _Actor] = {}
        for account in config.accounts:
            self._actors[account.name] = self._make_actor(account)
        store.update_many([actor.snapshot for actor in self._actors.values()])
        self._scheduler: AsyncIOScheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._own_thread: threading.Thread | None = None
        self._pending: dict[str, frozenset[str] | None] = {}  # account -> numbers of its pending refresh (None: all)
        self._refresh_seq = 0
        self._retiring: set[asyncio.Task] = set()

    def _make_actor(self, account: Account, facts=None, told_limits=None) -> _Actor:
        credential = self._credentials.get(account.credential_key)
        if credential is None or not credential.fits(account):
            credential = self._credentials[account.credential_key] = _Credential(account)
        credential.users += 1
        stats = _Stats()
        provider = make_provider(account, credential.bucket, stats.observe, credential.http, sleep=self._backoff_sleep)
        state = _AccountState(facts=facts if facts is not None else
                              wabafacts.restored(self._restored, account.name, self._clock()),
                              told_limits=dict(told_limits or {}))
        return _Actor(self, account, provider, credential, stats, state)

    # -- threads: public methods called off the loop run on it ----------------------------------

    def _on_loop(self) -> bool:
        return self._loop_thread == threading.get_ident()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the poller runs on; a thread of its own when none was given (tests, benchmarks)."""
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._loop_thread = threading.get_ident()
            ready.set()
            loop.run_forever()

        self._own_thread = threading.Thread(target=run, name="poller-loop", daemon=True)
        self._own_thread.start()
        ready.wait()
        self._loop = loop
        asyncio.run_coroutine_threadsafe(self._start_actors(), loop).result()
        return loop

    def _run(self, make: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``make()`` (a coroutine) on the poller's loop from another thread and wait for its result."""
        if self._on_loop():
            raise RuntimeError("called on the event loop: await the coroutine instead")
        if self._stopping:
            return None  # shut down: nothing runs any more
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(make(), loop).result(timeout)

    def _sync(self, func: Callable[..., Any], *args: Any, ack: str = "") -> Any:
        """Call ``func`` on the loop's thread (directly when already there).

        From another thread, with ``ack`` (an account name), also wait until
        that account's actor has handled every request posted so far.
        """
        if self._on_loop():
            return func(*args)
        if self._stopping:
            return False  # shut down: every request is refused
        loop = self._ensure_loop()

        async def call() -> Any:
            result = func(*args)
            actor = self._actors.get(ack)
            if result and actor is not None and not actor.retired:
                done = loop.create_future()
                actor.post("ack", done)
                await done
            return result

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    # -- lifecycle -------------------------------------------------------------------------

    async def _start_actors(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for actor in self._actors.values():
            if actor.task is None:
                actor.start()

    async def astart(self) -> None:
        """Start on the running loop: the actors, and the scheduler with every account's jobs."""
        await self._start_actors()
        self._scheduler = AsyncIOScheduler(
            event_loop=self._loop,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        for actor in self._actors.values():
            self._add_jobs(actor)
        self._scheduler.start()

    def start(self) -> None:
        """Start from a thread that is not the loop's (tests, benchmarks): on a loop thread of the poller's own."""
        self._run(self.astart)

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running and not self._stopping

    def begin_shutdown(self) -> None:
        """On the loop (a signal handler): cancel every poll at once; no provider call starts after this."""
        if self._stopping:
            return
        self._stopping = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for credential in self._credentials.values():
            credential.bucket.close()
        for actor in self._actors.values():
            if actor.work:  # calls cut short by the shutdown are no provider's fault
                log.debug("provider call abandoned: shutting down", extra={"account": actor.name,
                                                                          "tasks": len(actor.work)})
            actor.cancel()

    async def aclose(self) -> None:
        """Shut down: cancel everything, wait for the tasks, close the providers and the HTTP clients."""
        self.begin_shutdown()
        for actor in self._actors.values():
            await actor.drain()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        for actor in self._actors.values():
            await actor.provider.aclose()
        for credential in self._credentials.values():
            await credential.aclose()
        self._state_file.close()

    def stop(self) -> None:
        """:meth:`aclose` from another thread; stops the poller's own loop thread if it has one."""
        if self._loop is None or self._stopping:
            self._stopping = True
            self._state_file.close()
            return
        asyncio.run_coroutine_threadsafe(self.aclose(), self._loop).result()
        if self._own_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._own_thread.join(timeout=10)
            self._loop.close()
            self._own_thread = None

    # -- scheduling -------------------------------------------------------------------------

    def _add_jobs(self, actor: _Actor) -> None:
        account, name = actor.account, actor.name
        self._scheduler.add_job(
            self._job, IntervalTrigger(seconds=account.poll_interval, jitter=account.poll_jitter or None),
            args=[name, "poll"], id=name, name=f"poll {name}", next_run_time=_now_utc(), replace_existing=True)
        if Capability.HEALTH_SWEEP in actor.provider.capabilities:
            # The first sweep comes right after the first poll (it needs the numbers).
            interval = account.health_poll_interval
            self._scheduler.add_job(
                self._job, IntervalTrigger(seconds=interval, jitter=min(interval / 10, 30.0)), args=[name, "sweep"],
                id=f"health:{name}", name=f"health sweep {name}", next_run_time=None, replace_existing=True)
        self._schedule_expiry(actor)

    async def _job(self, name: str, kind: str) -> None:
        actor = self._actors.get(name)
        if actor is None:
            return
        if kind == "poll":
            actor.post("poll", True, None)
        elif kind == "sweep":
            actor.post("sweep", None)
        elif kind == "expire_facts":
            actor.post("expire_facts")
        elif kind == "refresh":
            phones = self._pending.pop(name, None)
            actor.post("refresh", phones, None)

    def _remove_jobs(self, name: str) -> None:
        if self._scheduler is None:
            return
        for job in self._scheduler.get_jobs():
            if job.id == name or job.id.startswith((f"health:{name}", f"expire:{name}", f"refresh:{name}:")):
                job.remove()

    def _kick_health(self, name: str) -> None:
        job = self._scheduler.get_job(f"health:{name}") if self.running else None
        if job is not None:
            job.modify(next_run_time=_now_utc())

    def _schedule_expiry(self, actor: _Actor) -> None:
        """Re-publish the account when its next restriction expires, so that it disappears on time."""
        at = actor.state.facts.next_expiry()
        if at is None or not self.running:
            return
        self._scheduler.add_job(self._job, DateTrigger(run_date=datetime.fromtimestamp(at, timezone.utc)),
                                args=[actor.name, "expire_facts"], id=f"expire:{actor.name}", replace_existing=True,
                                misfire_grace_time=None)

    # -- reloads ----------------------------------------------------------------------------

    async def areconfigure(self, config: Config) -> tuple[list[str], list[str], list[str]]:
        """Apply a reloaded configuration; returns the (kept, added, removed) account names.

        An account whose configuration did not change keeps its actor, its
        schedule and its data (and, paused after refused credentials, is polled
        again at once).  A changed account starts afresh (its old series go,
        the new ones come with its first poll); a removed one disappears.  A
        retired actor's calls are cancelled and awaited before its provider is
        closed; a credential no account uses any more is closed after that.
        """
        if self._stopping:
            raise RuntimeError("shutting down")
        wanted = {a.name: a for a in config.accounts}
        kept = [n for n, actor in self._actors.items() if wanted.get(n) == actor.account]
        removed = [n for n in self._actors if n not in kept]
        added = [n for n in wanted if n not in kept]
        retired = [self._actors.pop(name) for name in removed]
        for actor in retired:
            self._remove_jobs(actor.name)
            self._pending.pop(actor.name, None)
            actor.cancel()
        for actor in retired:
            await actor.drain()  # its last publish has landed: removing it from the store is final
        new = {}
        for name in added:
            old = next((a for a in retired if a.name == name), None)
            # a changed account keeps what only webhooks told about its WABAs
            new[name] = self._make_actor(wanted[name], old.state.facts if old else None,
                                         old.state.told_limits if old else None)
        self._actors.update(new)
        self._actors = {name: self._actors[name] for name in wanted}  # config order
        self._store.update_many([actor.snapshot for actor in new.values()], remove=tuple(removed))
        for actor in new.values():
            if self._loop is not None:
                actor.start()
            if self.running:
                self._add_jobs(actor)
        for name in kept:
            self._actors[name].post("resume")
        if retired:
            task = asyncio.get_running_loop().create_task(self._close_retired(retired))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            await asyncio.shield(task)
        return kept, added, removed

    async def _close_retired(self, retired: list[_Actor]) -> None:
        """Close what retired actors used, once nothing runs on it: providers, then unused credentials."""
        for actor in retired:
            try:
                await actor.provider.aclose()
            except Exception:
                log.exception("closing a retired provider failed", extra={"account": actor.name})
            actor.credential.users -= 1
        in_use = {id(actor.credential) for actor in self._actors.values()}
        for credential in {id(a.credential): a.credential for a in retired}.values():
            if credential.users <= 0 and id(credential) not in in_use:
                await credential.aclose()
                if self._credentials.get(credential.key) is credential:
                    del self._credentials[credential.key]

    def reconfigure(self, config: Config) -> tuple[list[str], list[str], list[str]]:
        """:meth:`areconfigure` from another thread (the reload thread); RuntimeError once shutdown began."""
        if self._stopping:
            raise RuntimeError("shutting down")
        return self._run(lambda: self.areconfigure(config))

    # -- requests (webhooks, tests) ---------------------------------------------------------

    def request_refresh(self, name: str, delay: float = 0.0, phones: Iterable[str] | None = None) -> bool:
        """Poll the account once more, ``delay`` seconds from now (a webhook said something changed).

        With ``phones`` (E.164), and a provider that declares READ_NUMBER
        (Meta, Kaleyra), only those numbers are read again, without waiting for
        a running poll; a number the exporter has not seen yet, or a provider
        that cannot read one number, means a poll of the whole account, right
        after a running one (polls never overlap).  Debounced: while a refresh
        of the account is pending, further requests join it (their numbers are
        added) and the call returns False.  Every call takes its tokens from
        the account's usual bucket, and nothing is read while the account's
        polls are paused after refused credentials.
        """
        return self._sync(self._request_refresh, name, delay, None if phones is None else frozenset(phones))

    def _request_refresh(self, name: str, delay: float, wanted: frozenset[str] | None) -> bool:
        actor = self._actors.get(name)
        if actor is None or not self.running:
            return False
        if name in self._pending:
            old = self._pending[name]
            self._pending[name] = None if old is None or wanted is None else old | wanted
            return False
        self._pending[name] = wanted
        self._refresh_seq += 1
        self._scheduler.add_job(
            self._job, DateTrigger(run_date=_now_utc() + timedelta(seconds=max(0.0, delay))),
            args=[name, "refresh"], id=f"refresh:{name}:{self._refresh_seq}", name=f"refresh {name}",
            misfire_grace_time=None)
        log.debug("refresh requested", extra={"account": name, "delay_seconds": delay,
                                              "numbers": "all" if wanted is None else len(wanted)})
        return True

    def request_health(self, name: str, phones: Iterable[str]) -> bool:
        """Read the health of these numbers now, before the sweep reaches them (a poll saw them change)."""
        return self._sync(self._request_health, name, tuple(phones))

    def _request_health(self, name: str, phones: tuple[str, ...]) -> bool:
        actor = self._actors.get(name)
        if actor is None or not self.running or Capability.HEALTH_SWEEP not in actor.provider.capabilities:
            return False
        actor.post("health_read", phones)
        return True

    def apply_waba_update(self, name: str, update: wabafacts.WabaUpdate) -> bool:
        """Merge a restriction, ban or violation of one of the account's WABAs; kept in the state file."""
        return self._sync(self._tell, name, "waba_update", update, ack=name)

    def apply_business_limit(self, name: str, waba_id: str, tier: str) -> bool:
        """A webhook told the limit of the portfolio that owns ``waba_id``; False when that business is unknown."""
        return self._sync(self._business_limit, name, waba_id, tier, ack=name)

    def _business_limit(self, name: str, waba_id: str, tier: str) -> bool:
        actor = self._actors.get(name)
        if actor is None:
            return False
        business = next((t.number.business_id for t in actor.snapshot.numbers.values()
                         if t.number.waba_id == waba_id and t.number.business_id), "")
        if not business or tier == model.UNKNOWN:
            return False
        return self._tell(name, "business_limit", business, tier)

    def _tell(self, name: str, kind: str, *args: Any) -> bool:
        actor = self._actors.get(name)
        if actor is None or actor.inbox is None or self._stopping:
            return False
        actor.post(kind, *args)
        return True

    async def apoll(self, name: str) -> None:
        """Poll the account now (after a running poll) and return once the result is published."""
        await self._ask(name, "poll", False)

    async def asweep(self, name: str) -> None:
        """Sweep the account's health now and return once it is published."""
        await self._ask(name, "sweep")

    async def apoll_numbers(self, name: str, phones: Iterable[str]) -> None:
        """Read these numbers again (see :meth:`request_refresh`) and return once published."""
        await self._ask(name, "refresh", frozenset(phones))

    async def _ask(self, name: str, kind: str, *args: Any) -> None:
        actor = self._actors.get(name)
        if actor is None or self._stopping:
            return
        if self._loop is None:  # first use, on the caller's running loop
            await self._start_actors()
        if actor.task is None:
            actor.start()
        waiter = asyncio.get_running_loop().create_future()
        actor.waiters.add(waiter)
        waiter.add_done_callback(actor.waiters.discard)
        actor.post(kind, *args, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if not actor.retired:
                raise  # our own caller was cancelled
            # the account was retired or the poller shut down: the request is void

    def poll_account(self, name: str) -> None:
        """:meth:`apoll` from another thread (tests, benchmarks)."""
        self._run(lambda: self.apoll(name))

    def sweep_health(self, name: str) -> None:
        self._run(lambda: self.asweep(name))

    def poll_numbers(self, name: str, phones: Iterable[str]) -> None:
        self._run(lambda: self.apoll_numbers(name, phones))

    def paused_until(self, name: str) -> float:
        """When the account's polls resume after refused credentials (0: not paused; in the clock's time)."""
        actor = self._actors.get(name)
        return actor.state.hold_until if actor is not None else 0.0

    # -- snapshots and logs -------------------------------------------------------------------

    def _snapshot(self, actor: _Actor, result: PollResult | None, numbers: dict, wabas: dict,
                  configured: dict, dropped: int = 0) -> AccountSnapshot:
        requests, errors = actor.stats.copy()
        provider, account, state = actor.provider, actor.account, actor.state
        now = self._clock()
        caps = provider.capabilities
        usage, regain = provider.usage() if Capability.USAGE in caps else ({}, {})
        sweeps = Capability.HEALTH_SWEEP in caps
        return AccountSnapshot(
            name=account.name,
            provider=account.provider,
            poll_interval=account.poll_interval,
            qps=account.qps,
            static_labels=dict(account.labels),
            actions=tuple(provider.actions),
            numbers=numbers,
            wabas=wabas,
            poll=result,
            requests=requests,
            errors=errors,
            configured=configured,
            dropped=dropped,
            usage=usage,
            regain=regain,
            businesses=merge.business_limits((t.number for t in numbers.values()), state.told_limits,
                                             state.tiers_read_at),
            waba_facts=state.facts.active(now),
            health_sweep_duration=provider.sweep_duration if sweeps else None,
            node_entities=provider.node_entities(now) if sweeps else (),
        )

    def _log_failure(self, account: Account, space_id: str, err: ProviderError) -> None:
        extra = {"account": account.name, "provider": account.provider, "action": err.action, "space_id": space_id,
                 "reason": err.reason, "code": err.code, "error": err.message[:200]}
        if self._stopping:  # calls cut short by the shutdown are no provider's fault
            log.debug("provider call abandoned: shutting down", extra=extra)
            return
        hint = HINTS.get(err.reason)
        if hint:
            extra["hint"] = hint
        level = logging.ERROR if err.reason in ("auth", "permission", "request") else logging.WARNING
        log.log(level, "provider call failed", extra=extra)


def _now_utc() -> datetime:
    return datetime.now(timezone.utc)
