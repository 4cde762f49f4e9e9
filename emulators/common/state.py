"""Scenario time, runtime overrides and the observable state of numbers and WABAs."""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..scenario import Scenario, Space


class _StateMixin:
    """Scenario time, overrides and observable state of :class:`ProviderEmulator`."""

    # what this mixin uses of the emulator (see the package docstring)
    scenario: Scenario
    provider_name: str
    known_number_attributes: frozenset[str]
    known_waba_attributes: frozenset[str]
    _logger: logging.Logger
    _clock: Callable[[], float]
    _lock: threading.RLock
    _t0: float | None
    _offset: float
    _number_overrides: dict[tuple[str, str], dict[str, Any]]
    _waba_overrides: dict[str, dict[str, Any]]
    _dirty: dict[str, float]
    _watch_wake: threading.Event

    # -- scenario time -----------------------------------------------------

    def scenario_time(self) -> float:
        with self._lock:
            elapsed = 0.0 if self._t0 is None else self._clock() - self._t0
            return max(0.0, elapsed) + self._offset

    def advance(self, seconds: float) -> float:
        """Move scenario time forward (the wall clock used for signatures is untouched)."""
        if seconds < 0:
            raise ValueError("scenario time only moves forward")
        with self._lock:
            self._offset += float(seconds)
        self._watch_wake.set()
        return self.scenario_time()

    def set_number(self, space_id: str, phone_number: str, **attributes: Any) -> None:
        """Override attributes of one number from now on (on top of its timeline); None omits a field."""
        space = self.scenario.space(space_id)
        if space is None or space.number(phone_number) is None:
            raise KeyError(f"no number {phone_number!r} in space {space_id!r}")
        with self._lock:
            self._number_overrides.setdefault((space_id, phone_number), {}).update(attributes)
            self._dirty[space_id] = self._clock()
        self._watch_wake.set()

    def set_waba(self, space_id: str, **attributes: Any) -> None:
        """Override attributes of a space's WABA from now on; None omits a field."""
        space = self.scenario.space(space_id)
        if space is None or space.waba is None:
            raise KeyError(f"no WABA in space {space_id!r}")
        with self._lock:
            self._waba_overrides.setdefault(space_id, {}).update(attributes)
            self._dirty[space_id] = self._clock()
        self._watch_wake.set()

    def clear_overrides(self) -> None:
        with self._lock:
            spaces = {sid for sid, _ in self._number_overrides} | set(self._waba_overrides)
            self._number_overrides.clear()
            self._waba_overrides.clear()
            now = self._clock()
            for sid in spaces:
                self._dirty[sid] = now
        self._watch_wake.set()

    # -- state evaluation --------------------------------------------------

    def number_state(self, space: Space, phone_number: str, t: float | None = None) -> dict[str, Any] | None:
        number = space.number(phone_number)
        if number is None:
            return None
        state = number.state_at(self.scenario_time() if t is None else t)
        with self._lock:
            state.update(self._number_overrides.get((space.space_id, phone_number), {}))
        state["phone_number"] = phone_number
        return state

    def waba_state(self, space: Space, t: float | None = None) -> dict[str, Any] | None:
        if space.waba is None:
            return None
        state = space.waba.state_at(self.scenario_time() if t is None else t)
        with self._lock:
            state.update(self._waba_overrides.get(space.space_id, {}))
        if state.get("present") is False:
            return None
        return state

    def _warn_unknown_attributes(self) -> None:
        def check(keys: Iterable[str], known: frozenset[str], where: str) -> None:
            for key in keys:
                if key not in known:
                    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
                    if close:
                        self._logger.warning(
                            "scenario %s: attribute %r is not a %s field (did you mean %r?)",
                            where,
                            key,
                            self.provider_name,
                            close[0],
                        )

        for space in self.scenario.spaces:
            for number in space.numbers:
                keys = set(number.attributes)
                for tr in number.timeline.transitions:
                    keys |= set(tr.set)
                check(keys, self.known_number_attributes, f"{space.space_id}/{number.phone_number}")
            if space.waba is not None:
                keys = set(space.waba.attributes)
                for tr in space.waba.timeline.transitions:
                    keys |= set(tr.set)
                check(keys, self.known_waba_attributes, f"{space.space_id}/waba")
