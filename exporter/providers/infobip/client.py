"""Async httpx client for Infobip's ``GET /whatsapp/1/senders/quality`` (``Authorization: App <key>``).

The ``senders`` parameter is one comma-separated list of at most 100 numbers
(digits only), the way Infobip's API page shows it.
"""

from __future__ import annotations

from typing import Any, Unpack
from urllib.parse import urlencode, urlsplit

from exporter.providers.infobip import parse
from exporter.providers.transport import BudgetedClient, ClientOptions, json_body, retry_after_seconds

PATH = "/whatsapp/1/senders/quality"
#: the ``action`` label value: the operation of Infobip's SDK
ACTION = "getWhatsappSendersQuality"


class InfobipClient(BudgetedClient):
    def __init__(self, *, endpoint: str, api_key: str, **kwargs: Unpack[ClientOptions]):
        super().__init__(**kwargs)
        split = urlsplit(endpoint)
        self._url = f"{split.scheme}://{split.netloc}{PATH}"
        self._headers = {"authorization": f"App {api_key}"}

    async def _get(self, senders: tuple[str, ...]) -> dict[str, Any]:
        url = f"{self._url}?" + urlencode({"senders": ",".join(senders)})
        status, content, headers = await self._send("GET", url, self._headers)
        retry_after = retry_after_seconds(headers, "retry-after")
        body = await json_body(status, content, retry_after)
        return parse.check_response(body, status, retry_after)

    async def senders_quality(self, senders: tuple[str, ...]) -> dict[str, Any]:
        """The answer for one batch of at most 100 senders (digits)."""
        if not 1 <= len(senders) <= parse.MAX_SENDERS_PER_CALL:
            raise ValueError("1 to 100 senders per call")
        return await self.call(ACTION, lambda: self._get(senders))
