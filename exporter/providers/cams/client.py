"""Async httpx client for Alibaba Cloud CAMS (RPC style, API version 2020-06-06).

Only read-only actions are ever called: the client refuses any other action
name, so a typo cannot turn into a write against a customer's account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypedDict, TypeVar, Unpack, overload
from urllib.parse import urlsplit

from exporter import model
from exporter.lane import Steps
from exporter.providers.cams import parse, signer
from exporter.providers.errors import ProviderError
from exporter.providers.transport import BudgetedClient, ClientOptions, off_loop, off_loop_steps, retry_after_seconds

T = TypeVar("T")


class _Signed(TypedDict):
    """What both signature versions sign, besides the time and the nonce."""

    method: str
    action: str
    version: str
    access_key_id: str
    access_key_secret: str


API_VERSION = "2020-06-06"
DEFAULT_ENDPOINT = "https://cams.ap-southeast-1.aliyuncs.com"
READ_ONLY_ACTIONS = frozenset(
    {"QueryChatappPhoneNumbers", "QueryChatappBindWaba", "GetPhoneNumberVerificationStatus", "GetWhatsappHealthStatus"}
)


def _read_answer(content: bytes, status: int, retry_after: float | None) -> Any:
    """Decode and check one answer: pure, so it may run in a worker thread."""
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        if status >= 500:
            raise ProviderError("upstream", f"HTTP {status} with a non-JSON body", http_status=status) from None
        raise ProviderError("parse", f"HTTP {status} with a body that is not JSON", http_status=status) from None
    return parse.check_envelope(body, status, retry_after)


class CamsClient(BudgetedClient):
    def __init__(
        self,
        *,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        signature_version: str = "v3",
        clock: Callable[[], float] = time.time,
        **kwargs: Unpack[ClientOptions],
    ):
        super().__init__(**kwargs)
        split = urlsplit(endpoint)
        self._base = f"{split.scheme}://{split.netloc}/"
        self._host = split.netloc
        self._ak = access_key_id
        self._sk = access_key_secret
        self._signature_version = signature_version
        self._clock = clock

    async def _attempt(
        self, action: str, params: Mapping[str, str], parser: Callable[[dict[str, Any]], Steps[Any]] | None
    ) -> Any:
        stamp = signer.utc_timestamp(self._clock())
        signed = _Signed(
            method="POST", action=action, version=API_VERSION, access_key_id=self._ak, access_key_secret=self._sk
        )
        if self._signature_version == "v2":
            query = signer.sign_v2(query=params, timestamp=stamp, nonce=signer.new_nonce(), **signed)
            headers = {"host": self._host}
        else:
            query = dict(params)
            headers = signer.sign_v3(host=self._host, query=query, date=stamp, nonce=signer.new_nonce(), **signed)
        status, content, response_headers = await self._send(
            "POST", self._base + "?" + signer.canonical_query(query), headers
        )
        retry_after = retry_after_seconds(response_headers, "x-acs-retry-after")
        # A large answer is decoded and parsed in a worker thread: the loop keeps serving scrapes meanwhile.
        # Else decoding and parsing are two steps on the loop, each in a turn of its own.
        body = await off_loop(_read_answer, content, status, retry_after, size=len(content))
        return body if parser is None else await off_loop_steps(parser(body), size=len(content))

    @overload
    async def request(self, action: str, params: Mapping[str, str]) -> dict[str, Any]: ...

    @overload
    async def request(
        self, action: str, params: Mapping[str, str], parser: Callable[[dict[str, Any]], Steps[T]]
    ) -> T: ...

    async def request(
        self, action: str, params: Mapping[str, str], parser: Callable[[dict[str, Any]], Steps[Any]] | None = None
    ) -> Any:
        """One read-only action; with ``parser``, its (pure) parse of the checked body, cut into steps."""
        if action not in READ_ONLY_ACTIONS:
            raise ValueError(f"refusing to call {action}: not a read-only action")
        return await self.call(action, lambda: self._attempt(action, params, parser))

    # -- actions -------------------------------------------------------------

    @staticmethod
    def _space_params(space_id: str, isv_code: str | None) -> dict[str, str]:
        params = {"CustSpaceId": space_id}
        if isv_code:
            params["IsvCode"] = isv_code
        return params

    async def query_phone_numbers(
        self, space_id: str, isv_code: str | None = None, tier_vocabulary: str = "api_reference"
    ) -> list[model.PhoneNumber]:
        return await self.request(
            "QueryChatappPhoneNumbers",
            self._space_params(space_id, isv_code),
            lambda body: parse.parse_phone_numbers_steps(body, space_id, tier_vocabulary),
        )

    async def query_bind_waba(self, space_id: str, isv_code: str | None = None) -> model.Waba | None:
        body = await self.request("QueryChatappBindWaba", self._space_params(space_id, isv_code))
        return parse.parse_bind_waba(body, space_id)

    async def get_verification_status(self, space_id: str, phone_number: str) -> model.Verification:
        digits = phone_number.lstrip("+")
        body = await self.request("GetPhoneNumberVerificationStatus", {"CustSpaceId": space_id, "PhoneNumber": digits})
        return parse.parse_verification_status(body)

    async def get_health_status(self, space_id: str, *, phone_number: str = "", waba_id: str = "") -> model.Health:
        """``GetWhatsappHealthStatus`` of one number (NodeType ``phone``) or one WABA (NodeType ``waba``)."""
        params = {"CustSpaceId": space_id}
        if phone_number:
            params.update(NodeType="phone", PhoneNumber=phone_number.lstrip("+"))
        else:
            params.update(NodeType="waba", WabaId=waba_id)
        return parse.parse_health_status(await self.request("GetWhatsappHealthStatus", params))
