"""Async httpx client for Twilio's WhatsApp Senders API (HTTP Basic, JSON, ``meta.next_page_url`` paging).

Only GETs are sent.  The list is walked by following ``meta.next_page_url``
verbatim until it is null, never to another scheme, host or port than the
configured endpoint (a URL elsewhere ends the poll with a ``parse`` error: the
credential is never sent there), and at most :data:`MAX_PAGES` pages.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Mapping
from typing import Any, Unpack
from urllib.parse import quote, urlencode, urlsplit

import httpx

from exporter.providers.errors import ProviderError
from exporter.providers.transport import BudgetedClient, ClientOptions, json_body, retry_after_seconds
from exporter.providers.twilio import parse

LIST_PATH = "/v2/Channels/Senders"
#: the ``action`` label values: Twilio's operation ids
LIST_ACTION = "ListChannelsSender"
FETCH_ACTION = "FetchChannelsSender"
MAX_PAGES = 1000


class TwilioClient(BudgetedClient):
    """At most ``max_concurrent`` requests in flight (Twilio limits concurrency per account)."""

    def __init__(
        self,
        *,
        endpoint: str,
        sid: str,
        secret: str,
        page_size: int = 100,
        max_concurrent: int = 2,
        **kwargs: Unpack[ClientOptions],
    ):
        super().__init__(**kwargs)
        self._slots = asyncio.Semaphore(max_concurrent)
        split = urlsplit(endpoint)
        self._origin = (split.scheme.lower(), split.netloc.lower())
        self._base = f"{split.scheme}://{split.netloc}"
        self._page_size = page_size
        token = base64.b64encode(f"{sid}:{secret}".encode()).decode("ascii")
        self._headers = {"authorization": f"Basic {token}"}

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes = b""
    ) -> tuple[int, bytes, httpx.Headers]:
        async with self._slots:
            return await super()._send(method, url, headers, content)

    async def _get(self, url: str) -> dict[str, Any]:
        status, content, headers = await self._send("GET", url, self._headers)
        retry_after = retry_after_seconds(headers, "retry-after")
        body = await json_body(status, content, retry_after)
        err_request_id = headers.get("t-request-id", "")
        try:
            return parse.check_response(body, status, retry_after)
        except ProviderError as err:
            err.request_id = err_request_id[:64]
            raise

    def _same_origin(self, url: str) -> bool:
        split = urlsplit(url)
        return (split.scheme.lower(), split.netloc.lower()) == self._origin

    async def list_senders(self) -> list[dict[str, Any]]:
        """Every WhatsApp sender of the account, page by page."""
        url = f"{self._base}{LIST_PATH}?" + urlencode({"Channel": "whatsapp", "PageSize": self._page_size})
        records: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = parse.parse_page(await self.call(LIST_ACTION, functools.partial(self._get, url)))
            records += page.senders
            seen.add(url)
            nxt = page.next_page_url
            if nxt is None:
                return records
            if not self._same_origin(nxt):
                raise ProviderError("parse", "next_page_url points to another host; not followed", action=LIST_ACTION)
            if nxt in seen:
                raise ProviderError("parse", "next_page_url repeats a page already read", action=LIST_ACTION)
            url = nxt
        raise ProviderError("parse", f"more than {MAX_PAGES} pages of senders", action=LIST_ACTION)

    async def fetch_sender(self, sid: str) -> dict[str, Any]:
        return await self.call(FETCH_ACTION, lambda: self._get(f"{self._base}{LIST_PATH}/{quote(sid, safe='')}"))
