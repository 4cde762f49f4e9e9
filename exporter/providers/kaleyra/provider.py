"""Kaleyra polling: discover a WABA's numbers (or use the configured list), then read each number."""

from __future__ import annotations

from exporter import model
from exporter.config import Account, Unit
from exporter.providers.base import BaseProvider, Capability, UnitResult
from exporter.providers.errors import ProviderError
from exporter.providers.kaleyra.client import DETAILS_ACTION, LIST_ACTION, KaleyraClient


class KaleyraProvider(BaseProvider[KaleyraClient]):
    actions: tuple[str, ...] = (LIST_ACTION, DETAILS_ACTION)
    capabilities = frozenset({Capability.READ_NUMBER})

    def __init__(self, account: Account, client: KaleyraClient):
        super().__init__(account, client)

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        waba_id = unit.id
        configured = bool(unit.phone_numbers)
        phones = list(unit.phone_numbers) if configured else await self.client.list_numbers(waba_id)
        result = UnitResult(numbers=[])
        stale = []
        for digits in phones:
            try:
                result.numbers.append(await self.client.number_details(waba_id, digits))
                ok = True
            except ProviderError as err:
                if err.reason in ("auth", "throttled"):
                    raise  # the credential itself is failing: the whole unit is
                result.errors.append(err)
                stale.append("+" + digits)
                ok = False
            if configured:
                result.configured["+" + digits] = ok
        result.stale = tuple(stale)
        return result

    async def poll_number(self, unit: Unit, number: model.PhoneNumber, now: float) -> model.PhoneNumber:
        """Read one known number again (a webhook named it): one details call."""
        return await self.client.number_details(unit.id, number.phone_number.lstrip("+"))
