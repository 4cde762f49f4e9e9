"""Twilio polling: one list walk per poll, or only the configured senders.

The unit is the Twilio account (its Account SID is the ``space_id`` label).
Configured senders may be SIDs (each fetched) or phone numbers (found in the
list walk); each is reported by the per-number poll success family, under its
number, or under its SID when Twilio does not know the SID.
"""

from __future__ import annotations

import asyncio

from exporter import model
from exporter.config import Account, Unit
from exporter.providers.base import BaseProvider, UnitResult
from exporter.providers.errors import ProviderError
from exporter.providers.twilio import parse
from exporter.providers.twilio.client import FETCH_ACTION, LIST_ACTION, TwilioClient


class TwilioProvider(BaseProvider[TwilioClient]):
    actions: tuple[str, ...] = (LIST_ACTION, FETCH_ACTION)

    def __init__(self, account: Account, client: TwilioClient):
        super().__init__(account, client)

    async def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        if not unit.phone_numbers:
            return UnitResult(numbers=parse.parse_senders(await self.client.list_senders(), unit.id))
        sids = [s for s in unit.phone_numbers if parse.is_sender_sid(s)]
        phones = ["+" + p for p in unit.phone_numbers if not parse.is_sender_sid(p)]
        result = UnitResult(numbers=[])
        found: dict[str, model.PhoneNumber] = {}
        if phones:
            listed = parse.parse_senders(await self.client.list_senders(), unit.id)
            wanted = set(phones)
            for number in listed:
                if number.phone_number in wanted:
                    found[number.phone_number] = number
            for phone in phones:
                result.configured[phone] = phone in found
        fetched = await asyncio.gather(*(self._fetch(sid, unit.id) for sid in sids), return_exceptions=True)
        for sid, outcome in zip(sids, fetched, strict=True):
            if isinstance(outcome, ProviderError):
                if outcome.reason in ("auth", "permission", "throttled"):
                    raise outcome  # the credential itself is failing: the whole unit is
                result.errors.append(outcome)
                result.configured[sid] = False
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is None:
                result.configured[sid] = False
                continue
            found.setdefault(outcome.phone_number, outcome)
            result.configured[outcome.phone_number] = True
        result.numbers = list(found.values())
        result.stale = tuple(p for p, ok in result.configured.items() if not ok)
        return result

    async def _fetch(self, sid: str, space_id: str) -> model.PhoneNumber | None:
        try:
            return parse.parse_sender(await self.client.fetch_sender(sid), space_id)
        except ProviderError as err:
            if err.http_status == 404:
                return None  # not a sender of this account
            raise
