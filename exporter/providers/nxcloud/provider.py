"""NxCloud polling: one batched getPhone call per app (appkey)."""

from __future__ import annotations

from exporter.config import Account, Unit
from exporter.providers.base import BaseProvider, UnitResult
from exporter.providers.errors import ProviderError
from exporter.providers.nxcloud.client import ACTION, NxCloudClient


class NxCloudProvider(BaseProvider[NxCloudClient]):
    actions: tuple[str, ...] = (ACTION,)

    def __init__(self, account: Account, client: NxCloudClient):
        super().__init__(account, client)

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        if not unit.phone_numbers:
            return UnitResult(numbers=await self.client.get_phones(unit.id))
        try:
            numbers = await self.client.get_phones(unit.id, unit.phone_numbers)
        except ProviderError as err:
            if err.code != "9006":
                raise
            # One configured number is not bound to the app and the whole batch was
            # refused: ask number by number, keep the others, report the unbound ones.
            return await self._one_by_one(unit, err)
        found = {n.phone_number for n in numbers}
        configured = {"+" + p: ("+" + p) in found for p in unit.phone_numbers}
        stale = tuple(p for p, ok in configured.items() if not ok)
        return UnitResult(numbers=numbers, configured=configured, stale=stale)

    async def _one_by_one(self, unit: Unit, batch_error: ProviderError) -> UnitResult:
        result = UnitResult(numbers=[], errors=[batch_error])
        stale = []
        for digits in unit.phone_numbers:
            phone = "+" + digits
            try:
                numbers = await self.client.get_phones(unit.id, (digits,))
            except ProviderError as err:
                if err.reason not in ("request", "permission"):
                    raise
                result.errors.append(err)
                result.configured[phone] = False
                stale.append(phone)
                continue
            result.numbers.extend(numbers)
            result.configured[phone] = any(n.phone_number == phone for n in numbers)
        result.stale = tuple(stale)
        return result
