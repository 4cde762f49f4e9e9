"""Meta polling: list a WABA's numbers, then read each number node for its health.

Per WABA and poll: one ``phone_numbers`` call per page of 100 numbers, then
one ``phone_number`` call per number (``health_status`` is only served on the
number node).  When Graph reports a usage of :data:`SLOWDOWN_RATIO` or more
(the highest of ``X-Business-Use-Case-Usage`` for the WABA and ``X-App-Usage``),
the remaining per-number calls of the poll are skipped: the numbers keep the
list edge's fresh data, plus the health read by their last detail call while
it is younger than ``max_staleness``.
"""

from __future__ import annotations

import dataclasses
import logging

from exporter import model
from exporter.config import Account, Unit
from exporter.providers.base import BaseProvider, Capability, UnitResult
from exporter.providers.errors import ProviderError
from exporter.providers.meta.client import LIST_ACTION, NUMBER_ACTION, MetaClient

#: at this usage ratio (of Graph's hourly budget) the per-number calls stop for the poll
SLOWDOWN_RATIO = 0.9
HEALTH_FIELDS = ("can_send_message", "entities", "blocking_errors", "business_id")
log = logging.getLogger(__name__)


class MetaProvider(BaseProvider[MetaClient]):
    actions: tuple[str, ...] = (LIST_ACTION, NUMBER_ACTION)
    capabilities = frozenset({Capability.READ_NUMBER, Capability.USAGE})

    def __init__(self, account: Account, client: MetaClient):
        super().__init__(account, client)
        # (WABA, phone number) -> (when read, the number as its detail call returned it)
        self._last_detail: dict[tuple[str, str], tuple[float, model.PhoneNumber]] = {}
        # WABA -> the business portfolio that owns it, as the numbers' health_status names it
        self._business_of: dict[str, str] = {}

    def usage(self) -> tuple[dict[tuple[str, str, str], float], dict[str, float]]:
        """Graph's latest usage ratios and seconds to regain access (see :meth:`MetaClient.usage`)."""
        return self.client.usage()

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        waba_id = unit.id
        listed = await self.client.list_numbers(waba_id)
        result = UnitResult(numbers=[])
        if unit.phone_numbers:
            wanted = {"+" + digits for digits in unit.phone_numbers}
            listed = [n for n in listed if n.phone_number in wanted]
            found = {n.phone_number for n in listed}
            result.configured = {phone: phone in found for phone in ("+" + d for d in unit.phone_numbers)}
        stale = [phone for phone, ok in result.configured.items() if not ok]
        skipped = 0
        for listed_number in listed:
            if not listed_number.phone_number_id:
                result.numbers.append(listed_number)  # no node id to ask: the list edge is all there is
                continue
            if skipped or self.client.usage_peak(waba_id) >= SLOWDOWN_RATIO:
                skipped += 1
                result.numbers.append(self._with_last_health(waba_id, listed_number, now))
                continue
            try:
                number = await self.client.number_details(waba_id, listed_number.phone_number_id)
            except ProviderError as err:
                if err.reason in ("auth", "throttled"):
                    raise  # the token or the WABA's budget is failing: the whole unit is
                result.errors.append(err)
                stale.append(listed_number.phone_number)
                continue
            # The list edge named the number; keep that spelling as its key.
            number = dataclasses.replace(number, phone_number=listed_number.phone_number)
            self._last_detail[(waba_id, number.phone_number)] = (now, number)
            result.numbers.append(number)
        if skipped:
            log.warning(
                "Graph API usage is high: per-number health calls skipped for this poll",
                extra={
                    "account": self.account.name,
                    "space_id": waba_id,
                    "skipped": skipped,
                    "usage_percent": round(100 * self.client.usage_peak(waba_id)),
                    "threshold_percent": round(100 * SLOWDOWN_RATIO),
                },
            )
        self._forget_except(waba_id, {n.phone_number for n in listed})
        result.numbers = self._with_business(waba_id, result.numbers)
        result.stale = tuple(stale)
        return result

    def _with_business(self, waba_id: str, numbers: list[model.PhoneNumber]) -> list[model.PhoneNumber]:
        """Every number of a WABA belongs to the WABA's business: fill it in where the number's own read did not
        name it (the list edge carries no health_status)."""
        named = next((n.business_id for n in numbers if n.business_id), "")
        if named:
            self._business_of[waba_id] = named
        business = self._business_of.get(waba_id, "")
        if not business:
            return numbers
        return [n if n.business_id else dataclasses.replace(n, business_id=business) for n in numbers]

    async def poll_number(self, unit: Unit, number: model.PhoneNumber, now: float) -> model.PhoneNumber:
        """Read one known number again (a webhook named it): one call, with its health."""
        waba_id = unit.id
        if not number.phone_number_id:
            raise ProviderError("request", "the number has no Graph node id yet", action=NUMBER_ACTION)
        fresh = await self.client.number_details(waba_id, number.phone_number_id)
        fresh = dataclasses.replace(fresh, phone_number=number.phone_number)
        fresh = self._with_business(waba_id, [fresh])[0]
        self._last_detail[(waba_id, fresh.phone_number)] = (now, fresh)
        return fresh

    def _with_last_health(self, waba_id: str, number: model.PhoneNumber, now: float) -> model.PhoneNumber:
        last = self._last_detail.get((waba_id, number.phone_number))
        if last is None or now - last[0] > self.account.max_staleness:
            return number
        return dataclasses.replace(number, **{name: getattr(last[1], name) for name in HEALTH_FIELDS})

    def _forget_except(self, waba_id: str, phones: set[str]) -> None:
        for key in [k for k in self._last_detail if k[0] == waba_id and k[1] not in phones]:
            del self._last_detail[key]
