"""Async httpx client for NxCloud's WhatsApp ``getPhone`` (POST JSON, MD5-signed headers)."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Unpack
from urllib.parse import urlsplit

from exporter import model
from exporter.providers.errors import ProviderError
from exporter.providers.nxcloud import parse, signer
from exporter.providers.transport import BudgetedClient, ClientOptions, off_loop

BIZ_TYPE = "2"  # WhatsApp
ACTION = "getPhone"
log = logging.getLogger(__name__)


class NxCloudClient(BudgetedClient):
    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        access_secret: str,
        clock: Callable[[], float] = time.time,
        **kwargs: Unpack[ClientOptions],
    ):
        super().__init__(**kwargs)
        split = urlsplit(endpoint)
        self._url = f"{split.scheme}://{split.netloc}/api/wa/getPhone"
        self._ak = access_key
        self._secret = access_secret
        self._clock = clock

    async def _attempt(self, payload: dict[str, Any], appkey: str) -> list[model.PhoneNumber]:
        body = signer.serialize(payload)  # serialized once: these bytes are signed and sent
        ts = str(int(self._clock() * 1000))
        headers = {
            "content-type": "application/json",
            "accessKey": self._ak,
            "ts": ts,
            "bizType": BIZ_TYPE,
            "action": ACTION,
            "sign": signer.sign(self._ak, ACTION, BIZ_TYPE, ts, body, self._secret),
        }
        status, content, response_headers = await self._send("POST", self._url, headers, body)
        try:
            # A large answer is decoded and parsed in a worker thread: the loop keeps serving scrapes meanwhile.
            # Else decoding and parsing are two steps on the loop, each in a turn of its own.
            body = await off_loop(_read_answer, content, status, size=len(content))
            return await off_loop(parse.parse_phones, body, appkey, size=len(content))
        except ProviderError as err:
            if err.code == "1004":
                skew = _clock_skew(response_headers.get("date"), self._clock())
                err.message += f" (clock problem: the local clock is {skew} the provider's; NxCloud allows 60 s)"
            raise

    async def get_phones(self, appkey: str, phones: tuple[str, ...] = ()) -> list[model.PhoneNumber]:
        """Every number of the app, or only ``phones`` (digits with country code)."""
        payload = {"appkey": appkey, "messaging_product": "whatsapp"}
        if phones:
            payload["business_phones"] = ",".join(phones)
        return await self.call(ACTION, lambda: self._attempt(payload, appkey))


def _read_answer(content: bytes, status: int) -> Any:
    """Decode and check one answer: pure, so it may run in a worker thread."""
    try:
        decoded = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        reason = "upstream" if status >= 500 else "parse"
        raise ProviderError(reason, f"HTTP {status} with a body that is not JSON", http_status=status) from None
    return parse.check_envelope(decoded, status)


def _clock_skew(date_header: str | None, now: float) -> str:
    """How far the local clock is from the server's HTTP Date (1 s resolution)."""
    try:
        server = email.utils.parsedate_to_datetime(date_header).timestamp() if date_header else None
    except (TypeError, ValueError):
        server = None
    if server is None:
        return "off from"
    skew = now - server
    return f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'}"
