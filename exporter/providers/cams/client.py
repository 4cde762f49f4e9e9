"""httpx client for Alibaba Cloud CAMS (RPC style, API version 2020-06-06).

Only read-only actions are ever called: the client refuses any other action
name, so a typo cannot turn into a write against a customer's account.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Callable, Mapping
from urllib.parse import urlsplit

import httpx

from exporter import __version__, model
from exporter.providers.cams import parse, signer
from exporter.providers.errors import ProviderError
from exporter.ratelimit import TokenBucket

API_VERSION = "2020-06-06"
DEFAULT_ENDPOINT = "https://cams.ap-southeast-1.aliyuncs.com"
READ_ONLY_ACTIONS = frozenset(
    {"QueryChatappPhoneNumbers", "QueryChatappBindWaba", "GetPhoneNumberVerificationStatus"}
)
MAX_BODY_BYTES = 32 * 1024 * 1024

log = logging.getLogger(__name__)

# on_request(action, error_reason_or_None) is called once per HTTP attempt.
RequestObserver = Callable[[str, "str | None"], None]


class CamsClient:
    def __init__(
        self,
        *,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        bucket: TokenBucket,
        timeout: float = 10.0,
        signature_version: str = "v3",
        max_retries: int = 3,
        on_request: RequestObserver | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        cancelled: Callable[[], bool] = lambda: False,
    ):
        split = urlsplit(endpoint)
        self._base = f"{split.scheme}://{split.netloc}/"
        self._host = split.netloc
        self._ak = access_key_id
        self._sk = access_key_secret
        self._bucket = bucket
        self._timeout = timeout
        self._signature_version = signature_version
        self._max_retries = max_retries
        self._on_request = on_request or (lambda action, reason: None)
        self._clock = clock
        self._sleep = sleep
        self._cancelled = cancelled
        self._http = httpx.Client(
            timeout=timeout,
            headers={"accept": "application/json", "user-agent": f"whatsapp-number-exporter/{__version__}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    # -- transport -----------------------------------------------------------

    def _request(self, action: str, params: Mapping[str, str]) -> tuple[int, bytes, Mapping[str, str]]:
        now = self._clock()
        nonce = signer.new_nonce()
        if self._signature_version == "v2":
            query = signer.sign_v2(
                method="POST",
                action=action,
                version=API_VERSION,
                query=params,
                access_key_id=self._ak,
                access_key_secret=self._sk,
                timestamp=signer.utc_timestamp(now),
                nonce=nonce,
            )
            headers = {"host": self._host}
        else:
            query = dict(params)
            headers = signer.sign_v3(
                method="POST",
                host=self._host,
                action=action,
                version=API_VERSION,
                query=query,
                access_key_id=self._ak,
                access_key_secret=self._sk,
                date=signer.utc_timestamp(now),
                nonce=nonce,
            )
        url = self._base + "?" + signer.canonical_query(query)
        with self._http.stream("POST", url, headers=headers, content=b"") as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise ProviderError("parse", f"response larger than {MAX_BODY_BYTES} bytes", http_status=response.status_code)
                chunks.append(chunk)
            return response.status_code, b"".join(chunks), response.headers

    def _attempt(self, action: str, params: Mapping[str, str]) -> dict:
        try:
            status, content, headers = self._request(action, params)
        except httpx.TimeoutException as exc:
            raise ProviderError("timeout", f"no answer within {self._timeout:g}s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise ProviderError("upstream", f"transport error: {type(exc).__name__}: {exc}"[:300]) from None
        retry_after = _retry_after(headers)
        try:
            body = json.loads(content) if content else None
        except (ValueError, UnicodeDecodeError):
            if status >= 500:
                raise ProviderError("upstream", f"HTTP {status} with a non-JSON body", http_status=status) from None
            raise ProviderError("parse", f"HTTP {status} with a body that is not JSON", http_status=status) from None
        return parse.check_envelope(body, status, retry_after)

    def call(self, action: str, params: Mapping[str, str]) -> dict:
        """One logical call: budgeted, with bounded retries for transient failures."""
        if action not in READ_ONLY_ACTIONS:
            raise ValueError(f"refusing to call {action}: not a read-only action")
        attempt = 0
        while True:
            if not self._bucket.acquire(cancelled=self._cancelled):
                raise ProviderError("timeout", "cancelled while waiting for the QPS budget")
            try:
                body = self._attempt(action, params)
            except ProviderError as err:
                self._on_request(action, err.reason)
                if not err.retryable or attempt >= self._max_retries or self._cancelled():
                    raise
                backoff = _backoff(attempt, err)
                if err.reason == "throttled":
                    # The whole credential slows down, not just this caller.
                    self._bucket.hold(backoff)
                else:
                    self._sleep(backoff)
                log.info(
                    "retrying after a transient error",
                    extra={"action": action, "reason": err.reason, "code": err.code, "backoff_seconds": round(backoff, 3)},
                )
                attempt += 1
                continue
            self._on_request(action, None)
            return body

    # -- actions -------------------------------------------------------------

    @staticmethod
    def _space_params(space_id: str, isv_code: str | None) -> dict[str, str]:
        params = {"CustSpaceId": space_id}
        if isv_code:
            params["IsvCode"] = isv_code
        return params

    def query_phone_numbers(self, space_id: str, isv_code: str | None = None, tier_vocabulary: str = "api_reference") -> list[model.PhoneNumber]:
        body = self.call("QueryChatappPhoneNumbers", self._space_params(space_id, isv_code))
        return parse.parse_phone_numbers(body, space_id, tier_vocabulary)

    def query_bind_waba(self, space_id: str, isv_code: str | None = None) -> model.Waba | None:
        body = self.call("QueryChatappBindWaba", self._space_params(space_id, isv_code))
        return parse.parse_bind_waba(body, space_id)

    def get_verification_status(self, space_id: str, phone_number: str) -> model.Verification:
        digits = phone_number.lstrip("+")
        body = self.call("GetPhoneNumberVerificationStatus", {"CustSpaceId": space_id, "PhoneNumber": digits})
        return parse.parse_verification_status(body)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("x-acs-retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds and seconds > 0 else None


def _backoff(attempt: int, err: ProviderError) -> float:
    """Exponential backoff with full jitter; the provider's retry-after wins when given."""
    if err.retry_after:
        return min(err.retry_after, 60.0) + random.uniform(0, 0.5)
    base = 1.0 if err.reason == "throttled" else 0.5
    return random.uniform(base / 2, min(30.0, base * (2**attempt)))
