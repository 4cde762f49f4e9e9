"""The actor's health sweeps (CAMS ``GetWhatsappHealthStatus``), mixed into :class:`~exporter.poller.actor._Actor`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from exporter import model
from exporter.config import Account
from exporter.poller.state import (
    HEALTH_ACTION,
    HEALTH_PUBLISH_INTERVAL,
    Waiter,
    _AccountState,
    log,
)
from exporter.providers.base import Capability, Provider
from exporter.providers.errors import ProviderError
from exporter.store import AccountSnapshot

if TYPE_CHECKING:
    from exporter.poller.facade import Poller


class _HealthSweeps:
    """Health sweeps of one account; mixed into :class:`~exporter.poller.actor._Actor`, whose state they change."""

    if TYPE_CHECKING:  # provided by _Actor
        poller: Poller
        account: Account
        provider: Provider
        state: _AccountState
        snapshot: AccountSnapshot
        sweeping: asyncio.Task[None] | None

        @property
        def clock(self) -> Callable[[], float]: ...

        def post(self, kind: str, *args: Any) -> None: ...

        def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

        async def _publish(self, snapshot: AccountSnapshot) -> None: ...

        async def _republish(self) -> None: ...

    # -- health sweeps (CAMS GetWhatsappHealthStatus) --------------------------------

    def _sweep(self, waiter: Waiter | None) -> None:
        if Capability.HEALTH_SWEEP not in self.provider.capabilities or self.snapshot.poll is None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return  # not polled yet: the first poll starts the first sweep
        if self.sweeping is not None:
            if waiter is not None:

                def answer(_: asyncio.Task[None]) -> None:
                    if not waiter.done():
                        waiter.set_result(None)

                self.sweeping.add_done_callback(answer)
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
            log.warning(
                "health sweeps take longer than health_poll_interval: each number's health is read less often",
                extra={
                    "account": account.name,
                    "calls": calls,
                    "action_qps": qps,
                    "sweep_seconds_at_least": round(needed),
                    "health_poll_interval_seconds": account.health_poll_interval,
                    "hint": "see whatsapp_exporter_health_sweep_duration_seconds",
                },
            )
        self.state.slow_sweep_warned = slow

    async def _read_health(self, phones: list[str], *, include_wabas: bool, waiter: Waiter | None) -> None:
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
                home = units.get(tracked.number.space_id) if tracked is not None else None
                if home is None:
                    continue  # left the account meanwhile
                try:
                    readings[phone] = await provider.read_health(home, phone, clock())
                    read_at[phone] = clock()
                except ProviderError as err:
                    complete = False
                    self.poller._log_failure(account, home.id, err)
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

    async def _swept(self, complete: bool, duration: float, waiter: Waiter | None) -> None:
        self.sweeping = None
        try:
            if complete:
                self.provider.sweep_finished(duration)
                await self._republish()
        finally:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
