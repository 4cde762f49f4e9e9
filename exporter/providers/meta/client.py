"""Async httpx client for Meta's WhatsApp Cloud API (Graph API) reads of number health.

Every request is a GET with ``Authorization: Bearer <token>``; the token is
never put in a URL, a log line or an error message.  Two reads are made:

* ``GET /{ver}/{waba_id}/phone_numbers?fields=…&limit=100[&after=…]``: the
  WABA's numbers, page by page (action ``phone_numbers``).  The ``paging.next``
  URL is never followed as such (it could name another host, or carry a
  token): the next request is built here from ``paging.cursors.after``.
* ``GET /{ver}/{phone_number_id}?fields=…,health_status``: one number
  (action ``phone_number``).  ``health_status`` is not reliably served on the
  list edge, so it is only asked of the number node.

Rate limits.  Graph budgets these reads per hour (Business Use Case limit per
app per WABA) and reports the usage in ``X-Business-Use-Case-Usage`` and
``X-App-Usage`` on every answer, errors included; :meth:`MetaClient.usage`
keeps the latest values.  A throttling answer (HTTP 429, or codes 4, 17, 32,
613, 80007, 130429 whatever the status) is never retried: the client refuses
every further call of that WABA (codes 4/17/32/613: of the whole app) without
a request until the advertised ``estimated_time_to_regain_access`` (else
``Retry-After``, else :data:`DEFAULT_THROTTLE_SECONDS`) has passed.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, Unpack
from urllib.parse import quote, urlencode, urlsplit

from exporter import model
from exporter.providers.errors import ProviderError
from exporter.providers.meta import parse
from exporter.providers.transport import BudgetedClient, ClientOptions, load_json, retry_after_seconds

T = TypeVar("T")

# The `action` label values.
LIST_ACTION = "phone_numbers"
NUMBER_ACTION = "phone_number"

DEFAULT_API_VERSION = "v24.0"
PAGE_LIMIT = 100  # Graph's maximum page size
MAX_PAGES = 200  # 20,000 numbers: far above any WABA's cap, so more is a paging loop
#: wait after a throttling answer that advertises no regain time
DEFAULT_THROTTLE_SECONDS = 60.0
#: never wait longer than this, whatever a header says
MAX_THROTTLE_SECONDS = 3600.0

BASE_FIELDS = (
    "id",
    "display_phone_number",
    "verified_name",
    "status",
    "quality_rating",
    "quality_score",
    "code_verification_status",
    "name_status",
    "new_name_status",
    "whatsapp_business_manager_messaging_limit",
    "messaging_limit_tier",
    "throughput",
    "platform_type",
    "account_mode",
)
PORTFOLIO_LIMIT_FIELD = "whatsapp_business_manager_messaging_limit"
PORTFOLIO_LIMIT_SINCE = (24, 0)  # Graph refuses the field (code 100) in older versions
HEALTH_FIELD = "health_status"

_VERSION_RE = re.compile(r"v(\d+)\.(\d+)")


def version_tuple(version: str) -> tuple[int, int]:
    match = _VERSION_RE.fullmatch(version.strip())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def fields_for(version: str, *, health: bool) -> str:
    """The ``fields`` parameter: every field this version knows, health only on the number node."""
    names = [f for f in BASE_FIELDS if f != PORTFOLIO_LIMIT_FIELD or version_tuple(version) >= PORTFOLIO_LIMIT_SINCE]
    if health:
        names.append(HEALTH_FIELD)
    return ",".join(names)


class _Stop(Exception):
    """Leaves BudgetedClient.call without a retry (throttled, or refused before sending)."""

    def __init__(self, error: ProviderError, sent: bool):
        super().__init__(str(error))
        self.error = error
        self.sent = sent


class MetaClient(BudgetedClient):
    def __init__(
        self,
        *,
        endpoint: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Unpack[ClientOptions],
    ):
        super().__init__(**kwargs)
        split = urlsplit(endpoint)
        self.api_version = api_version or DEFAULT_API_VERSION
        self._base = f"{split.scheme}://{split.netloc}/{quote(self.api_version, safe='.')}"
        self._token = access_token
        self._clock = clock
        self._buc: dict[str, dict[str, float]] = {}  # business id -> usage type -> ratio (latest)
        self._regain_at: dict[str, float] = {}  # business id -> clock time access returns
        self._app: dict[str, float] = {}  # usage type -> ratio (latest)
        self._peak: dict[str, float] = {}  # WABA -> highest ratio of its latest answer
        self._blocked_until: dict[str, float] = {}  # "" (the app) or a WABA -> no calls before

    # -- usage and throttling --------------------------------------------

    def usage(self) -> tuple[dict[tuple[str, str, str], float], dict[str, float]]:
        """``({(header, business_id, type): ratio}, {business_id: seconds to regain access})``.

        ``header`` is ``business_use_case`` or ``app`` (whose business id is
        ""); ``type`` is ``call_count``, ``total_cputime`` or ``total_time``.
        """
        now = self._clock()
        ratios = {("business_use_case", bid, kind): v for bid, kinds in self._buc.items() for kind, v in kinds.items()}
        ratios.update({("app", "", kind): v for kind, v in self._app.items()})
        regain = {bid: max(0.0, at - now) for bid, at in self._regain_at.items()}
        return ratios, regain

    def usage_peak(self, waba_id: str) -> float:
        """The highest usage ratio reported for this WABA's latest answer, or for the app."""
        return max([self._peak.get(waba_id, 0.0), *self._app.values()])

    def blocked_for(self, waba_id: str) -> float:
        """Seconds before calls about this WABA may be made again (0: now)."""
        now = self._clock()
        until = max(self._blocked_until.get("", 0.0), self._blocked_until.get(waba_id, 0.0))
        return max(0.0, until - now)

    def _observe(self, headers: Mapping[str, str], waba_id: str) -> None:
        buc = parse.parse_business_use_case_usage(headers.get("x-business-use-case-usage"))
        app = parse.parse_app_usage(headers.get("x-app-usage"))
        if not buc and not app:
            return
        now = self._clock()
        values = [v for ratios, _ in buc.values() for v in ratios.values()] + list(app.values())
        for bid, (ratios, regain) in buc.items():
            self._buc[bid] = ratios
            self._regain_at[bid] = now + regain
        if app:
            self._app = app
        if values:
            self._peak[waba_id] = max(values)

    def _throttle(self, err: ProviderError, headers: Mapping[str, str], waba_id: str) -> None:
        """Refuse further calls until the advertised regain time; say so in the error."""
        buc = parse.parse_business_use_case_usage(headers.get("x-business-use-case-usage"))
        wait = max((regain for _, regain in buc.values()), default=0.0)
        wait = wait or retry_after_seconds(headers, "retry-after") or DEFAULT_THROTTLE_SECONDS
        wait = min(wait, MAX_THROTTLE_SECONDS)
        code = int(err.code) if err.code.isdigit() else None
        scope = "" if code in parse.APP_THROTTLE_CODES else waba_id
        self._blocked_until[scope] = max(self._blocked_until.get(scope, 0.0), self._clock() + wait)
        err.retry_after = wait
        err.message += f"; no calls for this {'app' if scope == '' else 'WABA'} for {wait:.0f} s"

    def _refusal(self, waba_id: str) -> ProviderError | None:
        left = self.blocked_for(waba_id)
        if left <= 0:
            return None
        return ProviderError(
            "throttled",
            f"Graph rate limit reached: not calling before the advertised regain time ({left:.0f} s left)",
            retry_after=left,
        )

    # -- calls -----------------------------------------------------------

    def _scrub(self, err: ProviderError) -> ProviderError:
        if self._token and self._token in err.message:
            err.message = err.message.replace(self._token, "<redacted>")
            err.args = (err.message,)
        return err

    async def _get(self, path: str, params: Mapping[str, str], waba_id: str) -> dict[str, Any]:
        url = f"{self._base}{path}?{urlencode(params, safe=',')}"
        status, content, headers = await self._send("GET", url, {"authorization": f"Bearer {self._token}"})
        self._observe(headers, waba_id)
        try:
            body = await load_json(content) if content else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = None
        err = parse.graph_error(body, status)
        if err is None and isinstance(body, dict):  # graph_error answers None only for a JSON object
            return body
        if err is None:
            raise ProviderError("parse", "response is not a JSON object", http_status=status)
        if body is None and content and err.reason == "parse":
            err.message = f"HTTP {status} with a body that is not JSON"
        if not err.request_id:
            err.request_id = (headers.get("x-fb-trace-id") or headers.get("x-fb-request-id") or "")[:64]
        if err.reason == "throttled":
            self._throttle(err, headers, waba_id)
        raise err

    async def call_for(self, action: str, waba_id: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """One budgeted call about ``waba_id``: refused while throttled, never retried when throttled."""

        async def once() -> T:
            refusal = self._refusal(waba_id)
            if refusal is not None:
                raise _Stop(refusal, sent=False)
            try:
                return await attempt()
            except ProviderError as err:
                self._scrub(err)
                if err.reason == "throttled":
                    raise _Stop(err, sent=True) from None
                raise

        try:
            return await self.call(action, once)
        except _Stop as stop:
            stop.error.action = action
            if stop.sent:
                self._on_request(action, stop.error.reason)
            raise stop.error from None

    async def list_numbers(self, waba_id: str) -> list[model.PhoneNumber]:
        """Every number of the WABA from the list edge (without health), following the cursors."""
        path = f"/{quote(waba_id, safe='')}/phone_numbers"
        params = {"fields": fields_for(self.api_version, health=False), "limit": str(PAGE_LIMIT)}
        numbers: list[model.PhoneNumber] = []
        seen_numbers: set[str] = set()
        seen_cursors: set[str] = set()
        after = ""
        for _ in range(MAX_PAGES):
            page_params = dict(params, after=after) if after else params
            body = await self.call_for(LIST_ACTION, waba_id, functools.partial(self._get, path, page_params, waba_id))
            items, after = parse.parse_list_page(body)
            for item in items:
                number = parse.parse_number(item, waba_id)
                if number is None or number.phone_number in seen_numbers:
                    continue
                seen_numbers.add(number.phone_number)
                numbers.append(number)
            if not after:
                return numbers
            if after in seen_cursors:
                raise ProviderError("parse", "phone_numbers paging repeats a cursor", action=LIST_ACTION)
            seen_cursors.add(after)
        raise ProviderError("parse", f"phone_numbers paging did not end within {MAX_PAGES} pages", action=LIST_ACTION)

    async def number_details(self, waba_id: str, phone_number_id: str) -> model.PhoneNumber:
        """One number node, with ``health_status``."""
        path = f"/{quote(phone_number_id, safe='')}"
        params = {"fields": fields_for(self.api_version, health=True)}
        body = await self.call_for(NUMBER_ACTION, waba_id, lambda: self._get(path, params, waba_id))
        number = parse.parse_number(body, waba_id)
        if number is None:
            raise ProviderError("parse", "phone number node without display_phone_number", action=NUMBER_ACTION)
        return number
