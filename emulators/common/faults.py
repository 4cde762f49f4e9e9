"""Fault injection and per-second admission of the emulators."""

from __future__ import annotations

import logging
import math
import random
import threading
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from ..scenario import DATA_FAULT_KINDS, WEBHOOK_FAULT_KINDS, Fault
from .records import ActiveFault, ApiError, Context, Reply


def data_faults(values: Iterable[str], lists: Iterable[str] | None = None) -> Mapping[str, frozenset[str]]:
    """What each data fault alters, for :attr:`ProviderEmulator.data_fault_actions`.

    ``unknown_enum`` and ``null_fields`` alter the answers of ``values`` (the actions that answer a
    number's or WABA's fields), ``duplicate_numbers`` those of ``lists`` (the actions that answer a
    list of numbers; default: the same actions).
    """
    altered = frozenset(values)
    return {
        "unknown_enum": altered,
        "null_fields": altered,
        "duplicate_numbers": altered if lists is None else frozenset(lists),
    }


class _FaultsMixin:
    """Fault injection and admission of :class:`ProviderEmulator`."""

    # what this mixin uses of the emulator (see the package docstring)
    provider_name: str
    data_fault_actions: ClassVar[Mapping[str, frozenset[str]]]
    _logger: logging.Logger
    _log_level: int
    _clock: Callable[[], float]
    _lock: threading.RLock
    _rng: random.Random
    _stop_event: threading.Event
    _hanging: int
    _scenario_faults: list[ActiveFault]
    _injected: list[ActiveFault]
    _qps_counts: dict[tuple[Hashable, int], int]
    _qps_second: int | None

    if TYPE_CHECKING:

        def scenario_time(self) -> float: ...
        def _fault_error(self, ctx: Context, fault: Fault) -> ApiError: ...
        def _html_reply(self, ctx: Context) -> Reply: ...
        def _record(self, req_method: str, path: str, arrival: float, ctx: Context, reply: Reply) -> None: ...

    # -- runtime control ---------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Add a fault at runtime; injected faults are checked before the scenario's own."""
        if not isinstance(fault, Fault):
            raise TypeError("inject() takes a Fault")
        with self._lock:
            self._injected.append(ActiveFault(replace(fault)))
        return fault

    def clear_faults(self, include_scenario: bool = False) -> None:
        """Drop injected faults (and, with ``include_scenario``, the scenario's own)."""
        with self._lock:
            self._injected.clear()
            if include_scenario:
                self._scenario_faults = []

    # -- flow control and faults -------------------------------------------

    def _admit(self, arrival: float, buckets: Sequence[tuple[Hashable, int | None]]) -> bool:
        """Count one request in every bucket for the calendar second of ``arrival``.

        ``buckets`` are ``(key, limit)`` pairs; ``limit`` None means unlimited.  If
        any bucket is already at its limit, nothing is counted and False is
        returned (a refused request does not consume quota).
        """
        second = math.floor(arrival)
        with self._lock:
            if self._qps_second != second:
                self._qps_counts = {k: v for k, v in self._qps_counts.items() if k[-1] >= second - 1}
                self._qps_second = second
            keys = [(key, second) for key, _ in buckets]
            counts = [self._qps_counts.get(k, 0) for k in keys]
            if any(limit is not None and count >= limit for (_, limit), count in zip(buckets, counts, strict=True)):
                return False
            for k, count in zip(keys, counts, strict=True):
                self._qps_counts[k] = count + 1
            return True

    def _apply_faults(self, ctx: Context) -> Reply | None:
        """Pick the first matching fault (after summing matching delays) and apply it.

        A fault matches when its selectors and time window do, its kind applies
        to the request (``refuse`` never does here: see :meth:`_refuse_now`; a data
        fault only for the actions in :attr:`data_fault_actions`), and, with a
        ``probability``, a draw from the emulator's generator says so; only then
        does it consume ``count``.  ``error`` raises the provider's error
        (:meth:`_fault_error`); ``html`` and ``reset`` return a reply; the other
        kinds return None and alter the normal answer later (``malformed``,
        ``truncate`` and ``oversize`` in :meth:`_serve`, data faults in the
        provider's :meth:`_data_fault` call).
        """
        t = self.scenario_time()
        phones = ctx.phone_numbers or (ctx.phone_number,)
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for active in self._injected + self._scenario_faults:
                if active.remaining == 0:
                    continue
                fault = active.fault
                if fault.kind == "refuse" or fault.kind in WEBHOOK_FAULT_KINDS:
                    continue
                if fault.kind in DATA_FAULT_KINDS and ctx.action not in self.data_fault_actions.get(fault.kind, ()):
                    continue
                if not any(
                    fault.selects(
                        access_key_id=ctx.access_key_id,
                        action=ctx.action,
                        space_id=ctx.space_id,
                        phone_number=phone,
                        t=t,
                    )
                    for phone in phones
                ):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                if fault.kind == "delay":
                    delay += fault.seconds or 0.0
                    ctx.fault = "delay"
                    continue
                chosen = fault
                break
        if delay:
            self._stop_event.wait(delay)
        if chosen is None:
            return None
        ctx.fault = chosen.kind
        ctx.fault_spec = chosen
        if chosen.kind == "error":
            raise self._fault_error(ctx, chosen)
        if chosen.kind == "html":
            return self._html_reply(ctx)
        if chosen.kind == "reset":
            return Reply(0, reset=True, code="fault:reset")
        if chosen.kind == "hang":
            # Never answers: held until the emulator stops, then the connection is reset.  The request is
            # recorded then, with its arrival time; ``hanging()`` counts the ones held meanwhile.
            with self._lock:
                self._hanging += 1
            try:
                self._stop_event.wait()
            finally:
                with self._lock:
                    self._hanging -= 1
            return Reply(0, reset=True, code="fault:hang")
        return None  # answered normally, then altered (see the docstring)

    def _refuse_now(self, method: str = "", path: str = "") -> bool:
        """True (and recorded) if a ``refuse`` fault takes this connection, or this request on a reused one."""
        with self._lock:
            candidates = [
                a for a in self._injected + self._scenario_faults if a.fault.kind == "refuse" and a.remaining != 0
            ]
            if not candidates:
                return False
        t = self.scenario_time()
        chosen: Fault | None = None
        with self._lock:
            for active in candidates:
                fault = active.fault
                if active.remaining == 0 or not fault.selects(
                    access_key_id=None, action=None, space_id=None, phone_number=None, t=t
                ):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                chosen = fault
                break
        if chosen is None:
            return False
        ctx = Context(request_id=str(uuid.uuid4()), fault="refuse", fault_spec=chosen, path=path)
        self._record(method, path, self._clock(), ctx, Reply(0, reset=True, code="fault:refuse"))
        self._logger.log(self._log_level, "%s emulator: connection refused (fault)", self.provider_name)
        return True
