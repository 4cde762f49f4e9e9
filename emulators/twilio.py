"""An emulator of Twilio's WhatsApp Senders API (``messaging.twilio.com/v2/Channels/Senders``).

Written from Twilio's OpenAPI spec, SDK behaviour and error pages as summarised
in the provider reference; it never imports the exporter's client code.

* ``GET /v2/Channels/Senders?Channel=whatsapp&PageSize=N`` lists the senders of
  the authenticated account, ``GET /v2/Channels/Senders/{Sid}`` fetches one.
  Other methods are 405; writes (POST, DELETE) are recorded and refused, so a
  test can assert the exporter never changes anything.
* **Auth:** HTTP Basic.  The username is a scenario credential's
  ``access_key_id`` (an Account SID ``AC…`` with its Auth Token, or an API key
  SID ``SK…`` with its secret, as ``access_key_secret``).  Anything else is 401
  ``{"code": 20003, "message": "Authenticate", ...}``.  A credential with
  ``permissions: denied`` (a restricted key without the senders resource) gets
  403 code 20403.  Credentials of one Twilio account share ``account:`` (the
  Account SID); the senders are those of the spaces owned by any of them.
* **Validation:** ``Channel`` missing or not ``whatsapp``/``rcs`` → 400 code
  20001; ``PageSize`` outside 1..1000 or not a number → 400 code 20001; an unknown
  ``PageToken`` → 400 code 20001; a ``Sid`` not ``XE`` + 32 hex, or unknown → 404
  code 20404.
* **Paging:** ``PageSize`` (default 50) senders per page, ordered as in the
  scenario; ``meta`` as in the spec (``page``, ``page_size``, ``first_page_url``,
  ``previous_page_url``, ``url``, ``next_page_url``, ``key: "senders"``), every
  URL absolute on the emulator's own address (``next_page_host`` overrides the
  host of ``next_page_url``: a test that the client never follows a URL to
  another host).  ``next_page_url`` carries an opaque ``PageToken`` and is null
  on the last page; with a token, ``Page`` is ignored.
* **Limits:** at most ``max_concurrent`` requests of one account in flight
  (default 2, Twilio's limit is per account concurrency) and, when the
  credential has a ``qps``, at most that many per calendar second.  Beyond
  either: 429 ``{"code": 20429, "message": "Too Many Requests", ...}`` with the
  ``Twilio-Concurrent-Requests`` header, plus ``Retry-After`` when
  ``retry_after`` is set.  Refused requests count nothing.
* **Errors** are the legacy body ``{code, message, more_info, status}``; with
  ``error_format="rfc9457"`` they are problem details ``{type, title, status,
  detail, code}`` with ``application/problem+json``.
* **Faults** (see :mod:`.scenario`): ``error`` (any Twilio code, e.g. 20500 with
  ``http_status: 503``; 20429 is the throttling answer), ``delay``, ``malformed``
  (a list page cut in half), ``html``, ``reset``, ``truncate``, ``oversize``,
  ``refuse`` and the data faults on list and fetch answers.

Scenario mapping: a space is a Twilio account (``space_id`` = its Account SID);
numbers carry the wire values: ``status`` (``ONLINE``, ``OFFLINE``,
``ONLINE:UPDATING``, …), ``quality_rating`` (``HIGH``…, null), ``messaging_limit``
(``"10K Customers/24hr"``…, null), ``offline_reasons`` (a list of ``{code,
message}``), ``verified_name`` (``profile.name``), ``sid`` (default: derived from
the number), ``properties_null: true`` (``properties`` sent as null).  The
space's ``waba.id`` is ``configuration.waba_id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
import uuid
from typing import Any, Unpack
from urllib.parse import parse_qs, urlencode, urlsplit

from .common import UNKNOWN_ENUM_VALUES, ApiError, BodyError, Context, ProviderEmulator, Reply, Request, json_bytes
from .common.base import EmulatorOptions
from .common.faults import data_faults
from .scenario import Credential, Fault, Scenario, Space

__all__ = ["FETCH_ACTION", "LIST_ACTION", "TwilioEmulator", "sender_sid"]

logger = logging.getLogger("emulators.twilio")

LIST_PATH = "/v2/Channels/Senders"
LIST_ACTION = "ListChannelsSender"
FETCH_ACTION = "FetchChannelsSender"
WRITE_ACTIONS = frozenset({"CreateChannelsSender", "UpdateChannelsSender", "DeleteChannelsSender"})
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
SID_RE = re.compile(r"^XE[0-9a-fA-F]{32}$")
DEFAULT_PAGE_SIZE = 50

ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Bad request"),
    20003: (401, "Authenticate"),
    20403: (403, "Forbidden: the credential may not read WhatsApp senders"),
    20404: (404, "The requested resource was not found"),
    20405: (405, "Method not allowed"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
}

_NUMBER_KNOWN = frozenset(
    {
        "status",
        "quality_rating",
        "messaging_limit",
        "offline_reasons",
        "verified_name",
        "sid",
        "properties_null",
        "present",
        "wire_extra",
    }
)


def sender_sid(phone_number: str) -> str:
    """A stable sender SID for a number: ``XE`` + 32 hex characters."""
    return "XE" + hashlib.md5(f"twilio-sender:{phone_number}".encode()).hexdigest()


def more_info(code: Any) -> str:
    return f"https://www.twilio.com/docs/errors/{code}"


class _TwError(ApiError):
    ERRORS = ERRORS
    DEFAULT = (400, "Bad request")


class TwilioEmulator(ProviderEmulator):
    provider_name = "Twilio"
    server_software = "twilio"
    json_content_type = JSON
    known_number_attributes = _NUMBER_KNOWN
    known_waba_attributes = frozenset({"id", "name", "present"})
    write_actions = WRITE_ACTIONS
    observed_number_fields = ("present", "status", "quality_rating", "messaging_limit", "offline_reasons")
    data_fault_actions = data_faults({LIST_ACTION, FETCH_ACTION}, {LIST_ACTION})
    _logger = logger

    def __init__(
        self,
        scenario: Scenario,
        *,
        max_concurrent: int | None = 2,
        retry_after: int | None = None,
        error_format: str = "legacy",
        next_page_host: str | None = None,
        **options: Unpack[EmulatorOptions],
    ):
        super().__init__(scenario, **options)
        if error_format not in ("legacy", "rfc9457"):
            raise ValueError("error_format must be legacy or rfc9457")
        self.max_concurrent = max_concurrent
        self.retry_after = retry_after
        self.error_format = error_format
        self.next_page_host = next_page_host
        self._in_flight: dict[str, int] = {}
        self._flight_lock = threading.Lock()
        self._tokens: dict[str, tuple[str, int]] = {}
        self._token_key = uuid.uuid4().bytes
        #: the most requests of one account seen in flight at once
        self.max_in_flight_seen: dict[str, int] = {}

    # -- error answers -------------------------------------------------------

    def _new_context(self, req: Request | None) -> Context:
        return Context(request_id="RQ" + uuid.uuid4().hex)

    def _internal_error(self) -> ApiError:
        return _TwError(20500)

    def _body_error(self, exc: BodyError) -> ApiError:
        return _TwError(20001, exc.message, exc.status)

    def _fault_error(self, ctx: Context, fault: Fault) -> ApiError:
        code = int(fault.code) if isinstance(fault.code, str) and fault.code.isdigit() else fault.code
        status = 200 if fault.http200 else fault.http_status
        return _TwError(code, fault.message, status, retry_after=fault.retry_after)

    def _common_headers(self, ctx: Context) -> dict[str, str]:
        return {"T-Request-Id": ctx.request_id}

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        headers = self._common_headers(ctx)
        if err.retry_after is not None:
            headers["Retry-After"] = str(err.retry_after)
        if err.status == 429:
            with self._flight_lock:
                headers["Twilio-Concurrent-Requests"] = str(self._in_flight.get(ctx.space_id or "", 0))
        if self.error_format == "rfc9457":
            body = {
                "type": more_info(err.code),
                "title": ERRORS.get(err.code, (0, err.message))[1],
                "status": err.status,
                "detail": err.message,
                "code": err.code,
            }
            return Reply(err.status, json_bytes(body), PROBLEM_JSON, headers, code=str(err.code))
        body = {"code": err.code, "message": err.message, "more_info": more_info(err.code), "status": err.status}
        return Reply(err.status, json_bytes(body), JSON, headers, code=str(err.code))

    # -- processing ----------------------------------------------------------

    def _route(self, path: str, method: str) -> tuple[str, str | None]:
        if path == LIST_PATH:
            return ({"GET": LIST_ACTION, "POST": "CreateChannelsSender"}.get(method, ""), None)
        if path.startswith(LIST_PATH + "/") and path.count("/") == 4:
            sid = path.rsplit("/", 1)[1]
            return (
                {"GET": FETCH_ACTION, "POST": "UpdateChannelsSender", "DELETE": "DeleteChannelsSender"}.get(method, ""),
                sid,
            )
        raise _TwError(20404, f"The requested resource {path[:200]} was not found")

    def _authenticate(self, req: Request) -> Credential:
        header = (req.header("authorization") or "").strip()
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise _TwError(20003)
        try:
            username, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _TwError(20003) from None
        cred = self.scenario.credential(username)
        if (
            not sep
            or cred is None
            or not cred.enabled
            or not hmac.compare_digest(cred.access_key_secret.encode(), password.encode())
        ):
            raise _TwError(20003)
        return cred

    def _process(self, req: Request, ctx: Context) -> Reply:
        action, sid = self._route(ctx.path.rstrip("/") or "/", req.method)
        if not action:
            raise _TwError(20405, f"Method {req.method} not allowed")
        ctx.action = action
        cred = self._authenticate(req)
        ctx.access_key_id = cred.access_key_id
        account = cred.account_key
        ctx.space_id = account
        if not cred.allows(action if action not in WRITE_ACTIONS else "write"):
            raise _TwError(20403)
        ctx.authenticated = True
        with self._flight_lock:
            in_flight = self._in_flight.get(account, 0)
            over = self.max_concurrent is not None and in_flight >= self.max_concurrent
            if not over:
                self._in_flight[account] = in_flight + 1
                self.max_in_flight_seen[account] = max(self.max_in_flight_seen.get(account, 0), in_flight + 1)
        if over:
            ctx.throttled = True
            raise _TwError(20429, retry_after=self.retry_after)
        try:
            if not self._admit(req.arrival, [((account,), cred.qps)]):
                ctx.throttled = True
                raise _TwError(20429, retry_after=self.retry_after)
            return self._answer(req, ctx, cred, action, sid)
        finally:
            with self._flight_lock:
                self._in_flight[account] -= 1

    def _answer(self, req: Request, ctx: Context, cred: Credential, action: str, sid: str | None) -> Reply:
        query = parse_qs(urlsplit(req.target).query, keep_blank_values=True)
        if action == FETCH_ACTION:
            if not sid or not SID_RE.match(sid):
                raise _TwError(20404, f"The requested resource {LIST_PATH}/{(sid or '')[:40]} was not found")
            found = self._find(cred, sid)
            if found is None:
                raise _TwError(20404, f"The requested resource {LIST_PATH}/{sid} was not found")
            ctx.phone_number = found[1]["phone_number"]
        fault = self._apply_faults(ctx)
        if fault is not None:
            return fault
        if action in WRITE_ACTIONS:
            raise _TwError(
                20403, f"The emulator records {action} calls and refuses them (an exporter must never change anything)"
            )
        if action == FETCH_ACTION and found is not None:
            space, state = found
            return self._ok(ctx, self._resource(space, state))
        return self._ok(ctx, self._page(cred, query))

    def _ok(self, ctx: Context, payload: Any) -> Reply:
        payload = self._data_fault(ctx, payload)
        return Reply(200, json_bytes(payload), JSON, self._common_headers(ctx), code="200")

    # -- data ----------------------------------------------------------------

    def _spaces(self, cred: Credential) -> list[Space]:
        out = []
        for space in self.scenario.spaces:
            owner = self.scenario.credential(space.access_key_id)
            if owner is not None and owner.account_key == cred.account_key:
                out.append(space)
        return out

    def _states(self, cred: Credential) -> list[tuple[Space, dict[str, Any]]]:
        t = self.scenario_time()
        out = []
        for space in self._spaces(cred):
            for number in space.numbers:
                state = self.number_state(space, number.phone_number, t)
                if state is not None and state.get("present", True):
                    out.append((space, state))
        return out

    def _find(self, cred: Credential, sid: str) -> tuple[Space, dict[str, Any]] | None:
        for space, state in self._states(cred):
            if (state.get("sid") or sender_sid(state["phone_number"])).lower() == sid.lower():
                return space, state
        return None

    def _resource(self, space: Space, state: dict[str, Any]) -> dict[str, Any]:
        sid = state.get("sid") or sender_sid(state["phone_number"])
        waba = self.waba_state(space) or {}
        status = state.get("status")
        reasons = state.get("offline_reasons")
        properties = (
            None
            if state.get("properties_null")
            else {"quality_rating": state.get("quality_rating"), "messaging_limit": state.get("messaging_limit")}
        )
        out: dict[str, Any] = {
            "sid": sid,
            "status": status,
            "sender_id": f"whatsapp:+{state['phone_number']}",
            "configuration": {
                "waba_id": waba.get("id"),
                "verification_method": None,
                "verification_code": None,
                "voice_application_sid": None,
                "account_type": None,
            },
            "webhook": {
                "callback_url": None,
                "callback_method": "POST",
                "fallback_url": None,
                "fallback_method": None,
                "status_callback_url": None,
                "status_callback_method": None,
            },
            "profile": {
                "name": state.get("verified_name"),
                "about": None,
                "address": None,
                "description": None,
                "logo_url": None,
                "banner_url": None,
                "privacy_url": None,
                "terms_of_service_url": None,
                "accent_color": None,
                "vertical": None,
                "websites": [],
                "emails": [],
                "phone_numbers": [],
            },
            "properties": properties,
            "offline_reasons": [
                {"code": str(r.get("code")), "message": r.get("message"), "more_info": more_info(r.get("code"))}
                for r in reasons
                if isinstance(r, dict)
            ]
            if status == "OFFLINE" and isinstance(reasons, list)
            else None,
            "compliance": None,
            "url": f"{self.url}{LIST_PATH}/{sid}",
        }
        extra = state.get("wire_extra")
        if isinstance(extra, dict):
            out.update(extra)
        return out

    def _page(self, cred: Credential, query: dict[str, list[str]]) -> dict[str, Any]:
        channel = (query.get("Channel") or [""])[-1]
        if channel not in ("whatsapp", "rcs"):
            raise _TwError(20001, "Channel is required: whatsapp or rcs")
        raw_size = (query.get("PageSize") or [str(DEFAULT_PAGE_SIZE)])[-1]
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= 1000:
            raise _TwError(20001, f"PageSize must be between 1 and 1000, got {raw_size[:20]!r}")
        size = int(raw_size)
        token = (query.get("PageToken") or [""])[-1]
        if token:
            entry = self._tokens.get(token)
            if entry is None or entry[0] != cred.account_key:
                raise _TwError(20001, "Invalid PageToken")
            offset = entry[1]
        else:
            page_param = (query.get("Page") or ["0"])[-1]
            offset = int(page_param) * size if page_param.isdigit() else 0
        states = self._states(cred) if channel == "whatsapp" else []
        chunk = states[offset : offset + size]
        page = offset // size
        base = f"{self.url}{LIST_PATH}"
        nxt = None
        if offset + size < len(states):
            new_token = (
                "PT"
                + hmac.new(self._token_key, f"{cred.account_key}:{offset + size}".encode(), hashlib.sha256).hexdigest()[
                    :32
                ]
            )
            with self._lock:
                self._tokens[new_token] = (cred.account_key, offset + size)
            host = f"http://{self.next_page_host}" if self.next_page_host else self.url
            nxt = f"{host}{LIST_PATH}?" + urlencode(
                {"PageSize": size, "Page": page + 1, "PageToken": new_token, "Channel": channel}
            )
        return {
            "senders": [self._resource(space, state) for space, state in chunk],
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": f"{base}?" + urlencode({"PageSize": size, "Page": 0, "Channel": channel}),
                "previous_page_url": None
                if page == 0
                else f"{base}?" + urlencode({"PageSize": size, "Page": page - 1, "Channel": channel}),
                "url": f"{base}?" + urlencode({"PageSize": size, "Page": page, "Channel": channel}),
                "next_page_url": nxt,
                "key": "senders",
            },
        }

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        def alter(resource: dict[str, Any]) -> dict[str, Any]:
            resource = dict(resource)
            if kind == "unknown_enum":
                resource["status"] = UNKNOWN_ENUM_VALUES["status"]
                resource["properties"] = {
                    "quality_rating": UNKNOWN_ENUM_VALUES["quality"],
                    "messaging_limit": UNKNOWN_ENUM_VALUES["tier"],
                }
            else:
                resource.update(status=None, properties=None, profile=None, configuration=None)
            return resource

        if action == LIST_ACTION and isinstance(payload, dict):
            senders = payload.get("senders", [])
            if kind == "duplicate_numbers":
                return {**payload, "senders": [c for s in senders for c in (s, dict(s))]}
            return {**payload, "senders": [alter(s) for s in senders]}
        if action == FETCH_ACTION and isinstance(payload, dict):
            return alter(payload)
        return payload
