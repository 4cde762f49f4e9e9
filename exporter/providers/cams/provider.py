"""CAMS polling: numbers per space, the bound WABA and (optionally) code verification."""

from __future__ import annotations

import dataclasses

from exporter import model
from exporter.config import Account, Unit
from exporter.providers.base import UnitResult
from exporter.providers.cams.client import CamsClient
from exporter.providers.errors import ProviderError

ACTIONS = ("QueryChatappPhoneNumbers", "QueryChatappBindWaba", "GetPhoneNumberVerificationStatus")


class CamsProvider:
    def __init__(self, account: Account, client: CamsClient):
        self.account = account
        self.client = client
        self.actions = ACTIONS if account.verification_poll_interval > 0 else ACTIONS[:2]
        self._wabas: dict[str, model.Waba | None] = {}
        self._waba_checked_at: dict[str, float] = {}
        self._verifications: dict[str, dict[str, model.Verification]] = {}  # by space, then number
        self._verified_at: dict[str, float] = {}

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _due(last: float | None, interval: float, now: float) -> bool:
        return interval > 0 and (last is None or now - last >= interval)

    def poll_unit(self, unit: Unit, now: float) -> UnitResult:
        account, sid = self.account, unit.id
        numbers = self.client.query_phone_numbers(sid, unit.params.get("isv_code"), account.tier_vocabulary)
        result = UnitResult(numbers=numbers)

        if self._due(self._waba_checked_at.get(sid), account.waba_poll_interval, now):
            try:
                result.waba = self._wabas[sid] = self.client.query_bind_waba(sid, unit.params.get("isv_code"))
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
                    checked[phone] = self.client.get_verification_status(sid, phone)
                except ProviderError as err:
                    result.errors.append(err)
                    complete = False
                    if phone in old:
                        checked[phone] = old[phone]
            self._verifications[sid] = checked  # numbers that left the space are forgotten
            if complete:
                self._verified_at[sid] = now
        verifications = self._verifications.get(sid, {})
        result.numbers = [self._enrich(n, self._wabas.get(sid), verifications.get(n.phone_number)) for n in numbers]
        return result

    @staticmethod
    def _enrich(number: model.PhoneNumber, waba: model.Waba | None, verification: model.Verification | None) -> model.PhoneNumber:
        changes = {}
        if waba is not None:
            changes["waba_id"] = waba.waba_id
        if verification is not None:
            changes["code_verification_status"] = verification.code_verification_status
            if verification.phone_number_id:
                changes["phone_number_id"] = verification.phone_number_id
        return dataclasses.replace(number, **changes) if changes else number
