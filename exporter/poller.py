"""Scheduled polling: APScheduler drives one job per account.

* The first poll of every account starts at once; then every ``poll_interval``
  seconds, with jitter, so many accounts do not hit a provider in lockstep.
* Polls of one account never overlap (``max_instances=1``); a poll that runs
  longer than its interval delays the next one instead of stacking up
  (``coalesce=True``).
* Every credential has one :class:`~exporter.ratelimit.TokenBucket`, shared by
  all the accounts, spaces and actions that sign with it.
* A poll builds a complete new :class:`~exporter.store.AccountSnapshot` and
  hands it to the store in one step.  A space whose call failed keeps its last
  good data until ``max_staleness`` has passed since its last success; after
  that its numbers are dropped rather than served for ever.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter import model
from exporter.config import Account, Config
from exporter.providers.cams.client import CamsClient
from exporter.providers.errors import ProviderError
from exporter.ratelimit import TokenBucket
from exporter.store import AccountSnapshot, PollResult, Store

log = logging.getLogger(__name__)

CAMS_ACTIONS = ("QueryChatappPhoneNumbers", "QueryChatappBindWaba", "GetPhoneNumberVerificationStatus")

HINTS = {
    "auth": "check the AccessKey id and secret of this account, and the host clock (signatures expire after 15 minutes)",
    "permission": "grant the RAM policy in the README (cams:QueryChatappPhoneNumbers, cams:QueryChatappBindWaba, "
    "cams:GetPhoneNumberVerificationStatus) and check that the space belongs to this AccessKey's account",
    "request": "check the configured CustSpaceId / IsvCode of this space",
    "throttled": "the provider throttled the calls; lower qps or raise poll_interval if this persists",
}


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
    def __init__(self, account: Account, client: CamsClient, stats: _Stats):
        self.account = account
        self.client = client
        self.stats = stats
        self.waba_checked_at: dict[str, float] = {}
        self.verification_checked_at = float("-inf")
        self.verifications: dict[str, model.Verification] = {}
        self.space_last_success: dict[str, float] = {}
        self.last_success_at: float | None = None


class Poller:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        client_factory: Callable[..., CamsClient] = CamsClient,
    ):
        self._config = config
        self._store = store
        self._clock = clock
        self._stopping = threading.Event()
        self._buckets: dict[tuple, TokenBucket] = {}
        self._runtimes: dict[str, _AccountRuntime] = {}
        for account in config.accounts:
            bucket = self._buckets.setdefault(account.credential_key, TokenBucket(account.qps))
            stats = _Stats()
            client = client_factory(
                endpoint=account.endpoint,
                access_key_id=account.credentials.access_key_id,
                access_key_secret=account.credentials.access_key_secret,
                bucket=bucket,
                timeout=account.timeout,
                signature_version=account.signature_version,
                on_request=stats.observe,
                cancelled=self._stopping.is_set,
            )
            self._runtimes[account.name] = _AccountRuntime(account, client, stats)
        store.update_many([self._snapshot(rt, None, {}, {}) for rt in self._runtimes.values()])
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(1, min(32, len(self._runtimes))))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        for name, rt in self._runtimes.items():
            self._scheduler.add_job(
                self.poll_account,
                IntervalTrigger(seconds=rt.account.poll_interval, jitter=rt.account.poll_jitter or None),
                args=[name],
                id=name,
                name=f"poll {name}",
                next_run_time=_now_utc(),
            )
        self._scheduler.start()

    def stop(self) -> None:
        self._stopping.set()
        for bucket in self._buckets.values():
            bucket.cancel_waiters()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        for rt in self._runtimes.values():
            rt.client.close()

    # -- one poll ------------------------------------------------------------

    def poll_account(self, name: str) -> None:
        rt = self._runtimes[name]
        try:
            self._poll(rt)
        except Exception:  # a bug must not kill the scheduler thread or other accounts
            log.exception("poll failed unexpectedly", extra={"account": name})
            prev = self._store.account(name)
            now = self._clock()
            result = PollResult(False, now, 0.0, rt.last_success_at, dict(prev.poll.space_success) if prev and prev.poll else {},
                                "internal error")
            self._publish(rt, result, dict(prev.numbers) if prev else {}, dict(prev.wabas) if prev else {})

    def _poll(self, rt: _AccountRuntime) -> None:
        account = rt.account
        started = time.monotonic()
        now = self._clock()
        prev = self._store.account(account.name)
        prev_numbers = prev.numbers if prev else {}
        wabas = dict(prev.wabas) if prev else {}
        found: dict[str, model.PhoneNumber] = {}
        space_ok: dict[str, bool] = {}
        failures: list[ProviderError] = []

        for space in account.spaces:
            sid = space.cust_space_id
            ok = True
            try:
                for number in rt.client.query_phone_numbers(sid, space.isv_code, account.tier_vocabulary):
                    if number.phone_number in found:
                        log.warning("number listed in two spaces; keeping the first",
                                    extra={"account": account.name, "space_id": sid, "phone_number": number.phone_number})
                        continue
                    found[number.phone_number] = number
            except ProviderError as err:
                ok = False
                failures.append(err)
                self._log_failure(account, "QueryChatappPhoneNumbers", sid, err)
                if now - rt.space_last_success.get(sid, now) <= account.max_staleness:
                    for phone, tracked in prev_numbers.items():
                        if tracked.number.space_id == sid and phone not in found:
                            found[phone] = tracked.number
            if account.waba_poll_interval > 0 and now - rt.waba_checked_at.get(sid, float("-inf")) >= account.waba_poll_interval:
                try:
                    waba = rt.client.query_bind_waba(sid, space.isv_code)
                    rt.waba_checked_at[sid] = now
                    if waba is None:
                        wabas.pop(sid, None)
                    else:
                        wabas[sid] = waba
                except ProviderError as err:
                    ok = False
                    failures.append(err)
                    self._log_failure(account, "QueryChatappBindWaba", sid, err)
            space_ok[sid] = ok
            if ok:
                rt.space_last_success[sid] = now
            elif now - rt.space_last_success.get(sid, now) > account.max_staleness:
                wabas.pop(sid, None)

        if account.verification_poll_interval > 0 and now - rt.verification_checked_at >= account.verification_poll_interval:
            if self._check_verifications(rt, found, failures):
                rt.verification_checked_at = now

        numbers = self._track(prev_numbers, self._enrich(rt, found, wabas), self._clock())
        finished = self._clock()
        success = not failures
        if success:
            rt.last_success_at = finished
        error = "" if success else str(failures[-1])[:200]
        result = PollResult(success, finished, time.monotonic() - started, rt.last_success_at, space_ok, error)
        log.debug("poll finished", extra={"account": account.name, "success": success, "numbers": len(numbers),
                                         "duration_seconds": round(result.duration, 3)})
        self._store.update(self._snapshot(rt, result, numbers, wabas))

    def _check_verifications(self, rt: _AccountRuntime, found: dict[str, model.PhoneNumber], failures: list) -> bool:
        complete = True
        for phone, number in list(found.items()):
            if self._stopping.is_set():
                return False
            try:
                rt.verifications[phone] = rt.client.get_verification_status(number.space_id, phone)
            except ProviderError as err:
                complete = False
                failures.append(err)
                self._log_failure(rt.account, "GetPhoneNumberVerificationStatus", number.space_id, err)
        for phone in list(rt.verifications):
            if phone not in found:
                del rt.verifications[phone]
        return complete

    @staticmethod
    def _enrich(rt: _AccountRuntime, found: dict[str, model.PhoneNumber], wabas: dict[str, model.Waba]) -> dict[str, model.PhoneNumber]:
        out = {}
        for phone, number in found.items():
            changes = {}
            waba = wabas.get(number.space_id)
            if waba is not None and number.waba_id != waba.waba_id:
                changes["waba_id"] = waba.waba_id
            verification = rt.verifications.get(phone)
            if verification is not None:
                changes["code_verification_status"] = verification.code_verification_status
                if verification.phone_number_id:
                    changes["phone_number_id"] = verification.phone_number_id
            out[phone] = dataclasses.replace(number, **changes) if changes else number
        return out

    @staticmethod
    def _track(prev: dict, found: dict[str, model.PhoneNumber], now: float) -> dict[str, model.TrackedNumber]:
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

    def _publish(self, rt: _AccountRuntime, result: PollResult, numbers: dict, wabas: dict) -> None:
        self._store.update(self._snapshot(rt, result, numbers, wabas))

    def _snapshot(self, rt: _AccountRuntime, result: PollResult | None, numbers: dict, wabas: dict) -> AccountSnapshot:
        requests, errors = rt.stats.copy()
        account = rt.account
        actions = CAMS_ACTIONS if account.verification_poll_interval > 0 else CAMS_ACTIONS[:2]
        return AccountSnapshot(
            name=account.name,
            provider=account.provider,
            poll_interval=account.poll_interval,
            qps=account.qps,
            static_labels=dict(account.labels),
            actions=actions,
            numbers=numbers,
            wabas=wabas,
            poll=result,
            requests=requests,
            errors=errors,
        )

    @staticmethod
    def _log_failure(account: Account, action: str, space_id: str, err: ProviderError) -> None:
        extra = {"account": account.name, "provider": account.provider, "action": action, "space_id": space_id,
                 "reason": err.reason, "code": err.code, "error": err.message[:200]}
        hint = HINTS.get(err.reason)
        if hint:
            extra["hint"] = hint
        level = logging.ERROR if err.reason in ("auth", "permission", "request") else logging.WARNING
        log.log(level, "provider call failed", extra=extra)


def _now_utc():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
