"""CAMS polling: numbers per space, the bound WABA, code verification and sending health.

Health (``GetWhatsappHealthStatus``, Meta's ``health_status`` relayed) is not
part of a poll: CAMS allows only 5 such calls per second, so the poller sweeps
them over the account's numbers on their own schedule
(``health_poll_interval``) through :meth:`CamsProvider.read_health`.  The
provider keeps the last reading of every number and WABA, and each poll's
numbers carry it (:meth:`poll_unit`) until it is older than
:meth:`health_max_age`; a number whose health was never read carries none.
"""

from __future__ import annotations

import dataclasses

from exporter import model
from exporter.config import Account, Unit
from exporter.providers.base import BaseProvider, Capability, UnitResult
from exporter.providers.cams.client import CamsClient
from exporter.providers.errors import ProviderError

HEALTH_ACTION = "GetWhatsappHealthStatus"
ACTIONS = ("QueryChatappPhoneNumbers", "QueryChatappBindWaba", "GetPhoneNumberVerificationStatus", HEALTH_ACTION)


class CamsProvider(BaseProvider[CamsClient]):
    def __init__(self, account: Account, client: CamsClient):
        super().__init__(account, client)
        self.actions = tuple(
            a
            for a in ACTIONS
            if (a != "GetPhoneNumberVerificationStatus" or account.verification_poll_interval > 0)
            and (a != HEALTH_ACTION or account.health_poll_interval > 0)
        )
        #: health is read by sweeps of its own, not by polls
        self.capabilities = frozenset({Capability.HEALTH_SWEEP} if account.health_poll_interval > 0 else ())
        self._wabas: dict[str, model.Waba | None] = {}
        self._waba_checked_at: dict[str, float] = {}
        self._verifications: dict[str, dict[str, model.Verification]] = {}  # by space, then number
        self._verified_at: dict[str, float] = {}
        #: space -> phone -> (read at, health)
        self._health: dict[str, dict[str, tuple[float, model.Health]]] = {}
        self._waba_health: dict[str, tuple[float, model.Health]] = {}  # by space
        self.sweep_duration: float | None = None  # the last complete sweep (set by the poller)

    @staticmethod
    def _due(last: float | None, interval: float, now: float) -> bool:
        return interval > 0 and (last is None or now - last >= interval)

    # -- health ----------------------------------------------------------------

    def health_max_age(self) -> float:
        """A health reading older than this is no longer exported: three sweeps (as long as they really take)."""
        sweep = max(self.account.health_poll_interval, self.sweep_duration or 0.0)
        return max(self.account.max_staleness, 3 * sweep)

    async def read_health(self, unit: Unit, phone_number: str, now: float) -> model.Health:
        """One number's health (one call), remembered for the following polls."""
        health = await self.client.get_health_status(unit.id, phone_number=phone_number)
        self._health.setdefault(unit.id, {})[phone_number] = (now, health)
        return health

    async def read_waba_health(self, unit: Unit, now: float) -> model.Health | None:
        """The health of the space's bound WABA (and the business and app above it); None without a WABA."""
        waba = self._wabas.get(unit.id)
        if waba is None:
            return None
        health = await self.client.get_health_status(unit.id, waba_id=waba.waba_id)
        self._waba_health[unit.id] = (now, health)
        return health

    def node_entities(self, now: float) -> tuple[model.EntityHealth, ...]:
        """WABA, BUSINESS and APP entities read from the WABA nodes (not too old), for every space."""
        oldest = now - self.health_max_age()
        readings = [(sid, health) for sid, (at, health) in self._waba_health.items() if at >= oldest]
        entities = []
        for sid, health in readings:
            waba = self._wabas.get(sid)
            for entity in health.entities:
                if entity.entity_type == "WABA" and not entity.entity_id and waba is not None:
                    entity = dataclasses.replace(entity, entity_id=waba.waba_id)
                entities.append(entity)
        return tuple(entities)

    def with_health(self, unit: Unit, number: model.PhoneNumber, now: float) -> model.PhoneNumber:
        reading = self._health.get(unit.id, {}).get(number.phone_number)
        if reading is None or now - reading[0] > self.health_max_age():
            return number
        return number.with_health(reading[1])

    def _forget_health(self, space_id: str, phones: set[str]) -> None:
        """Readings of numbers that left the space go (the space's own readings only: one space per poll)."""
        readings = self._health.get(space_id)
        if readings:
            for phone in [p for p in readings if p not in phones]:
                del readings[phone]

    # -- polls -------------------------------------------------------------------

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        account, sid = self.account, unit.id
        numbers = await self.client.query_phone_numbers(sid, unit.params.get("isv_code"), account.tier_vocabulary)
        result = UnitResult(numbers=numbers)

        if self._due(self._waba_checked_at.get(sid), account.waba_poll_interval, now):
            try:
                result.waba = self._wabas[sid] = await self.client.query_bind_waba(sid, unit.params.get("isv_code"))
                self._waba_checked_at[sid] = now
            except ProviderError as err:
                result.errors.append(err)

        if self._due(self._verified_at.get(sid), account.verification_poll_interval, now):
            old = self._verifications.get(sid, {})
            checked: dict[str, model.Verification] = {}
            complete = True
            for number in numbers:
                phone = number.phone_number
                try:
                    checked[phone] = await self.client.get_verification_status(sid, phone)
                except ProviderError as err:
                    result.errors.append(err)
                    complete = False
                    if phone in old:
                        checked[phone] = old[phone]
            self._verifications[sid] = checked  # numbers that left the space are forgotten
            if complete:
                self._verified_at[sid] = now
        verifications = self._verifications.get(sid, {})
        self._forget_health(sid, {n.phone_number for n in numbers})
        result.numbers = [
            self.with_health(unit, self._enrich(n, self._wabas.get(sid), verifications.get(n.phone_number)), now)
            for n in numbers
        ]
        return result

    @staticmethod
    def _enrich(
        number: model.PhoneNumber, waba: model.Waba | None, verification: model.Verification | None
    ) -> model.PhoneNumber:
        if waba is not None:
            number = dataclasses.replace(number, waba_id=waba.waba_id)
        if verification is not None:
            number = dataclasses.replace(number, code_verification_status=verification.code_verification_status)
            if verification.phone_number_id:
                number = dataclasses.replace(number, phone_number_id=verification.phone_number_id)
        return number
