"""The contract between the generic poller and each provider.

A provider polls one *unit* at a time (a CAMS space, an NxCloud app, a
Kaleyra WABA) and returns the numbers it found, in the normalized model.  It
raises :class:`~exporter.providers.errors.ProviderError` when the unit as a
whole could not be read; partial failures (a WABA lookup, one number's
details) travel in :attr:`UnitResult.errors` and :attr:`UnitResult.stale`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from exporter import model
from exporter.config import Unit
from exporter.providers.errors import ProviderError


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


@dataclass
class UnitResult:
    numbers: list[model.PhoneNumber]
    #: the unit's WABA; ``None`` when none is bound, UNCHANGED when not looked up this time
    waba: model.Waba | None | _Unchanged = UNCHANGED
    #: failures inside the unit that did not prevent reading its numbers
    errors: list[ProviderError] = field(default_factory=list)
    #: numbers whose refresh failed: their last good data is served (within max_staleness)
    stale: tuple[str, ...] = ()
    #: explicitly configured numbers (E.164) and whether the provider answered for them
    configured: dict[str, bool] = field(default_factory=dict)


class Provider(Protocol):
    #: every action this provider may call (pre-initializes the request counters)
    actions: tuple[str, ...]

    def poll_unit(self, unit: Unit, now: float) -> UnitResult: ...

    def close(self) -> None: ...
