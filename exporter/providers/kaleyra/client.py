"""Async httpx client for Kaleyra's WhatsApp v2 read endpoints (api-key header, SID in the path).

Only GETs are sent.  Kaleyra's Verify Phone Number call (``POST
…/number/verify`` with a one-time password) and the other ``number/*`` writes
are never made.
"""

from __future__ import annotations

from typing import Unpack
from urllib.parse import quote, urlsplit

from exporter import model
from exporter.providers.kaleyra import parse
from exporter.providers.transport import BudgetedClient, ClientOptions, json_body

# The `action` label values: the endpoints' last path segments.
LIST_ACTION = "number"
DETAILS_ACTION = "phone_number_details"


class KaleyraClient(BudgetedClient):
    def __init__(self, *, endpoint: str, sid: str, api_key: str, **kwargs: Unpack[ClientOptions]):
        super().__init__(**kwargs)
        split = urlsplit(endpoint)
        self._base = f"{split.scheme}://{split.netloc}/v2/{quote(sid, safe='')}/whatsapp"
        self._api_key = api_key

    async def _get(self, path: str) -> object:
        status, content, _ = await self._send("GET", self._base + path, {"api-key": self._api_key})
        return parse.check_envelope(await json_body(status, content), status)

    async def list_numbers(self, waba_id: str) -> list[str]:
        data = await self.call(LIST_ACTION, lambda: self._get(f"/{quote(waba_id, safe='')}/number"))
        return parse.parse_discovery(data)

    async def number_details(self, waba_id: str, digits: str) -> model.PhoneNumber:
        data = await self.call(DETAILS_ACTION, lambda: self._get(f"/{quote(digits, safe='')}/phone_number_details"))
        return parse.parse_details(data, waba_id, digits)
