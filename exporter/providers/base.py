"""The contract between the generic poller and each provider.

A provider polls one *unit* at a time (a CAMS space, an NxCloud app, a
Kaleyra WABA) and returns the numbers it found, in the normalized model.  It
raises :class:`~exporter.providers.errors.ProviderError` when the unit as a
whole could not be read; partial failures (a WABA lookup, one number's
details) travel in :attr:`UnitResult.errors` and :attr:`UnitResult.stale`.

Every I/O method is a coroutine run on the exporter's one event loop (the
account's poll runs its units as concurrent tasks); a provider needs no locks.
Cancellation (shutdown, reload) may interrupt any ``await``.

What every provider does (:class:`Provider`): ``poll_unit``, ``aclose``, and
the ``actions`` it may call.  What only some do is *declared* in
``capabilities`` (a frozenset of the :class:`Capability` names below); the
poller calls a capability's methods only when it is declared, and
:class:`BaseProvider` gives every method a default, so a new provider
(Twilio, Infobip, ...) subclasses it and declares what it adds:

* ``READ_NUMBER``: ``poll_number(unit, number, now)`` reads one known number
  again (a webhook named it) without polling the whole unit.
* ``USAGE``: ``usage()`` reports the provider's API usage ratios and the
  seconds until access returns (Meta's Graph usage headers).
* ``HEALTH_SWEEP``: health is read by sweeps of its own, not by polls:
  ``read_health(unit, phone, now)``, ``read_waba_health(unit, now)``,
  ``node_entities(now)``, and ``sweep_finished(seconds)`` (CAMS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

from exporter import model
from exporter.config import Account, Unit
from exporter.providers.errors import ProviderError
from exporter.providers.transport import BudgetedClient

#: the provider's client type (signing and transport)
ClientT = TypeVar("ClientT", bound=BudgetedClient)


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


@dataclass
class UnitResult:
    numbers: list[model.PhoneNumber]
    #: the unit's WABA; ``None`` when none is bound, UNCHANGED when not looked up this time
    waba: model.Waba | _Unchanged | None = UNCHANGED
    #: failures inside the unit that did not prevent reading its numbers
    errors: list[ProviderError] = field(default_factory=list)
    #: numbers whose refresh failed: their last good data is served (within max_staleness)
    stale: tuple[str, ...] = ()
    #: explicitly configured numbers (E.164) and whether the provider answered for them
    configured: dict[str, bool] = field(default_factory=dict)


class Capability:
    """Names of the optional capabilities a provider declares in ``capabilities``."""

    READ_NUMBER = "read_number"
    USAGE = "usage"
    HEALTH_SWEEP = "health_sweep"


@runtime_checkable
class Provider(Protocol):
    #: every action this provider may call (pre-initializes the request counters)
    actions: tuple[str, ...]
    #: the optional capabilities it has (:class:`Capability` names)
    capabilities: frozenset[str]
    #: the duration of the last complete health sweep (HEALTH_SWEEP providers; None before one)
    sweep_duration: float | None

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult: ...

    async def poll_number(self, unit: Unit, number: model.PhoneNumber, now: float) -> model.PhoneNumber: ...

    def usage(self) -> tuple[dict[tuple[str, str, str], float], dict[str, float]]: ...

    async def read_health(self, unit: Unit, phone_number: str, now: float) -> model.Health: ...

    async def read_waba_health(self, unit: Unit, now: float) -> model.Health | None: ...

    def node_entities(self, now: float) -> tuple[model.EntityHealth, ...]: ...

    def sweep_finished(self, seconds: float) -> None: ...

    async def aclose(self) -> None: ...


class BaseProvider(Generic[ClientT]):
    """Defaults for every optional capability: a provider overrides what it declares."""

    actions: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    #: the duration of the last complete health sweep (HEALTH_SWEEP providers)
    sweep_duration: float | None = None

    def __init__(self, account: Account, client: ClientT) -> None:
        self.account = account
        self.client = client

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        raise NotImplementedError

    async def poll_number(self, unit: Unit, number: model.PhoneNumber, now: float) -> model.PhoneNumber:
        raise NotImplementedError(f"{type(self).__name__} does not declare {Capability.READ_NUMBER}")

    def usage(self) -> tuple[dict[tuple[str, str, str], float], dict[str, float]]:
        return {}, {}

    async def read_health(self, unit: Unit, phone_number: str, now: float) -> model.Health:
        raise NotImplementedError(f"{type(self).__name__} does not declare {Capability.HEALTH_SWEEP}")

    async def read_waba_health(self, unit: Unit, now: float) -> model.Health | None:
        raise NotImplementedError(f"{type(self).__name__} does not declare {Capability.HEALTH_SWEEP}")

    def node_entities(self, now: float) -> tuple[model.EntityHealth, ...]:
        return ()

    def sweep_finished(self, seconds: float) -> None:
        self.sweep_duration = seconds

    async def aclose(self) -> None:
        """Close the client (its HTTP client only if it owns it: a credential's shared one is the poller's)."""
        await self.client.aclose()
