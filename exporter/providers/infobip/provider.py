"""Infobip polling: the configured senders of a group, in batches of at most 100.

Infobip leaves a number the account does not own out of its answer: such a
configured sender is reported by the per-number poll success family (0), as for
NxCloud and Kaleyra, and its last good data is served within max_staleness.
"""

from __future__ import annotations

import asyncio

from exporter.config import Account, Unit
from exporter.providers.base import BaseProvider, UnitResult
from exporter.providers.errors import ProviderError
from exporter.providers.infobip import parse
from exporter.providers.infobip.client import ACTION, InfobipClient


class InfobipProvider(BaseProvider[InfobipClient]):
    actions: tuple[str, ...] = (ACTION,)

    def __init__(self, account: Account, client: InfobipClient):
        super().__init__(account, client)

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        batches = parse.batches(tuple(parse.sender_digits(p) for p in unit.phone_numbers))
        answers = await asyncio.gather(*(self.client.senders_quality(b) for b in batches), return_exceptions=True)
        result = UnitResult(numbers=[])
        seen: set[str] = set()
        failed: set[str] = set()
        for batch, answer in zip(batches, answers, strict=True):
            if isinstance(answer, ProviderError):
                if answer.reason in ("auth", "permission", "throttled") or len(batches) == 1:
                    raise answer  # the credential (or the whole unit) is failing
                result.errors.append(answer)
                failed.update("+" + d for d in batch)
                continue
            if isinstance(answer, BaseException):
                raise answer
            wanted = {"+" + d for d in batch}
            for number in parse.parse_results(answer, unit.id):
                if number.phone_number in wanted and number.phone_number not in seen:
                    seen.add(number.phone_number)
                    result.numbers.append(number)
        for digits in dict.fromkeys(parse.sender_digits(p) for p in unit.phone_numbers):
            phone = "+" + digits
            result.configured[phone] = phone in seen
        result.stale = tuple(p for p, ok in result.configured.items() if not ok)
        return result
