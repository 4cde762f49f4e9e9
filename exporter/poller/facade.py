"""The public :class:`Poller`: the scheduler and its jobs, reloads, requests from other threads."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]  # APScheduler 3 ships no types
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]  # (idem)
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]  # (idem)

from exporter import merge, model, wabafacts
from exporter.config import Account, Config
from exporter.poller.actor import _Actor
from exporter.poller.bridge import _LoopBridge
from exporter.poller.state import HINTS, _AccountState, _Credential, _now_utc, _Stats, log
from exporter.providers import make_provider
from exporter.providers.base import Capability
from exporter.providers.errors import ProviderError
from exporter.store import AccountSnapshot, PollResult, Store

T = TypeVar("T")


class Poller(_LoopBridge):
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
        self._credentials: dict[tuple[str, str, str], _Credential] = {}
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
        self._retiring: set[asyncio.Task[None]] = set()

    def _make_actor(
        self,
        account: Account,
        facts: model.WabaFacts | None = None,
        told_limits: Mapping[str, model.BusinessLimit] | None = None,
    ) -> _Actor:
        credential = self._credentials.get(account.credential_key)
        if credential is None or not credential.fits(account):
            credential = self._credentials[account.credential_key] = _Credential(account)
        credential.users += 1
        stats = _Stats()
        provider = make_provider(account, credential.bucket, stats.observe, credential.http, sleep=self._backoff_sleep)
        state = _AccountState(
            facts=facts if facts is not None else wabafacts.restored(self._restored, account.name, self._clock()),
            told_limits=dict(told_limits or {}),
        )
        return _Actor(self, account, provider, credential, stats, state)

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
        first = _now_utc()  # one instant for every account: each round's polls become due together, in one wakeup
        for actor in self._actors.values():
            self._add_jobs(actor, first)
        self._scheduler.start()

    def start(self) -> None:
        """Start from a thread that is not the loop's (tests, benchmarks): on a loop thread of the poller's own."""
        self._run(self.astart)

    @property
    def _jobs(self) -> AsyncIOScheduler:
        """The running scheduler (callers check :attr:`running` first)."""
        if self._scheduler is None:
            raise RuntimeError("the poller's scheduler is not started")
        return self._scheduler

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
                log.debug(
                    "provider call abandoned: shutting down", extra={"account": actor.name, "tasks": len(actor.work)}
                )
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

    def _add_jobs(self, actor: _Actor, first: datetime | None = None) -> None:
        """The account's jobs; its first poll at ``first`` (default: now), then every ``poll_interval``."""
        account, name = actor.account, actor.name
        self._jobs.add_job(
            self._job,
            IntervalTrigger(seconds=account.poll_interval, jitter=account.poll_jitter or None),
            args=[name, "poll"],
            id=name,
            name=f"poll {name}",
            next_run_time=first or _now_utc(),
            replace_existing=True,
        )
        if Capability.HEALTH_SWEEP in actor.provider.capabilities:
            # The first sweep comes right after the first poll (it needs the numbers).
            interval = account.health_poll_interval
            self._jobs.add_job(
                self._job,
                IntervalTrigger(seconds=interval, jitter=min(interval / 10, 30.0)),
                args=[name, "sweep"],
                id=f"health:{name}",
                name=f"health sweep {name}",
                next_run_time=None,
                replace_existing=True,
            )
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
        job = self._jobs.get_job(f"health:{name}") if self.running else None
        if job is not None:
            job.modify(next_run_time=_now_utc())

    def _schedule_expiry(self, actor: _Actor) -> None:
        """Re-publish the account when its next restriction expires, so that it disappears on time."""
        at = actor.state.facts.next_expiry()
        if at is None or not self.running:
            return
        self._jobs.add_job(
            self._job,
            DateTrigger(run_date=datetime.fromtimestamp(at, UTC)),
            args=[actor.name, "expire_facts"],
            id=f"expire:{actor.name}",
            replace_existing=True,
            misfire_grace_time=None,
        )

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
            new[name] = self._make_actor(
                wanted[name], old.state.facts if old else None, old.state.told_limits if old else None
            )
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
        result = self._run(lambda: self.areconfigure(config))
        if result is None:  # the shutdown began meanwhile
            raise RuntimeError("shutting down")
        return result

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
        self._jobs.add_job(
            self._job,
            DateTrigger(run_date=_now_utc() + timedelta(seconds=max(0.0, delay))),
            args=[name, "refresh"],
            id=f"refresh:{name}:{self._refresh_seq}",
            name=f"refresh {name}",
            misfire_grace_time=None,
        )
        log.debug(
            "refresh requested",
            extra={"account": name, "delay_seconds": delay, "numbers": "all" if wanted is None else len(wanted)},
        )
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
        business = next(
            (
                t.number.business_id
                for t in actor.snapshot.numbers.values()
                if t.number.waba_id == waba_id and t.number.business_id
            ),
            "",
        )
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

    def _snapshot(
        self,
        actor: _Actor,
        result: PollResult | None,
        numbers: Mapping[str, model.TrackedNumber],
        wabas: Mapping[str, model.Waba],
        configured: Mapping[str, tuple[str, bool]],
        dropped: int = 0,
        businesses: Mapping[str, model.BusinessLimit] | None = None,
    ) -> AccountSnapshot:
        """The account's next snapshot; ``businesses``: its business limits, when the caller already has them
        (:func:`merge.business_limits` of these numbers, as a poll computes them in slices)."""
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
            businesses=merge.business_limits(
                (t.number for t in numbers.values()), state.told_limits, state.tiers_read_at
            )
            if businesses is None
            else businesses,
            waba_facts=state.facts.active(now),
            health_sweep_duration=provider.sweep_duration if sweeps else None,
            node_entities=provider.node_entities(now) if sweeps else (),
        )

    def _log_failure(self, account: Account, space_id: str, err: ProviderError) -> None:
        extra = {
            "account": account.name,
            "provider": account.provider,
            "action": err.action,
            "space_id": space_id,
            "reason": err.reason,
            "code": err.code,
            "error": err.message[:200],
        }
        if self._stopping:  # calls cut short by the shutdown are no provider's fault
            log.debug("provider call abandoned: shutting down", extra=extra)
            return
        hint = HINTS.get(err.reason)
        if hint:
            extra["hint"] = hint
        level = logging.ERROR if err.reason in ("auth", "permission", "request") else logging.WARNING
        log.log(level, "provider call failed", extra=extra)
