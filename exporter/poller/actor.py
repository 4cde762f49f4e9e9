"""The actor: the one task that owns an account's state (see :mod:`exporter.poller`)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from exporter import merge, model, wabafacts
from exporter.config import Account, Unit
from exporter.lane import Steps, finish, sliced
from exporter.poller.state import (
    HINTS,
    OFFLOAD_NUMBERS,
    REFUSALS_BEFORE_PAUSE,
    Request,
    Waiter,
    _AccountState,
    _Credential,
    _Stats,
    log,
)
from exporter.poller.sweeps import _HealthSweeps
from exporter.providers.base import Capability, Provider, UnitResult
from exporter.providers.errors import ProviderError
from exporter.store import AccountSnapshot, PollResult

if TYPE_CHECKING:
    from exporter.poller.facade import Poller


class _Actor(_HealthSweeps):
    """The one task that owns an account's state: every change is a request handled by :meth:`_handle`."""

    def __init__(
        self,
        poller: Poller,
        account: Account,
        provider: Provider,
        credential: _Credential,
        stats: _Stats,
        state: _AccountState,
    ):
        self.poller = poller
        self.account = account
        self.name = account.name
        self.provider = provider
        self.credential = credential
        self.stats = stats
        self.state = state
        self.snapshot = poller._snapshot(self, None, {}, {}, {})
        self.inbox: asyncio.Queue[Request] | None = None
        self.task: asyncio.Task[None] | None = None
        self.work: set[asyncio.Task[None]] = set()  # provider I/O started by the actor
        self.polling: asyncio.Task[None] | None = None
        self.sweeping: asyncio.Task[None] | None = None
        self.poll_waiters: list[Waiter] = []  # resolved when the running poll is published
        self.next_waiters: list[Waiter] = []  # ... by the poll that follows it
        self.poll_again = False
        self.publishing: asyncio.Future[None] | None = None  # a large snapshot being rendered and compressed
        self.waiters: set[Waiter] = set()  # callers waiting for a request to be done (Poller._ask)
        self.retired = False

    @property
    def clock(self) -> Callable[[], float]:
        return self.poller._clock

    # -- the mailbox ------------------------------------------------------------

    def start(self) -> None:
        self.inbox = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(self.inbox), name=f"account {self.name}")

    def post(self, kind: str, *args: Any) -> None:
        """Hand a request to the actor (on the loop's thread)."""
        if self.inbox is not None and not self.retired:
            self.inbox.put_nowait((kind, args))

    async def _run(self, inbox: asyncio.Queue[Request]) -> None:
        while True:
            kind, args = await inbox.get()
            try:
                await self._handle(kind, args)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the account's task or other accounts
                log.exception("account request failed unexpectedly", extra={"account": self.name, "request": kind})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
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

    async def _handle(self, kind: str, args: tuple[Any, ...]) -> None:
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
            # Rendering many numbers is CPU work: in slices on the loop, so that scrapes keep answering; the
            # new exposition is compressed before it is served, so no scrape waits for its compression.
            # Shielded: once started it lands, and a retirement waits for it (see drain).
            self.publishing = asyncio.ensure_future(store.publish_sliced(snapshot))
            await asyncio.shield(self.publishing)
        else:
            await store.publish(snapshot)  # one generation per loop turn for every account published in it

    async def _republish(self) -> None:
        cur = self.snapshot
        await self._publish(
            self.poller._snapshot(self, cur.poll, dict(cur.numbers), dict(cur.wabas), dict(cur.configured), cur.dropped)
        )

    # -- polls --------------------------------------------------------------------

    def _request_poll(self, scheduled: bool, waiter: Waiter | None) -> None:
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

        async def one(unit: Unit) -> UnitResult | ProviderError:
            async with limit:
                try:
                    return await self.provider.poll_unit(unit, now)
                except ProviderError as err:
                    return err

        try:
            if len(account.units) == 1:  # no task of its own: the call starts in this step, not a loop turn later
                outcomes = [await one(account.units[0])]
            else:
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
        result = PollResult(
            False,
            now,
            0.0,
            self.state.last_success_at,
            dict(cur.poll.space_success) if cur.poll else {},
            "internal error",
        )
        try:
            await self._publish(
                self.poller._snapshot(self, result, dict(cur.numbers), dict(cur.wabas), dict(cur.configured))
            )
        finally:
            self._poll_done()

    async def _polled(self, now: float, started: float, outcomes: list[UnitResult | ProviderError]) -> None:
        try:
            await self._apply_poll(now, started, outcomes)
        finally:
            self._poll_done()

    async def _apply_poll(self, now: float, started: float, outcomes: list[UnitResult | ProviderError]) -> None:
        account, state, poller = self.account, self.state, self.poller
        prev = self.snapshot
        first = prev.poll is None
        # A number re-read by a webhook refresh after this poll started is newer than this poll's reading.
        state.refreshed_at = {p: t for p, t in state.refreshed_at.items() if t >= now}
        # This poll reads the business limits: only what webhooks told after it started still wins.
        state.told_limits = {b: limit for b, limit in state.told_limits.items() if limit.observed_at > now}
        tracked_at = self.clock()

        def step() -> Steps[tuple[merge.PollStep, dict[str, model.BusinessLimit]]]:
            fold = yield from merge.fold_poll_steps(
                [u.id for u in account.units],
                outcomes,
                prev.numbers,
                prev.wabas,
                state.number_last_success,
                state.space_last_success,
                now,
                account.max_staleness,
                account.max_numbers,
            )
            stepped = yield from merge.poll_step_steps(
                fold, prev.numbers, state.refreshed_at, state.health_read_at, now, tracked_at, first=first
            )
            businesses = yield from merge.business_limits_steps(
                (t.number for t in stepped.numbers.values()), state.told_limits, now
            )
            return stepped, businesses

        polled = sum(len(o.numbers) for o in outcomes if isinstance(o, UnitResult))
        if max(polled, len(prev.numbers)) > OFFLOAD_NUMBERS:
            # Folding many numbers is CPU work: in slices on the loop, so that scrapes keep answering meanwhile.
            # Nothing else changes this account's state while the actor waits for it (the actor is this task).
            stepped, businesses = await sliced(step())
        else:
            stepped, businesses = finish(step())
        fold = stepped.fold
        for sid, err in fold.failures:
            poller._log_failure(account, sid, err)
        for sid, phones in fold.twice.items():  # once per unit and poll, not once per number
            log.warning(
                "numbers listed twice; keeping the first of each",
                extra={
                    "account": self.name,
                    "space_id": sid,
                    "count": len(phones),
                    "phone_numbers": ",".join(phones[:5]) + (",..." if len(phones) > 5 else ""),
                },
            )
        if fold.dropped:
            log.warning(
                "max_numbers reached: numbers left out of the metrics",
                extra={
                    "account": self.name,
                    "max_numbers": account.max_numbers,
                    "dropped": fold.dropped,
                    "hint": "raise max_numbers, or split the account's spaces over several accounts or exporters",
                },
            )
        state.number_last_success = fold.number_last_success
        state.space_last_success = fold.space_last_success
        changed, numbers = stepped.changed, stepped.numbers
        state.tiers_read_at = now
        finished = self.clock()
        failures = [err for _, err in fold.failures]
        success = not failures
        if success:
            state.last_success_at = finished
        error = "" if success else str(failures[-1])[:200]
        result = PollResult(success, finished, time.monotonic() - started, state.last_success_at, fold.space_ok, error)
        log.debug(
            "poll finished",
            extra={
                "account": self.name,
                "success": success,
                "numbers": len(numbers),
                "duration_seconds": round(result.duration, 3),
            },
        )
        await self._publish(
            poller._snapshot(self, result, numbers, fold.wabas, fold.configured, fold.dropped, businesses)
        )
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
            extra={
                "account": account.name,
                "provider": account.provider,
                "reason": err.reason,
                "code": err.code,
                "paused_seconds": round(hold),
                "hint": HINTS[err.reason] + "; then reload the configuration "
                "(SIGHUP or POST /-/reload) to retry at once",
            },
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

    def _refresh(self, phones: frozenset[str] | None, waiter: Waiter | None) -> None:
        cur = self.snapshot
        units = {unit.id: unit for unit in self.account.units}
        wanted = sorted(phones or ())
        known = [cur.numbers.get(p) for p in wanted] if cur.poll is not None else [None] * len(wanted)
        plan = [
            (p, units[t.number.space_id], t.number)
            for p, t in zip(wanted, known, strict=True)
            if t is not None and t.number.space_id in units
        ]
        if not wanted or Capability.READ_NUMBER not in self.provider.capabilities or len(plan) < len(wanted):
            self._request_poll(False, waiter)  # a new number, or a provider that reads whole units only
            return
        if self.clock() < self.state.hold_until:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return  # refused credentials: the paused schedule decides
        self._spawn(self._read_numbers(plan, waiter))

    async def _read_numbers(self, plan: list[tuple[str, Unit, model.PhoneNumber]], waiter: Waiter | None) -> None:
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

    async def _numbers_read(self, fresh: dict[str, tuple[model.PhoneNumber, float]], waiter: Waiter | None) -> None:
        try:
            if not fresh:
                return
            cur = self.snapshot
            for phone, (_, read_at) in fresh.items():
                self.state.refreshed_at[phone] = read_at
                self.state.number_last_success[phone] = read_at
            still_there = {phone: number for phone, (number, _) in fresh.items() if phone in cur.numbers}
            numbers = {**cur.numbers, **merge.track(cur.numbers, still_there, self.clock())}
            await self._publish(
                self.poller._snapshot(self, cur.poll, numbers, dict(cur.wabas), dict(cur.configured), cur.dropped)
            )
        finally:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- health readings of a sweep (the sweeps themselves: exporter/poller/sweeps.py) -----

    async def _health(self, readings: Mapping[str, model.Health], read_at: Mapping[str, float]) -> None:
        self.state.health_read_at.update(read_at)
        cur = self.snapshot
        fresh = merge.with_health(cur.numbers, readings)
        numbers = {**cur.numbers, **merge.track(cur.numbers, fresh, self.clock())} if fresh else dict(cur.numbers)
        snapshot = self.poller._snapshot(self, cur.poll, numbers, dict(cur.wabas), dict(cur.configured), cur.dropped)
        if fresh or snapshot.node_entities != cur.node_entities:
            await self._publish(snapshot)

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
        keep = {
            p: t
            for p, t in cur.numbers.items()
            if now - self.state.number_last_success.get(p, now) <= self.account.max_staleness
        }
        try:
            if len(keep) != len(cur.numbers):
                await self._publish(dataclasses.replace(cur, numbers=keep))
        finally:
            if self.polling is None:
                done, self.poll_waiters = self.poll_waiters, []
                for waiter in done:
                    if not waiter.done():
                        waiter.set_result(None)
