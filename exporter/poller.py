"""Scheduled polling: APScheduler drives one job per account.

* The first poll of every account starts at once; then every ``poll_interval``
  seconds, with jitter, so many accounts do not hit a provider in lockstep.
* Polls of one account never overlap (``max_instances=1``); a poll that runs
  longer than its interval delays the next one instead of stacking up
  (``coalesce=True``).  The one exception is a webhook's re-read of the few
  numbers it names, which does not wait for a running poll (see
  :meth:`Poller.poll_numbers`).
* Every credential has one :class:`~exporter.ratelimit.TokenBucket`, shared by
  all the accounts, spaces and actions that sign with it.
* Providers whose health is a read of its own (CAMS ``GetWhatsappHealthStatus``,
  5 calls per second) get a second job per account, the health sweep, every
  ``health_poll_interval``: it reads every number's health (and each WABA's)
  within the action's own budget, numbers that a poll found changed first.
* Facts that only webhooks tell (WABA restrictions, bans, violations, a
  portfolio's new limit) are merged into the account's snapshot here too, and
  the WABA facts are kept in the state file (:mod:`exporter.wabafacts`).
* A poll builds a complete new :class:`~exporter.store.AccountSnapshot` and
  hands it to the store in one step.  A space whose call failed keeps its last
  good data until ``max_staleness`` has passed since its last success; after
  that its numbers are dropped rather than served for ever.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent import futures
import time
from collections import Counter
from datetime import timedelta
from typing import Callable, Iterable, Mapping

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from exporter import merge, model, wabafacts
from exporter.config import Account, Config
from exporter.providers import make_provider
from exporter.providers.base import UNCHANGED, Provider
from exporter.providers.errors import ProviderError
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


class _Stats:
    """Request counters of one account, updated by the client on every attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()

    def observe(self, action: str, reason: str | None) -> None:
        with self._lock:
            self.requests[action] += 1
            if reason is not None:
                self.errors[(action, reason)] += 1

    def copy(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        with self._lock:
            return dict(self.requests), dict(self.errors)


class _AccountRuntime:
    def __init__(self, account: Account, provider: Provider, stats: _Stats):
        self.account = account
        self.provider = provider
        self.stats = stats
        # Units of one account are polled concurrently (the shared token bucket
        # still paces every request), so one slow space cannot hold the others back.
        self.pool = futures.ThreadPoolExecutor(max_workers=account.concurrency, thread_name_prefix=f"poll-{account.name}")
        self.number_last_success: dict[str, float] = {}
        self.space_last_success: dict[str, float] = {}
        self.last_success_at: float | None = None
        self.hold_until = 0.0  # auth/permission failures: no polls before this time
        self.rejections = 0  # consecutive polls refused for auth/permission reasons
        self.running = threading.Lock()  # held during a poll
        self.publishing = threading.Lock()  # held while a poll or a number refresh merges and publishes its result
        self.refreshed_at: dict[str, float] = {}  # numbers re-read by a webhook refresh, and when
        self.retired = False  # removed by a reload: publish nothing more
        self.facts = model.NO_FACTS  # WABA restrictions, bans, violations (webhooks; the state file)
        self.told_limits: dict[str, model.BusinessLimit] = {}  # portfolio limits webhooks told, by business
        self.health_read_at: dict[str, float] = {}  # number -> when the sweep last read its health
        self.slow_sweep_warned = False
        self.tiers_read_at = 0.0  # when the last poll that read the numbers' tiers started

    @property
    def client(self):
        return getattr(self.provider, "client", None)


class Poller:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        state_file: wabafacts.StateFile | None = None,
    ):
        self._config = config
        self._store = store
        self._clock = clock
        self._state_file = state_file or wabafacts.StateFile(None)
        self._restored = self._state_file.load(clock())
        self._stopping = threading.Event()
        self._buckets: dict[tuple, TokenBucket] = {}
        self._runtimes: dict[str, _AccountRuntime] = {}
        for account in config.accounts:
            self._runtimes[account.name] = self._make_runtime(account)
        store.update_many([self._snapshot(rt, None, {}, {}, {}) for rt in self._runtimes.values()])
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=32)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._reconfigure_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._pending: dict[str, frozenset[str] | None] = {}  # account -> numbers of its pending refresh (None: all)
        self._refresh_seq = 0

    def _make_runtime(self, account: Account) -> _AccountRuntime:
        bucket = self._buckets.get(account.credential_key)
        if bucket is None or bucket.qps != account.qps or bucket.action_qps != _binding(account):
            bucket = self._buckets[account.credential_key] = TokenBucket(account.qps, action_qps=account.action_qps)
        stats = _Stats()
        provider = make_provider(account, bucket, stats.observe, self._stopping.is_set)
        rt = _AccountRuntime(account, provider, stats)
        rt.facts = wabafacts.restored(self._restored, account.name, self._clock())
        return rt

    # -- lifecycle -----------------------------------------------------------

    def _add_job(self, name: str, rt: _AccountRuntime) -> None:
        self._scheduler.add_job(
            self.poll_account,
            IntervalTrigger(seconds=rt.account.poll_interval, jitter=rt.account.poll_jitter or None),
            args=[name],
            id=name,
            name=f"poll {name}",
            next_run_time=_now_utc(),
            replace_existing=True,
        )

    def _add_health_job(self, name: str, rt: _AccountRuntime) -> None:
        """The account's health sweep; its first run comes right after the first poll (see :meth:`_poll`)."""
        if not getattr(rt.provider, "health_sweeps", False):
            return
        interval = rt.account.health_poll_interval
        self._scheduler.add_job(
            self.sweep_health, IntervalTrigger(seconds=interval, jitter=min(interval / 10, 30.0)), args=[name],
            id=f"health:{name}", name=f"health sweep {name}", next_run_time=None, replace_existing=True)

    def _remove_jobs(self, name: str) -> None:
        for job in self._scheduler.get_jobs():
            if job.id == name or job.id.startswith((f"health:{name}", f"expire:{name}")):
                job.remove()

    def start(self) -> None:
        for name, rt in self._runtimes.items():
            self._add_job(name, rt)
            self._add_health_job(name, rt)
            self._schedule_expiry(rt)
        self._scheduler.start()

    def stop(self) -> None:
        self._stopping.set()
        for bucket in self._buckets.values():
            bucket.cancel_waiters()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        for rt in self._runtimes.values():
            rt.pool.shutdown(wait=True)
            rt.provider.close()
        self._state_file.close()

    def reconfigure(self, config: Config) -> tuple[list[str], list[str], list[str]]:
        """Apply a reloaded configuration; returns the (kept, added, removed) account names.

        An account whose configuration did not change keeps its runtime, its
        schedule and its data.  A changed account starts afresh (its old series
        go, the new ones come with its first poll); a removed one disappears.
        """
        with self._reconfigure_lock:
            wanted = {a.name: a for a in config.accounts}
            kept = [n for n, rt in self._runtimes.items() if wanted.get(n) == rt.account]
            removed = [n for n in self._runtimes if n not in kept]
            added = [n for n in wanted if n not in kept]
            retired = [self._runtimes[n] for n in removed]
            for name in removed:
                rt = self._runtimes.pop(name)
                rt.retired = True
                if self._scheduler.running:
                    self._remove_jobs(name)
                if rt.running.acquire(blocking=False):  # not polling: close now, else the poll closes it
                    try:
                        rt.pool.shutdown(wait=False)
                        rt.provider.close()
                    finally:
                        rt.running.release()
            # Buckets still in use keep their state; a credential whose qps changed gets a new one.
            self._buckets = {rt.account.credential_key: self._buckets[rt.account.credential_key]
                             for rt in self._runtimes.values()}
            new = {name: self._make_runtime(wanted[name]) for name in added}
            for name in added:
                old = next((rt for rt in retired if rt.account.name == name), None)
                if old is not None:  # a changed account keeps what only webhooks told about its WABAs
                    new[name].facts, new[name].told_limits = old.facts, old.told_limits
            self._runtimes.update(new)
            self._runtimes = {name: self._runtimes[name] for name in wanted}  # config order
            self._store.update_many([self._snapshot(rt, None, {}, {}, {}) for rt in new.values()], remove=tuple(removed))
            if self._scheduler.running:
                for name, rt in new.items():
                    self._add_job(name, rt)
                    self._add_health_job(name, rt)
                    self._schedule_expiry(rt)
            return kept, added, removed

    def request_refresh(self, name: str, delay: float = 0.0, phones: Iterable[str] | None = None) -> bool:
        """Poll the account once more, ``delay`` seconds from now (a webhook said something changed).

        With ``phones`` (E.164), and a provider that reads numbers one at a time
        (Meta, Kaleyra), only those numbers are read again, without waiting for
        a running poll (see :meth:`poll_numbers`); a number the exporter has not
        seen yet, or a provider that cannot read one number, means a poll of the
        whole account, which waits for a running one (polls never overlap).
        Debounced: while a refresh of the account is pending, further requests
        join it (their numbers are added) and the call returns False.  Every
        call takes its tokens from the account's usual bucket, and nothing is
        read while the account's polls are paused after refused credentials.
        """
        rt = self._runtimes.get(name)
        if rt is None or rt.retired or self._stopping.is_set() or not self._scheduler.running:
            return False
        wanted = None if phones is None else frozenset(phones)
        with self._refresh_lock:
            if name in self._pending:
                old = self._pending[name]
                self._pending[name] = None if old is None or wanted is None else old | wanted
                return False
            self._pending[name] = wanted
            self._refresh_seq += 1
            # A job id of its own: the previous refresh may still be waiting for the
            # account's running poll, and APScheduler skips a job whose previous instance
            # still runs (max_instances=1), which would leave this one pending for ever.
            self._scheduler.add_job(
                self._refresh, DateTrigger(run_date=_now_utc() + timedelta(seconds=max(0.0, delay))),
                args=[name], id=f"refresh:{name}:{self._refresh_seq}", name=f"refresh {name}",
                misfire_grace_time=None,
            )
        log.debug("refresh requested", extra={"account": name, "delay_seconds": delay,
                                              "numbers": "all" if wanted is None else len(wanted)})
        return True

    def _refresh(self, name: str) -> None:
        with self._refresh_lock:
            phones = self._pending.pop(name, None)
        if phones:
            self.poll_numbers(name, phones)
        else:
            self.poll_account(name)

    def poll_numbers(self, name: str, phones: Iterable[str]) -> None:
        """Read only these numbers of the account again; the rest of its data stays as it is.

        Unlike a poll, this does not wait for a running poll of the account: a
        poll of a large account takes many seconds, and an event is worth
        acting on now.  The calls still take their tokens from the account's
        bucket.  Both publish under the account's publish lock, and a poll
        that started before a number was re-read keeps the newer reading.
        """
        rt = self._runtimes.get(name)
        if rt is None or rt.retired:
            return
        try:
            self._poll_numbers(rt, sorted(set(phones)))
        except Exception:  # a bug must not kill the scheduler thread or other accounts
            log.exception("refresh failed unexpectedly", extra={"account": name})

    def _poll_numbers(self, rt: _AccountRuntime, phones: list[str]) -> None:
        read_one = getattr(rt.provider, "poll_number", None)
        prev = self._store.account(rt.account.name)
        units = {unit.id: unit for unit in rt.account.units}
        known = [prev.numbers.get(p) for p in phones] if prev is not None and prev.poll is not None else [None]
        if read_one is None or any(t is None or t.number.space_id not in units for t in known):
            self.poll_account(rt.account.name)  # a new number, or a provider that reads whole units only
            return
        if self._clock() < rt.hold_until:
            return  # refused credentials: the paused schedule decides
        fresh: dict[str, model.PhoneNumber] = {}
        for phone, tracked in zip(phones, known):
            unit = units[tracked.number.space_id]
            read_at = self._clock()
            try:
                number = read_one(unit, tracked.number, read_at)
            except ProviderError as err:
                self._log_failure(rt.account, unit.id, err)  # the next scheduled poll tries again
                continue
            if number.phone_number != phone:
                number = dataclasses.replace(number, phone_number=phone)
            fresh[phone] = number
            rt.refreshed_at[phone] = read_at
            rt.number_last_success[phone] = read_at
        if not fresh:
            return
        with rt.publishing:
            cur = self._store.account(rt.account.name)
            if cur is None:
                return
            still_there = {phone: number for phone, number in fresh.items() if phone in cur.numbers}
            numbers = {**cur.numbers, **self._track(cur.numbers, still_there, self._clock())}
            self._publish(rt, self._snapshot(rt, cur.poll, numbers, dict(cur.wabas), dict(cur.configured), cur.dropped))

    # -- health sweeps (CAMS GetWhatsappHealthStatus) --------------------------

    def _kick_health(self, name: str) -> None:
        job = self._scheduler.get_job(f"health:{name}") if self._scheduler.running else None
        if job is not None:
            job.modify(next_run_time=_now_utc())

    def request_health(self, name: str, phones: Iterable[str]) -> bool:
        """Read the health of these numbers now, before the sweep reaches them (a poll saw them change)."""
        rt = self._runtimes.get(name)
        if rt is None or rt.retired or self._stopping.is_set() or not self._scheduler.running:
            return False
        with self._refresh_lock:
            self._refresh_seq += 1
            seq = self._refresh_seq
        self._scheduler.add_job(self._read_health_job, DateTrigger(run_date=_now_utc()), args=[name, sorted(set(phones))],
                                id=f"health:{name}:{seq}", name=f"health read {name}", misfire_grace_time=None)
        return True

    def _read_health_job(self, name: str, phones: list[str]) -> None:
        rt = self._runtimes.get(name)
        if rt is None or rt.retired:
            return
        try:
            self._read_health(rt, phones, include_wabas=False)
        except Exception:  # a bug must not kill the scheduler thread or other accounts
            log.exception("health read failed unexpectedly", extra={"account": name})

    def sweep_health(self, name: str) -> None:
        """Read the health of every number of the account (and of its WABAs), within the action's budget.

        Numbers whose health was never read go first, then the longest unread.
        Results are published as they come (at most once a second), so a
        BLOCKED number shows up without waiting for the end of a long sweep.
        """
        rt = self._runtimes.get(name)
        if rt is None or rt.retired or not getattr(rt.provider, "health_sweeps", False):
            return
        try:
            snap = self._store.account(name)
            if snap is None or snap.poll is None:
                return  # not polled yet: the first poll starts the first sweep
            phones = sorted(snap.numbers, key=lambda p: (rt.health_read_at.get(p, float("-inf")), p))
            self._warn_if_slow(rt, len(phones) + len(snap.wabas))
            started = time.monotonic()
            if self._read_health(rt, phones, include_wabas=True):
                rt.provider.sweep_duration = time.monotonic() - started
                self._republish(rt)
        except Exception:  # a bug must not kill the scheduler thread or other accounts
            log.exception("health sweep failed unexpectedly", extra={"account": name})

    def _warn_if_slow(self, rt: _AccountRuntime, calls: int) -> None:
        """Say once when the action's budget makes a sweep longer than health_poll_interval."""
        account = rt.account
        qps = min(account.action_qps.get(HEALTH_ACTION, account.qps), account.qps)
        needed = calls / qps
        slow = needed > account.health_poll_interval
        if slow and not rt.slow_sweep_warned:
            log.warning("health sweeps take longer than health_poll_interval: each number's health is read less often",
                        extra={"account": account.name, "calls": calls, "action_qps": qps,
                               "sweep_seconds_at_least": round(needed), "health_poll_interval_seconds":
                               account.health_poll_interval, "hint": "see whatsapp_exporter_health_sweep_duration_seconds"})
        rt.slow_sweep_warned = slow

    def _read_health(self, rt: _AccountRuntime, phones: list[str], *, include_wabas: bool) -> bool:
        """Read and publish health; True when every read was made (a complete sweep)."""
        account = rt.account
        units = {unit.id: unit for unit in account.units}
        complete = True
        if include_wabas:
            for unit in account.units:
                if self._stopping.is_set() or rt.retired or self._clock() < rt.hold_until:
                    return False
                try:
                    rt.provider.read_waba_health(unit, self._clock())
                except ProviderError as err:
                    complete = False
                    self._log_failure(account, unit.id, err)
        readings: dict[str, model.Health] = {}
        last_publish = time.monotonic()
        for phone in phones:
            if self._stopping.is_set() or rt.retired or self._clock() < rt.hold_until:
                return False
            snap = self._store.account(account.name)
            tracked = snap.numbers.get(phone) if snap is not None else None
            unit = units.get(tracked.number.space_id) if tracked is not None else None
            if unit is None:
                continue  # left the account meanwhile
            try:
                readings[phone] = rt.provider.read_health(unit, phone, self._clock())
                rt.health_read_at[phone] = self._clock()
            except ProviderError as err:
                complete = False
                self._log_failure(account, unit.id, err)
                if err.reason in ("auth", "permission", "throttled"):
                    break  # the credential or its budget is failing: the next sweep tries again
            if readings and time.monotonic() - last_publish >= HEALTH_PUBLISH_INTERVAL:
                self._publish_health(rt, readings)
                readings, last_publish = {}, time.monotonic()
        self._publish_health(rt, readings)
        return complete

    def _publish_health(self, rt: _AccountRuntime, readings: Mapping[str, model.Health]) -> None:
        with rt.publishing:
            cur = self._store.account(rt.account.name)
            if cur is None:
                return
            fresh = merge.with_health(cur.numbers, readings)
            numbers = {**cur.numbers, **self._track(cur.numbers, fresh, self._clock())} if fresh else dict(cur.numbers)
            snapshot = self._snapshot(rt, cur.poll, numbers, dict(cur.wabas), dict(cur.configured), cur.dropped)
            if fresh or snapshot.node_entities != cur.node_entities:
                self._publish(rt, snapshot)

    def _republish(self, rt: _AccountRuntime) -> None:
        """Publish the account again as it is (its facts or sweep figures changed)."""
        with rt.publishing:
            cur = self._store.account(rt.account.name)
            if cur is not None:
                self._publish(rt, self._snapshot(rt, cur.poll, dict(cur.numbers), dict(cur.wabas),
                                                 dict(cur.configured), cur.dropped))

    # -- what webhooks tell --------------------------------------------------

    def apply_waba_update(self, name: str, update: wabafacts.WabaUpdate) -> bool:
        """Merge a restriction, ban or violation of one of the account's WABAs; kept in the state file."""
        rt = self._runtimes.get(name)
        if rt is None or rt.retired:
            return False
        with rt.publishing:
            rt.facts = wabafacts.apply(rt.facts, update, self._clock())
            self._state_file.save(name, rt.facts)
        self._republish(rt)
        self._schedule_expiry(rt)
        return True

    def apply_business_limit(self, name: str, waba_id: str, tier: str) -> bool:
        """A webhook told the limit of the portfolio that owns ``waba_id``; False when that business is unknown."""
        rt = self._runtimes.get(name)
        snap = self._store.account(name)
        if rt is None or rt.retired or snap is None:
            return False
        business = next((t.number.business_id for t in snap.numbers.values()
                         if t.number.waba_id == waba_id and t.number.business_id), "")
        if not business or tier == model.UNKNOWN:
            return False
        with rt.publishing:
            rt.told_limits[business] = model.BusinessLimit(business, tier, self._clock(), "webhook")
        self._republish(rt)
        return True

    def _schedule_expiry(self, rt: _AccountRuntime) -> None:
        """Re-publish the account when its next restriction expires, so that it disappears on time."""
        at = rt.facts.next_expiry()
        if at is None or not self._scheduler.running:
            return
        from datetime import datetime, timezone

        self._scheduler.add_job(self._expire_facts, DateTrigger(run_date=datetime.fromtimestamp(at, timezone.utc)),
                                args=[rt.account.name], id=f"expire:{rt.account.name}", replace_existing=True,
                                misfire_grace_time=None)

    def _expire_facts(self, name: str) -> None:
        rt = self._runtimes.get(name)
        if rt is None or rt.retired:
            return
        with rt.publishing:
            active = rt.facts.active(self._clock())
            if active is not rt.facts:
                rt.facts = active
                self._state_file.save(name, active)
        self._republish(rt)
        self._schedule_expiry(rt)

    # -- one poll ------------------------------------------------------------

    def poll_account(self, name: str) -> None:
        rt = self._runtimes.get(name)
        if rt is None or rt.retired:
            return
        with rt.running:
            try:
                self._poll_once(rt)
            finally:
                if rt.retired:
                    rt.pool.shutdown(wait=False)
                    rt.provider.close()

    def _poll_once(self, rt: _AccountRuntime) -> None:
        """One poll of the whole account; the caller holds ``rt.running``."""
        name = rt.account.name
        try:
            if self._clock() < rt.hold_until:
                self._expire(rt)
                return
            failures, any_unit_ok = self._poll(rt)
            self._after_poll(rt, failures, any_unit_ok)
        except Exception:  # a bug must not kill the scheduler thread or other accounts
            log.exception("poll failed unexpectedly", extra={"account": name})
            with rt.publishing:
                prev = self._store.account(name)
                now = self._clock()
                result = PollResult(False, now, 0.0, rt.last_success_at,
                                    dict(prev.poll.space_success) if prev and prev.poll else {}, "internal error")
                self._publish(rt, self._snapshot(rt, result, dict(prev.numbers) if prev else {},
                                                 dict(prev.wabas) if prev else {}, dict(prev.configured) if prev else {}))

    def _publish(self, rt: _AccountRuntime, snapshot: AccountSnapshot) -> None:
        if not rt.retired:
            self._store.update(snapshot)

    def _after_poll(self, rt: _AccountRuntime, failures: list[ProviderError], any_unit_ok: bool) -> None:
        """Credentials that are refused do not heal by retrying: back off much longer.

        ``any_unit_ok``: some unit answered, so the credential itself is accepted
        and only part of what it asked for was refused; no pause then.
        """
        refused = [f for f in failures if f.reason in ("auth", "permission")]
        if not refused or any_unit_ok:
            rt.rejections = 0
            return
        rt.rejections += 1
        if rt.rejections < REFUSALS_BEFORE_PAUSE:
            return  # one refusal can be a gateway's hiccup: the next poll comes at the usual time
        account = rt.account
        base = max(5 * account.poll_interval, 300.0)
        hold = min(3600.0, base * 2 ** (rt.rejections - REFUSALS_BEFORE_PAUSE))
        rt.hold_until = self._clock() + hold
        err = refused[-1]
        log.error(
            "credential refused: polls of this account are paused",
            extra={"account": account.name, "provider": account.provider, "reason": err.reason, "code": err.code,
                   "paused_seconds": round(hold), "hint": HINTS[err.reason] + "; then reload the configuration "
                   "(SIGHUP or POST /-/reload) to retry at once"},
        )

    def _expire(self, rt: _AccountRuntime) -> None:
        """While polls are paused, still drop numbers older than max_staleness."""
        with rt.publishing:
            prev = self._store.account(rt.account.name)
            if prev is None:
                return
            now = self._clock()
            keep = {p: t for p, t in prev.numbers.items()
                    if now - rt.number_last_success.get(p, now) <= rt.account.max_staleness}
            if len(keep) != len(prev.numbers):
                self._publish(rt, dataclasses.replace(prev, numbers=keep))

    def _poll(self, rt: _AccountRuntime) -> tuple[list[ProviderError], bool]:
        account = rt.account
        started = time.monotonic()
        now = self._clock()
        prev = self._store.account(account.name)
        prev_numbers = prev.numbers if prev else {}
        wabas = dict(prev.wabas) if prev else {}
        configured: dict[str, tuple[str, bool]] = {}
        found: dict[str, model.PhoneNumber] = {}
        space_ok: dict[str, bool] = {}
        failures: list[ProviderError] = []

        def keep_last_good(phone: str) -> None:
            """Serve a number's last good data while it is younger than max_staleness."""
            old = prev_numbers.get(phone)
            if old is not None and phone not in found and now - rt.number_last_success.get(phone, now) <= account.max_staleness:
                found[phone] = old.number

        def poll_unit(unit):
            try:
                return rt.provider.poll_unit(unit, now)
            except ProviderError as err:
                return err

        if len(account.units) == 1 or account.concurrency == 1:
            outcomes = [poll_unit(unit) for unit in account.units]
        else:
            outcomes = list(rt.pool.map(poll_unit, account.units))

        for unit, result in zip(account.units, outcomes):
            sid = unit.id
            if isinstance(result, ProviderError):
                err = result
                failures.append(err)
                self._log_failure(account, sid, err)
                space_ok[sid] = False
                for phone, tracked in prev_numbers.items():
                    if tracked.number.space_id == sid:
                        keep_last_good(phone)
                if now - rt.space_last_success.get(sid, now) > account.max_staleness:
                    wabas.pop(sid, None)
                continue
            twice = []
            for number in result.numbers:
                if number.phone_number in found:
                    twice.append(number.phone_number)
                    continue
                found[number.phone_number] = number
                rt.number_last_success[number.phone_number] = now
            if twice:  # once per unit and poll, not once per number
                log.warning("numbers listed twice; keeping the first of each",
                            extra={"account": account.name, "space_id": sid, "count": len(twice),
                                   "phone_numbers": ",".join(twice[:5]) + (",..." if len(twice) > 5 else "")})
            for phone in result.stale:
                keep_last_good(phone)
            if result.waba is not UNCHANGED:
                if result.waba is None:
                    wabas.pop(sid, None)
                else:
                    wabas[sid] = result.waba
            for err in result.errors:
                failures.append(err)
                self._log_failure(account, sid, err)
            for phone, ok in result.configured.items():
                configured[phone] = (sid, ok)
            space_ok[sid] = not result.errors and not result.stale
            if space_ok[sid]:
                rt.space_last_success[sid] = now

        dropped = 0
        if account.max_numbers and len(found) > account.max_numbers:
            keep = sorted(found)[: account.max_numbers]
            dropped = len(found) - len(keep)
            found = {phone: found[phone] for phone in keep}
            log.warning("max_numbers reached: numbers left out of the metrics", extra={
                "account": account.name, "max_numbers": account.max_numbers, "dropped": dropped,
                "hint": "raise max_numbers, or split the account's spaces over several accounts or exporters"})
        for phone in list(rt.number_last_success):
            if phone not in found:
                del rt.number_last_success[phone]
        with rt.publishing:
            # A number re-read by a webhook refresh after this poll started is newer than this poll's reading.
            current = self._store.account(account.name)
            base = current.numbers if current is not None else prev_numbers
            for phone, read_at in list(rt.refreshed_at.items()):
                if read_at < now:
                    del rt.refreshed_at[phone]
                elif phone in found and phone in base:
                    found[phone] = base[phone].number
            # Likewise a health read published after this poll's units were read: keep it, not the older one.
            if rt.health_read_at:
                found.update(merge.newer_health(base, found, rt.health_read_at, now))
            changed = merge.changed_numbers(base, found) if prev is not None and prev.poll is not None else []
            numbers = self._track(base, found, self._clock())
            rt.tiers_read_at = now
            rt.told_limits = {b: limit for b, limit in rt.told_limits.items() if limit.observed_at > now}
            finished = self._clock()
            success = not failures
            if success:
                rt.last_success_at = finished
            error = "" if success else str(failures[-1])[:200]
            result = PollResult(success, finished, time.monotonic() - started, rt.last_success_at, space_ok, error)
            log.debug("poll finished", extra={"account": account.name, "success": success, "numbers": len(numbers),
                                             "duration_seconds": round(result.duration, 3)})
            self._publish(rt, self._snapshot(rt, result, numbers, wabas, configured, dropped))
        if getattr(rt.provider, "health_sweeps", False):
            if prev is None or prev.poll is None:
                self._kick_health(account.name)  # the first sweep needs the numbers: it starts now
            elif changed:
                self.request_health(account.name, changed)
        # A unit that answered at all proves the credential works, even if one of its
        # calls (a number's details, the WABA lookup) was refused: that must not pause the account.
        return failures, any(not isinstance(outcome, ProviderError) for outcome in outcomes)

    @staticmethod
    def _track(prev: Mapping[str, model.TrackedNumber], found: dict[str, model.PhoneNumber], now: float) -> dict[str, model.TrackedNumber]:
        tracked = {}
        for phone, number in found.items():
            old = prev.get(phone)
            if old is None:
                tracked[phone] = model.TrackedNumber(number, model.ChangeTimes.first_seen(now))
            elif old.number == number:
                tracked[phone] = old  # same object: the store reuses its rendered chunks
            else:
                tracked[phone] = model.TrackedNumber(number, old.changes.advanced(old.number, number, now))
        return tracked

    def _snapshot(self, rt: _AccountRuntime, result: PollResult | None, numbers: dict, wabas: dict,
                  configured: dict, dropped: int = 0) -> AccountSnapshot:
        requests, errors = rt.stats.copy()
        usage_of = getattr(rt.provider, "usage", None)
        usage, regain = usage_of() if usage_of is not None else ({}, {})
        node_entities = getattr(rt.provider, "node_entities", None)
        now = self._clock()
        account = rt.account
        return AccountSnapshot(
            name=account.name,
            provider=account.provider,
            poll_interval=account.poll_interval,
            qps=account.qps,
            static_labels=dict(account.labels),
            actions=tuple(rt.provider.actions),
            numbers=numbers,
            wabas=wabas,
            poll=result,
            requests=requests,
            errors=errors,
            configured=configured,
            dropped=dropped,
            usage=usage,
            regain=regain,
            businesses=merge.business_limits((t.number for t in numbers.values()), rt.told_limits, rt.tiers_read_at),
            waba_facts=rt.facts.active(now),
            health_sweep_duration=getattr(rt.provider, "sweep_duration", None),
            node_entities=node_entities(now) if node_entities is not None else (),
        )

    def _log_failure(self, account: Account, space_id: str, err: ProviderError) -> None:
        extra = {"account": account.name, "provider": account.provider, "action": err.action, "space_id": space_id,
                 "reason": err.reason, "code": err.code, "error": err.message[:200]}
        if self._stopping.is_set():  # calls cut short by the shutdown are no provider's fault
            log.debug("provider call abandoned: shutting down", extra=extra)
            return
        hint = HINTS.get(err.reason)
        if hint:
            extra["hint"] = hint
        level = logging.ERROR if err.reason in ("auth", "permission", "request") else logging.WARNING
        log.log(level, "provider call failed", extra=extra)


def _binding(account: Account) -> dict[str, float]:
    """The per-action limits a bucket for this account keeps (those tighter than its qps)."""
    return TokenBucket(account.qps, action_qps=account.action_qps).action_qps


def _now_utc():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
